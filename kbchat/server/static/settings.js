// The settings view: configured models (add a GGUF, pull one, choose the default), the embedder,
// answering policy, and the doctor's checks.

import { api } from "./api.js";
import { formatBytes, h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { TOP_K_MAX } from "./limits.js";
import { setTheme, theme, THEMES } from "./theme.js";
import { toast } from "./toast.js";

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

function modelFacts(m) {
  const parts = [];
  if (m.file_bytes) parts.push(formatBytes(m.file_bytes));
  if (m.quantisation) parts.push(m.quantisation);
  if (m.n_ctx) parts.push(m.context_length ? t("settings.context", { n: m.n_ctx, of: m.context_length }) : t("settings.contextOnly", { n: m.n_ctx }));
  if (m.memory_bytes) parts.push(t("settings.memory", { size: formatBytes(m.memory_bytes), slots: m.parallel || 1 }));
  return parts.join(" · ") || "—";
}

function modelsCard(models, embedded, reload) {
  const problem = h("p", { class: "form-error", role: "alert", hidden: true, id: "models-error" });
  const fail = (exc) => {
    problem.textContent = exc.status === 403 ? t("settings.adminOnly", { message: exc.message }) : exc.message;
    problem.hidden = false;
  };
  const makeDefault = async (name, button) => {
    button.disabled = true;
    try {
      await api("/api/settings", { method: "PUT", json: { default_model: name } });
      toast(t("models.defaultSet", { name }), "ok");
      reload();
    } catch (exc) {
      fail(exc);
      button.disabled = false;
    }
  };
  const rows = models.map((m) => h("tr", { dataset: { model: m.name } },
    h("td", {}, h("strong", {}, m.name), m.default ? h("span", { class: "badge indexed" }, t("chat.defaultModel")) : null,
      h("div", { class: "muted detail" }, m.source || m.backend || "")),
    h("td", { class: "model-facts" }, modelFacts(m)),
    h("td", {}, h("span", { class: `badge ${m.status === "ready" || m.status === "remote" ? "indexed" : "skipped"}` }, m.status || "—"),
      m.hint ? h("div", { class: "muted detail" }, m.hint) : null),
    h("td", {}, m.default ? null : h("button", { type: "button", class: "btn ghost small model-default",
      onclick: (event) => makeDefault(m.name, event.currentTarget) }, t("models.makeDefault")))));
  const more = embedded.filter((e) => !e.configured_as.length).map((e) => h("li", { dataset: { embedded: e.key } },
    h("strong", {}, e.key), ` (${formatBytes(e.file_bytes)}, ${e.installed ? t("settings.installed") : t("settings.notInstalled")}): `,
    h("code", {}, e.install)));
  return card(t("settings.models"), "models-card",
    models.length ? h("table", { class: "plain-table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("settings.modelName")), h("th", {}, t("settings.modelFacts")), h("th", {}, t("settings.status")), h("th", {}))),
      h("tbody", {}, rows)) : h("p", { class: "muted" }, t("settings.noModels")),
    problem,
    more.length ? h("div", { class: "more-models" }, h("p", { class: "muted" }, t("settings.moreModels")), h("ul", {}, more)) : null,
    h("div", { class: "model-forms" }, addModelForm(reload), pullModelForm(reload)));
}

/** Add a GGUF file on the server's disk by its path (admins). */
function addModelForm(reload) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const form = h("form", { class: "settings-form model-form", id: "model-add-form", novalidate: true },
    h("h4", {}, t("models.addTitle")),
    h("label", { class: "field" }, h("span", {}, t("models.name")), h("input", { type: "text", name: "name", required: true, placeholder: "qwen2.5-1.5b" })),
    h("label", { class: "field" }, h("span", {}, t("models.path")), h("input", { type: "text", name: "path", required: true, placeholder: "/models/qwen2.5-1.5b-instruct-q4_k_m.gguf" })),
    h("label", { class: "field" }, h("span", {}, t("models.nCtx")), h("input", { type: "number", name: "n_ctx", min: 257, step: 1, placeholder: "4096" })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "default" }), h("span", {}, t("models.asDefault"))),
    error,
    h("button", { type: "submit", class: "btn", id: "model-add" }, t("models.add")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    const body = { name: String(data.get("name") || "").trim(), path: String(data.get("path") || "").trim(), default: data.get("default") === "on" };
    if (data.get("n_ctx")) body.n_ctx = Number(data.get("n_ctx"));
    if (!body.name || !body.path) {
      error.textContent = t("models.needNamePath");
      error.hidden = false;
      return;
    }
    try {
      const added = await api("/api/models", { method: "POST", json: body });
      toast(t("models.added", { name: added.name }), "ok");
      reload();
    } catch (exc) {
      error.textContent = exc.status === 403 ? t("settings.adminOnly", { message: exc.message }) : exc.message;
      error.hidden = false;
    }
  });
  return form;
}

/** Download a GGUF from Hugging Face or ModelScope, following its bytes (admins). */
function pullModelForm(reload) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const fill = h("div", { class: "bar-fill" });
  const label = h("div", { class: "job-label", id: "model-pull-label" });
  const status = h("div", { class: "job model-pull", id: "model-pull", hidden: true }, h("div", { class: "bar" }, fill), label);
  const source = h("select", { name: "source" },
    h("option", { value: "huggingface" }, "Hugging Face"), h("option", { value: "modelscope" }, "ModelScope"));
  const submit = h("button", { type: "submit", class: "btn", id: "model-pull-start" }, t("models.pull"));
  const form = h("form", { class: "settings-form model-form", id: "model-pull-form", novalidate: true },
    h("h4", {}, t("models.pullTitle")),
    h("label", { class: "field" }, h("span", {}, t("models.source")), source),
    h("label", { class: "field" }, h("span", {}, t("models.reference")),
      h("input", { type: "text", name: "reference", required: true, placeholder: "Qwen/Qwen2.5-1.5B-Instruct-GGUF" })),
    h("label", { class: "field" }, h("span", {}, t("models.nameOptional")), h("input", { type: "text", name: "name" })),
    h("p", { class: "muted" }, t("models.pullNote")),
    error, status, submit);
  const show = (pull) => {
    status.hidden = false;
    status.dataset.status = pull.status;
    const fraction = pull.total_bytes ? pull.done_bytes / pull.total_bytes : 0;
    fill.style.width = `${Math.round((pull.status === "done" ? 1 : fraction) * 100)}%`;
    if (pull.status === "failed") label.textContent = t("models.pullFailed", { message: pull.error || "" });
    else if (pull.status === "done") label.textContent = t("models.pullDone", { name: pull.model });
    else if (pull.total_bytes) label.textContent = t("models.pulling", { done: formatBytes(pull.done_bytes), total: formatBytes(pull.total_bytes) });
    else label.textContent = t("models.pullStarting");
  };
  const follow = async (pull) => {
    show(pull);
    while (pull.status === "running") {
      await new Promise((resolve) => setTimeout(resolve, 500));
      pull = await api(`/api/models/pulls/${encodeURIComponent(pull.id)}`);
      show(pull);
    }
    return pull;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    const body = { reference: String(data.get("reference") || "").trim(), source: source.value };
    const name = String(data.get("name") || "").trim();
    if (name) body.name = name;
    if (!body.reference) {
      error.textContent = t("models.needReference");
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      const pull = await follow(await api("/api/models/pulls", { method: "POST", json: body }));
      if (pull.status === "done") {
        toast(t("models.pullDone", { name: pull.model }), "ok");
        reload();
      }
    } catch (exc) {
      error.textContent = exc.status === 403 ? t("settings.adminOnly", { message: exc.message }) : exc.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function themeCard() {
  const select = h("select", { id: "theme-select", onchange: () => setTheme(select.value) },
    THEMES.map((name) => h("option", { value: name, selected: theme() === name }, t(`settings.theme.${name}`))));
  return card(t("settings.appearance"), "appearance-card", h("label", { class: "field" }, h("span", {}, t("settings.theme")), select));
}

function numberField(name, label, value, { min, max, step }) {
  return h("label", { class: "field" }, h("span", {}, label),
    h("input", { type: "number", name, min, max, step, value: value ?? "", required: true }));
}

/** The editor of the main settings (admins): saved to kbchat.toml and applied at once. */
function editCard(settings, models, onSaved, notice) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const result = h("p", { class: "ok-text", role: "status", hidden: !notice }, notice || "");
  const chat = settings.chat || {};
  const message = h("textarea", { name: "no_hit_message", rows: 2 }, chat.no_hit_message || "");
  const noHit = h("select", { name: "no_hit", onchange: () => { messageField.hidden = noHit.value !== "message"; } },
    ["refuse", "fallback", "message"].map((p) => h("option", { value: p, selected: chat.no_hit === p }, t(`settings.noHit.${p}`))));
  const messageField = h("label", { class: "field", hidden: chat.no_hit !== "message" }, h("span", {}, t("settings.noHitMessage")), message);
  const form = h("form", { class: "settings-form", id: "settings-form", novalidate: true },
    h("label", { class: "field" }, h("span", {}, t("settings.defaultModel")),
      h("select", { name: "default_model" }, models.map((m) => h("option", { value: m.name, selected: m.name === settings.default_model }, m.name)))),
    numberField("top_k", t("settings.topK"), chat.top_k, { min: 1, max: TOP_K_MAX, step: 1 }),
    numberField("threshold", t("chat.threshold"), settings.retrieval && settings.retrieval.threshold, { min: 0, max: 1, step: 0.01 }),
    numberField("min_score", t("settings.minScore"), chat.min_score, { min: 0, max: 1, step: 0.01 }),
    h("label", { class: "field" }, h("span", {}, t("settings.noHitPolicy")), noHit),
    messageField,
    h("label", { class: "field" }, h("span", {}, t("settings.newEmbedder")),
      h("input", { type: "text", name: "embedder", value: (settings.embedder && settings.embedder.backend) || "" })),
    h("p", { class: "muted" }, t("settings.editNote")),
    error, result,
    h("button", { type: "submit", class: "btn primary", id: "settings-save" }, t("settings.save")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = result.hidden = true;
    const data = new FormData(form);
    const body = {
      default_model: data.get("default_model"),
      top_k: Number(data.get("top_k")),
      threshold: Number(data.get("threshold")),
      min_score: Number(data.get("min_score")),
      no_hit: data.get("no_hit"),
      embedder: String(data.get("embedder") || "").trim(),
    };
    if (body.no_hit === "message") body.no_hit_message = String(data.get("no_hit_message") || "");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const saved = await api("/api/settings", { method: "PUT", json: body });
      toast(t("settings.saved"), "ok");
      onSaved(saved.overridden.length ? t("settings.savedOverridden", { keys: saved.overridden.join(", ") }) : t("settings.saved"));
    } catch (exc) {
      error.textContent = exc.status === 403 ? t("settings.adminOnly", { message: exc.message }) : exc.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return card(t("settings.edit"), "edit-card", form);
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
  const load = (notice) => Promise.allSettled([api("/api/settings"), api("/api/models"), api("/api/models/embedded")]).then(([settingsResult, modelsResult, embeddedResult]) => {
    const settings = settingsResult.status === "fulfilled" ? settingsResult.value || {} : {};
    const models = modelsResult.status === "fulfilled" ? modelsResult.value || [] : [];
    const embedded = embeddedResult.status === "fulfilled" ? embeddedResult.value || [] : [];
    const failed = [settingsResult, modelsResult].filter((r) => r.status === "rejected").map((r) => r.reason.message);
    replace(grid,
      failed.map((m) => h("p", { class: "form-error", role: "alert" }, m)),
      h("div", { class: "settings-columns" },
        modelsCard(models, embedded, () => load()),
        settingsResult.status === "fulfilled" ? editCard(settings, models, load, notice) : null,
        themeCard(),
        card(t("settings.embedder"), "embedder-card", factList(settings, [
          ["embedder.backend", t("settings.backend")], ["embedder.model", t("settings.model")],
          ["embedder.base_url", t("settings.baseUrl")], ["embedder.batch_size", t("settings.batch")]])),
        card(t("settings.answering"), "answering-card", factList(settings, [
          ["chat.no_hit", t("settings.noHitPolicy"), noHitText], ["chat.no_hit_message", t("settings.noHitMessage")],
          ["default_model", t("settings.defaultModel")], ["chat.top_k", t("settings.topK")], ["chat.min_score", t("settings.minScore")],
          ["chat.temperature", t("settings.temperature")], ["chat.max_tokens", t("settings.maxTokens")], ["retrieval.mode", t("search.mode")],
          ["retrieval.threshold", t("chat.threshold")], ["retrieval.fusion", t("settings.fusion")]])),
        card(t("settings.ingest"), "ingest-card", factList(settings, [
          ["ingest.chunk_size", t("kb.chunkSize")], ["ingest.chunk_overlap", t("kb.chunkOverlap")],
          ["ingest.max_file_mb", t("settings.maxFile")], ["ingest.ocr", t("settings.ocr")], ["home", t("settings.home")]]))),
      doctorCard(),
      card(t("settings.all"), "raw-card", h("details", {}, h("summary", {}, t("settings.showAll")),
        h("pre", { class: "raw" }, JSON.stringify(settings, null, 2)))));
  });
  load();
}
