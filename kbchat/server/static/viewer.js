// The source viewer: a knowledge-base file opened at a citation with the passage highlighted
// (a pdf page drawn by the bundled PDF.js; an image; or the text of the file, its cited sheet or
// slide first), and the file's chunk list. Nothing is loaded from elsewhere.

import { api, send } from "./api.js";
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";

const PDFJS = new URL("./vendor/pdfjs/", import.meta.url);
const IMAGES = /\.(png|jpe?g|bmp|webp)$/i;
const CHUNK_PAGE = 200;
const MIN_NEEDLE = 4;

let pdfjsModule = null;
let viewer = null;

/** PDF.js, imported the first time a pdf is opened. */
async function pdfjs() {
  if (!pdfjsModule) {
    pdfjsModule = await import(new URL("pdf.min.mjs", PDFJS).href);
    pdfjsModule.GlobalWorkerOptions.workerSrc = new URL("pdf.worker.min.mjs", PDFJS).href;
  }
  return pdfjsModule;
}

function fileUrl(kb, file, view) {
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `/api/kbs/${encodeURIComponent(kb)}/${view}/${path}`;
}

// -- finding the passage ---------------------------------------------------------------

/** `text` without whitespace, lower-cased, and where each kept character was in `text`. */
function squeeze(text) {
  const chars = [];
  const at = [];
  for (let i = 0; i < text.length; i += 1) {
    if (/\s/.test(text[i])) continue;
    chars.push(text[i].toLowerCase());
    at.push(i);
  }
  return { text: chars.join(""), at };
}

/** What to look for, best first: the quote, the whole passage, then the passage's sentences. */
function needles(source) {
  const list = [source.quote, source.text];
  const sentences = (source.text || "").split(/(?<=[.!?。！？；;])\s*/).filter((s) => s.trim().length >= 12);
  sentences.sort((a, b) => b.length - a.length);
  return [...list, ...sentences].filter((n) => n && n.trim());
}

/**
 * Where the passage is in `text`, whitespace and case ignored: [start, end) in `text`, or null.
 * Tries each needle in turn, so a quote that the file spells differently still finds its passage.
 */
export function findPassage(text, source) {
  const haystack = squeeze(text);
  for (const needle of needles(source)) {
    const wanted = squeeze(needle).text;
    if (wanted.length < MIN_NEEDLE) continue;
    const found = haystack.text.indexOf(wanted);
    if (found >= 0) return [haystack.at[found], haystack.at[found + wanted.length - 1] + 1];
  }
  return null;
}

/** `text` as nodes with [start, end) wrapped in a highlight mark. */
function marked(text, range) {
  if (!range) return [text];
  const [start, end] = range;
  return [text.slice(0, start), h("mark", { class: "cited-passage" }, text.slice(start, end)), text.slice(end)];
}

// -- the dialog ------------------------------------------------------------------------

function dialog() {
  if (viewer) return viewer;
  const title = h("h2", { class: "viewer-title", id: "viewer-title" });
  const where = h("span", { class: "viewer-where muted" });
  const tabs = h("div", { class: "viewer-tabs", role: "tablist" });
  const actions = h("div", { class: "viewer-actions" });
  const body = h("div", { class: "viewer-body", id: "viewer-body", tabindex: "-1" });
  const close = h("button", { type: "button", class: "btn ghost small", id: "viewer-close" }, t("common.close"));
  const el = h("dialog", { class: "viewer", id: "source-viewer", "aria-labelledby": "viewer-title" },
    h("header", { class: "viewer-head" }, h("div", { class: "viewer-heading" }, title, where), tabs, actions, close),
    body);
  close.addEventListener("click", () => el.close());
  el.addEventListener("close", () => {
    viewer.controller?.abort();
    viewer.objectUrls.forEach((url) => URL.revokeObjectURL(url));
    viewer.objectUrls = [];
    replace(body);
  });
  document.body.append(el);
  viewer = { el, title, where, tabs, actions, body, controller: null, objectUrls: [] };
  return viewer;
}

function locationText(source) {
  const parts = [];
  if (source.page !== null && source.page !== undefined) parts.push(t("cite.page", { page: source.page }));
  if (source.sheet) parts.push(t("cite.sheet", { sheet: source.sheet }));
  if (source.slide !== null && source.slide !== undefined) parts.push(t("cite.slide", { slide: source.slide }));
  return parts.join(" · ");
}

/**
 * Open a knowledge-base file at a citation or search hit.
 * `source`: {kb, file, page?, sheet?, slide?, quote?, text?}; `tab`: "original" or "chunks".
 */
export function openSource(source, tab = "original") {
  const v = dialog();
  v.controller?.abort();
  v.controller = new AbortController();
  v.title.textContent = source.file;
  v.where.textContent = [source.kb, locationText(source)].filter(Boolean).join(" · ");
  const show = (name) => {
    v.tabs.querySelectorAll("button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
    v.el.dataset.tab = name;
    const signal = v.controller.signal;
    const render = name === "chunks" ? renderChunks : renderOriginal;
    render(v, source, signal).catch((exc) => {
      if (exc.name !== "AbortError") replace(v.body, h("p", { class: "form-error", role: "alert" }, exc.message));
    });
  };
  replace(v.tabs, ["original", "chunks"].map((name) =>
    h("button", { type: "button", role: "tab", class: "btn ghost small", dataset: { tab: name }, onclick: () => show(name) },
      t(`viewer.${name}`))));
  replace(v.actions, h("button", {
    type: "button", class: "btn ghost small", id: "viewer-download",
    onclick: () => download(source).catch((exc) => replace(v.body, h("p", { class: "form-error" }, exc.message))),
  }, t("viewer.download")));
  if (!v.el.open) v.el.showModal();
  show(tab);
}

/**
 * A button opening `source` in the viewer; a web page's link for a web source (its file is
 * the address); null for a conversation's own files, which no route serves.
 */
export function sourceButton(source) {
  if (!source || !source.kb || source.kb.startsWith("~")) return null;
  if (/^https?:\/\//i.test(source.file || "")) {
    return h("a", { class: "btn ghost small source-open", href: source.file, target: "_blank", rel: "noopener noreferrer" }, t("viewer.open"));
  }
  return h("button", {
    type: "button", class: "btn ghost small source-open",
    onclick: (event) => { event.preventDefault(); openSource(source); },
  }, t("viewer.open"));
}

async function originalBlob(source, signal, download = false) {
  const response = await send(`${fileUrl(source.kb, source.file, "original")}${download ? "?download=true" : ""}`, { signal });
  return response.blob();
}

async function download(source) {
  const blob = await originalBlob(source, viewer.controller.signal, true);
  const url = URL.createObjectURL(blob);
  viewer.objectUrls.push(url);
  const link = h("a", { href: url, download: source.file.split("/").pop() });
  link.click();
}

async function renderOriginal(v, source, signal) {
  replace(v.body, h("p", { class: "muted" }, t("common.loading")));
  if (/\.pdf$/i.test(source.file)) return renderPdf(v, source, signal);
  if (IMAGES.test(source.file)) return renderImage(v, source, signal);
  return renderText(v, source, signal);
}

// -- text, sheets and slides -------------------------------------------------------------

function partLabel(doc) {
  if (doc.sheet) return t("cite.sheet", { sheet: doc.sheet });
  if (doc.slide !== null && doc.slide !== undefined) return t("cite.slide", { slide: doc.slide });
  if (doc.page !== null && doc.page !== undefined) return t("cite.page", { page: doc.page });
  return null;
}

function isCitedPart(doc, source) {
  if (source.sheet) return doc.sheet === source.sheet;
  if (source.slide !== null && source.slide !== undefined) return doc.slide === source.slide;
  if (source.page !== null && source.page !== undefined) return doc.page === source.page;
  return false;
}

async function renderText(v, source, signal) {
  let body;
  try {
    body = await api(fileUrl(source.kb, source.file, "text"), { signal });
  } catch (exc) {
    if (exc.name === "AbortError" || !source.text) throw exc;
    // The original cannot be read now: show the passage as indexed, and why.
    replace(v.body, h("p", { class: "note warn", role: "alert" }, exc.message),
      h("pre", { class: "viewer-text" }, marked(source.text, findPassage(source.text, source))));
    return;
  }
  const docs = body.documents || [];
  // The cited sheet or slide first (the passage is looked for there before anywhere else).
  const order = [...docs.filter((d) => isCitedPart(d, source)), ...docs.filter((d) => !isCitedPart(d, source))];
  let found = null;
  const sections = order.map((doc) => {
    const range = found ? null : findPassage(doc.text, source);
    const section = h("section", { class: `viewer-part${isCitedPart(doc, source) ? " cited" : ""}` },
      partLabel(doc) ? h("h3", { class: "viewer-part-title" }, partLabel(doc)) : null,
      h("pre", { class: "viewer-text" }, marked(doc.text, range)));
    if (range) found = section;
    return section;
  });
  replace(v.body, body.changed ? h("p", { class: "note warn" }, t("viewer.changed")) : null,
    source.text && !found ? h("p", { class: "note info" }, t("viewer.notFound")) : null, sections);
  const target = v.body.querySelector("mark.cited-passage") || v.body.querySelector(".viewer-part.cited");
  target?.scrollIntoView({ block: "center" });
}

async function renderImage(v, source, signal) {
  const url = URL.createObjectURL(await originalBlob(source, signal));
  v.objectUrls.push(url);
  replace(v.body, h("img", { class: "viewer-image", src: url, alt: source.file }),
    source.text ? h("pre", { class: "viewer-text" }, marked(source.text, findPassage(source.text, source))) : null);
}

// -- pdf ---------------------------------------------------------------------------------

async function renderPdf(v, source, signal) {
  const [lib, blob] = await Promise.all([pdfjs(), originalBlob(source, signal)]);
  const data = new Uint8Array(await blob.arrayBuffer());
  const task = lib.getDocument({
    data, cMapUrl: new URL("cmaps/", PDFJS).href, cMapPacked: true, isEvalSupported: false, useWasm: false,
  });
  signal.addEventListener("abort", () => task.destroy());
  const doc = await task.promise;
  const stage = h("div", { class: "pdf-stage" });
  const counter = h("span", { class: "pdf-counter", id: "pdf-counter" });
  const prev = h("button", { type: "button", class: "btn ghost small", id: "pdf-prev" }, "‹");
  const next = h("button", { type: "button", class: "btn ghost small", id: "pdf-next" }, "›");
  const note = h("p", { class: "note info", hidden: true });
  replace(v.body, h("div", { class: "pdf-nav" }, prev, counter, next), note, stage);
  let current = Math.min(Math.max(1, Number(source.page) || 1), doc.numPages);
  let rendering = null;
  const go = async (number) => {
    current = Math.min(Math.max(1, number), doc.numPages);
    counter.textContent = t("viewer.pageOf", { page: current, pages: doc.numPages });
    prev.disabled = current <= 1;
    next.disabled = current >= doc.numPages;
    rendering?.cancel();
    const cited = current === (Number(source.page) || current);
    rendering = drawPage(lib, doc, current, stage, cited ? source : null);
    const highlighted = await rendering.done;
    note.hidden = !cited || highlighted || !source.text;
    note.textContent = t("viewer.notFound");
  };
  prev.addEventListener("click", () => go(current - 1));
  next.addEventListener("click", () => go(current + 1));
  await go(current);
}

/** Draw page `number` into `stage` (canvas + text layer); highlight `source`'s passage when given. */
function drawPage(lib, doc, number, stage, source) {
  let cancelled = false;
  let renderTask = null;
  let textLayer = null;
  const done = (async () => {
    const page = await doc.getPage(number);
    const width = Math.min(stage.clientWidth || 800, 1000);
    const scale = width / page.getViewport({ scale: 1 }).width;
    const viewport = page.getViewport({ scale });
    const ratio = window.devicePixelRatio || 1;
    const canvas = h("canvas", { class: "pdf-canvas" });
    canvas.width = Math.floor(viewport.width * ratio);
    canvas.height = Math.floor(viewport.height * ratio);
    const layer = h("div", { class: "textLayer" });
    const box = h("div", { class: "pdf-page", dataset: { page: String(number) } }, canvas, layer);
    box.style.setProperty("--scale-factor", String(scale));
    box.style.setProperty("--total-scale-factor", String(scale));
    box.style.width = `${Math.floor(viewport.width)}px`;
    box.style.height = `${Math.floor(viewport.height)}px`;
    renderTask = page.render({
      canvasContext: canvas.getContext("2d"), viewport, transform: ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : null,
    });
    textLayer = new lib.TextLayer({ textContentSource: page.streamTextContent(), container: layer, viewport });
    await Promise.all([renderTask.promise, textLayer.render()]);
    if (cancelled) return false;
    replace(stage, box);
    const marks = source ? highlightPdf(textLayer.textDivs, source) : 0;
    box.dataset.highlighted = String(marks);
    stage.querySelector(".cited-passage")?.scrollIntoView({ block: "center" });
    return marks > 0;
  })().catch((exc) => {
    if (cancelled || exc?.name === "RenderingCancelledException" || exc?.name === "AbortException") return false;
    throw exc;
  });
  return {
    done,
    cancel() {
      cancelled = true;
      renderTask?.cancel();
      textLayer?.cancel();
    },
  };
}

/** Wrap the passage's characters in the text layer's spans in highlight marks; returns how many. */
function highlightPdf(divs, source) {
  const owners = [];  // for each character of the joined text: [div index, offset in the div]
  let joined = "";
  divs.forEach((div, index) => {
    const text = div.textContent;
    for (let i = 0; i < text.length; i += 1) owners.push([index, i]);
    joined += text;
  });
  const range = findPassage(joined, source);
  if (!range) return 0;
  const spans = new Map();  // div index -> [start, end) within it
  for (let i = range[0]; i < range[1]; i += 1) {
    const [index, offset] = owners[i];
    const span = spans.get(index);
    spans.set(index, span ? [span[0], offset + 1] : [offset, offset + 1]);
  }
  spans.forEach(([start, end], index) => {
    const div = divs[index];
    const text = div.textContent;
    replace(div, text.slice(0, start), h("mark", { class: "cited-passage" }, text.slice(start, end)), text.slice(end));
  });
  return spans.size;
}

// -- chunks ------------------------------------------------------------------------------

function chunkItem(chunk, source) {
  const cited = Boolean(source.text) && chunk.text === source.text;
  const where = [locationText(chunk), (chunk.headings || []).join(" › ")].filter(Boolean).join(" · ");
  return h("li", { class: `chunk${cited ? " cited" : ""}`, dataset: { position: String(chunk.position) } },
    h("div", { class: "chunk-head muted" }, h("span", { class: "chunk-pos" }, `#${chunk.position + 1}`), where ? ` · ${where}` : ""),
    h("pre", { class: "viewer-text" }, cited ? marked(chunk.text, findPassage(chunk.text, { quote: source.quote })) : chunk.text));
}

async function renderChunks(v, source, signal) {
  replace(v.body, h("p", { class: "muted" }, t("common.loading")));
  const list = h("ol", { class: "chunk-list", id: "chunk-list" });
  const more = h("button", { type: "button", class: "btn ghost small", id: "chunks-more", hidden: true }, t("viewer.more"));
  const summary = h("p", { class: "muted", id: "chunks-summary" });
  let offset = 0;
  const load = async () => {
    const url = `${fileUrl(source.kb, source.file, "chunks")}?offset=${offset}&limit=${CHUNK_PAGE}`;
    const page = await api(url, { signal });
    list.append(...page.chunks.map((chunk) => chunkItem(chunk, source)));
    offset += page.chunks.length;
    more.hidden = offset >= page.total;
    summary.textContent = page.total
      ? t("viewer.chunkCount", { n: page.total })
      : [t("viewer.noChunks"), page.error].filter(Boolean).join(" ");
  };
  more.addEventListener("click", () => load().catch((exc) => summary.append(h("span", { class: "form-error" }, ` ${exc.message}`))));
  await load();
  replace(v.body, summary, list, more);
  list.querySelector(".chunk.cited")?.scrollIntoView({ block: "center" });
}
