// The knowledge-base view: the list of knowledge bases, the create form, and the selected one's page.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { renderKbDetail } from "./kbfiles.js";
import { toast } from "./toast.js";

const EMBEDDERS = ["e5+use", "e5", "use", "openai"];

function numberField(id, label, placeholder) {
  return h("label", { class: "field" }, h("span", {}, label),
    h("input", { type: "number", id, name: id, min: "1", step: "1", placeholder }));
}

function createForm(onCreated) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const form = h(
    "form",
    { id: "create-kb" },
    h("label", { class: "field" }, h("span", {}, t("kb.name")),
      h("input", { id: "kb-name", name: "name", required: true, maxlength: "64", autocomplete: "off", placeholder: "manuals" })),
    h("label", { class: "field" }, h("span", {}, t("kb.description")),
      h("input", { id: "kb-description", name: "description", autocomplete: "off", placeholder: t("kb.descriptionHint") })),
    h("details", { class: "advanced" },
      h("summary", {}, t("kb.advanced")),
      h("label", { class: "field" }, h("span", {}, t("kb.embedder")),
        h("input", { id: "kb-embedder", name: "embedder", list: "embedder-names", autocomplete: "off", placeholder: t("kb.embedderDefault") }),
        h("datalist", { id: "embedder-names" }, EMBEDDERS.map((name) => h("option", { value: name })))),
      h("div", { class: "row" }, numberField("kb-chunk-size", t("kb.chunkSize"), "400"), numberField("kb-chunk-overlap", t("kb.chunkOverlap"), "60"))),
    error,
    h("button", { type: "submit", class: "btn primary block", id: "kb-create-submit" }, t("kb.createButton")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (id) => form.querySelector(`#${id}`).value.trim();
    const body = { name: value("kb-name") };
    if (value("kb-description")) body.description = value("kb-description");
    if (value("kb-embedder")) body.embedder = value("kb-embedder");
    if (value("kb-chunk-size")) body.chunk_size = Number(value("kb-chunk-size"));
    if (value("kb-chunk-overlap")) body.chunk_overlap = Number(value("kb-chunk-overlap"));
    error.hidden = true;
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const kb = await api("/api/kbs", { method: "POST", json: body });
      form.reset();
      toast(t("kb.created", { name: kb.name || body.name }), "ok");
      onCreated(kb.name || body.name);
    } catch (exc) {
      error.textContent = exc.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return h("details", { class: "card create-kb", id: "create-kb-box" }, h("summary", {}, t("kb.create")), form);
}

function listItem(kb, selected) {
  const failed = (kb.status && kb.status.failed) || 0;
  const pending = (kb.status && kb.status.pending) || 0;
  return h(
    "li",
    { class: kb.name === selected ? "active" : null, dataset: { name: kb.name } },
    h("a", { href: `#/kbs/${encodeURIComponent(kb.name)}`, class: "kb-link" },
      h("span", { class: "kb-title" }, kb.name),
      h("span", { class: "kb-meta" }, t("kb.counts", { files: kb.files ?? 0, chunks: kb.chunks ?? 0 })),
      failed ? h("span", { class: "badge failed" }, t("kb.failedCount", { n: failed })) : null,
      pending ? h("span", { class: "badge pending" }, t("kb.pendingCount", { n: pending })) : null),
  );
}

/** Render the knowledge-base view; `selected` names the knowledge base to open. Returns a cleanup function. */
export function renderKbs(root, selected, navigate) {
  const list = h("ul", { class: "kb-list", id: "kb-list" });
  const detail = h("section", { class: "kb-detail", id: "kb-detail" });
  const go = (name) => { location.hash = `#/kbs/${encodeURIComponent(name)}`; };
  const create = createForm(go);
  const panel = h("aside", { class: "side-panel kb-panel" }, h("h3", { class: "panel-title" }, t("nav.kbs")), list, create);
  replace(root, h("div", { class: "split kb-layout" }, panel, detail));
  let kbs = [];
  let disposeDetail = null;

  async function refreshList() {
    try {
      kbs = (await api("/api/kbs")) || [];
    } catch (exc) {
      replace(list, h("li", { class: "form-error" }, t("kb.loadError", { message: exc.message })));
      return;
    }
    create.open = create.open || !kbs.length || window.matchMedia("(min-width: 901px)").matches;
    if (!kbs.length) replace(list, h("li", { class: "empty-small" }, t("kb.none")));
    else replace(list, kbs.map((kb) => listItem(kb, selected)));
  }

  function emptyDetail() {
    replace(detail, h("div", { class: "empty" },
      h("h2", {}, kbs.length ? t("kb.pick") : t("kb.firstTitle")),
      h("p", {}, kbs.length ? t("kb.pickText") : t("kb.firstText"))));
  }

  async function load() {
    await refreshList();
    if (selected) {
      disposeDetail = renderKbDetail(detail, selected, {
        onChanged: refreshList,
        onDeleted: () => { navigate("#/kbs"); selected = null; refreshList().then(emptyDetail); },
      });
    } else if (kbs.length && window.matchMedia("(min-width: 901px)").matches) {
      location.replace(`#/kbs/${encodeURIComponent(kbs[0].name)}`);
    } else {
      emptyDetail();
    }
  }
  load().catch((exc) => toast(exc.message, "error"));

  return () => { if (disposeDetail) disposeDetail(); };
}
