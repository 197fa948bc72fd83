// The retrieval test box: run a search against one knowledge base and show the hits with their scores.

import { api } from "./api.js";
import { where } from "./answer.js";
import { formatScore, h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { TOP_K_MAX } from "./limits.js";
import { sourceButton } from "./viewer.js";

function hitItem(hit, rank) {
  const location = where(hit);
  const fill = h("span", { class: "score-fill" });
  fill.style.width = `${Math.round(Math.max(0, Math.min(1, Number(hit.score) || 0)) * 100)}%`;
  return h("li", { class: "hit" },
    h("div", { class: "hit-head" },
      h("span", { class: "hit-rank" }, `#${rank}`),
      h("strong", { class: "hit-file" }, hit.file),
      location ? h("span", { class: "muted" }, location) : null,
      h("span", { class: "hit-score", title: t("cite.score") },
        h("span", { class: "score-bar" }, fill),
        h("span", { class: "score-value" }, formatScore(hit.score))),
      sourceButton(hit)),
    h("p", { class: "hit-text" }, hit.text));
}

/** A form that searches knowledge base `kbName` and lists the hits. */
export function searchBox(kbName) {
  const results = h("div", { class: "search-results", id: "search-results" });
  const query = h("input", { type: "search", id: "search-query", required: true, placeholder: t("search.placeholder"), autocomplete: "off" });
  const topK = h("input", { type: "number", id: "search-topk", min: "1", max: String(TOP_K_MAX), value: "5" });
  const mode = h("select", { id: "search-mode" }, ["hybrid", "dense", "bm25"].map((m) => h("option", { value: m }, t(`search.mode.${m}`))));
  const threshold = h("input", { type: "number", id: "search-threshold", min: "0", max: "1", step: "0.05", placeholder: t("chat.default") });
  const submit = h("button", { type: "submit", class: "btn primary", id: "search-submit" }, t("search.run"));
  const form = h("form", { class: "search-form" },
    query,
    h("label", { class: "field inline" }, h("span", {}, t("chat.topk")), topK),
    h("label", { class: "field inline" }, h("span", {}, t("search.mode")), mode),
    h("label", { class: "field inline" }, h("span", {}, t("chat.threshold")), threshold),
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { kbs: [kbName], query: query.value.trim(), top_k: Number(topK.value) || 5, mode: mode.value };
    if (threshold.value !== "") body.threshold = Number(threshold.value);
    submit.disabled = true;
    replace(results, h("p", { class: "muted" }, t("common.loading")));
    try {
      const found = await api("/api/search", { method: "POST", json: body });
      const hits = found.hits || [];
      replace(results,
        (found.notices || []).map((n) => h("div", { class: "note info" }, n)),
        hits.length
          ? h("ol", { class: "hits" }, hits.map((hit, i) => hitItem(hit, i + 1)))
          : h("p", { class: "empty-small", id: "search-empty" }, t("search.none")));
    } catch (exc) {
      replace(results, h("p", { class: "form-error", role: "alert" }, exc.message));
    } finally {
      submit.disabled = false;
    }
  });
  return h("div", { class: "card search-box" }, form, results);
}
