// The settings view: configured models, the embedder, answering policy, and the doctor's checks.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";

function lookup(object, path) {
  return path.split(".").reduce((value, key) => (value && typeof value === "object" ? value[key] : undefined), object);
}

function show(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? t("common.yes") : t("common.no");
  if (Array.isArray(value)) return value.join(", ") || "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function factList(settings, rows) {
  const present = rows.filter(([path]) => lookup(settings, path) !== undefined);
  if (!present.length) return h("p", { class: "muted" }, t("settings.unknown"));
  return h("dl", { class: "facts stacked" }, present.map(([path, label, explain]) => h("div", { dataset: { setting: path } },
    h("dt", {}, label), h("dd", {}, show(lookup(settings, path)), explain ? h("small", { class: "muted" }, explain(lookup(settings, path))) : null))));
}

function card(title, id, ...body) {
  return h("section", { class: "card settings-card", id }, h("h3", {}, title), ...body);
}

function modelsCard(models) {
  if (!models.length) return card(t("settings.models"), "models-card", h("p", { class: "muted" }, t("settings.noModels")));
  return card(t("settings.models"), "models-card", h("table", { class: "plain-table" },
    h("thead", {}, h("tr", {}, h("th", {}, t("settings.modelName")), h("th", {}, t("settings.backend")), h("th", {}))),
    h("tbody", {}, models.map((m) => h("tr", {}, h("td", {}, m.name), h("td", {}, m.backend || "—"),
      h("td", {}, m.default ? h("span", { class: "badge indexed" }, t("chat.defaultModel")) : null))))));
}

function doctorCard() {
  const list = h("ul", { class: "checks", id: "doctor-checks" }, h("li", { class: "muted" }, t("common.loading")));
  const rerun = h("button", { type: "button", class: "btn ghost small", id: "doctor-run" }, t("settings.rerun"));
  const summary = h("p", { class: "muted", id: "doctor-summary" });
  const run = async () => {
    rerun.disabled = true;
    replace(list, h("li", { class: "muted" }, t("settings.checking")));
    try {
      const checks = (await api("/api/doctor")) || [];
      const failing = checks.filter((c) => !c.ok && !c.optional).length;
      summary.textContent = failing ? t("settings.doctorBad", { n: failing }) : t("settings.doctorOk");
      summary.className = failing ? "form-error" : "ok-text";
      replace(list, checks.map((c) => h("li", { class: `check-item ${c.ok ? "ok" : c.optional ? "optional" : "bad"}` },
        h("span", { class: "check-icon", "aria-label": c.ok ? "ok" : "failed" }, c.ok ? "✓" : c.optional ? "–" : "✗"),
        h("div", {}, h("strong", {}, c.name), c.optional && !c.ok ? h("span", { class: "badge skipped" }, t("settings.optional")) : null,
          h("div", { class: "muted detail" }, c.detail)))));
    } catch (exc) {
      summary.textContent = "";
      replace(list, h("li", { class: "form-error", role: "alert" }, exc.message));
    } finally {
      rerun.disabled = false;
    }
  };
  rerun.addEventListener("click", run);
  run();
  return card(t("settings.doctor"), "doctor-card", h("div", { class: "card-tools" }, summary, rerun), list);
}

function noHitText(policy) {
  return ["refuse", "fallback", "message"].includes(policy) ? t(`settings.noHit.${policy}`) : "";
}

/** Render the settings view into `root`. */
export function renderSettings(root) {
  const grid = h("div", { class: "settings-grid" }, h("p", { class: "muted" }, t("common.loading")));
  replace(root, h("div", { class: "page" }, h("h2", {}, t("nav.settings")), h("p", { class: "muted" }, t("settings.intro")), grid));
  Promise.allSettled([api("/api/settings"), api("/api/models")]).then(([settingsResult, modelsResult]) => {
    const settings = settingsResult.status === "fulfilled" ? settingsResult.value || {} : {};
    const failed = [settingsResult, modelsResult].filter((r) => r.status === "rejected").map((r) => r.reason.message);
    replace(grid,
      failed.map((m) => h("p", { class: "form-error", role: "alert" }, m)),
      h("div", { class: "settings-columns" },
        modelsCard(modelsResult.status === "fulfilled" ? modelsResult.value || [] : []),
        card(t("settings.embedder"), "embedder-card", factList(settings, [
          ["embedder.backend", t("settings.backend")], ["embedder.model", t("settings.model")],
          ["embedder.base_url", t("settings.baseUrl")], ["embedder.batch_size", t("settings.batch")]])),
        card(t("settings.answering"), "answering-card", factList(settings, [
          ["chat.no_hit", t("settings.noHitPolicy"), noHitText], ["chat.no_hit_message", t("settings.noHitMessage")],
          ["default_model", t("settings.defaultModel")], ["chat.temperature", t("settings.temperature")],
          ["chat.max_tokens", t("settings.maxTokens")], ["retrieval.mode", t("search.mode")],
          ["retrieval.threshold", t("chat.threshold")], ["retrieval.fusion", t("settings.fusion")]])),
        card(t("settings.ingest"), "ingest-card", factList(settings, [
          ["ingest.chunk_size", t("kb.chunkSize")], ["ingest.chunk_overlap", t("kb.chunkOverlap")],
          ["ingest.max_file_mb", t("settings.maxFile")], ["ingest.ocr", t("settings.ocr")], ["home", t("settings.home")]]))),
      doctorCard(),
      card(t("settings.all"), "raw-card", h("details", {}, h("summary", {}, t("settings.showAll")),
        h("pre", { class: "raw" }, JSON.stringify(settings, null, 2)))));
  });
}
