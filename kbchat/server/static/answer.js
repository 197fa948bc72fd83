// One chat message on screen: the user's question, or an answer that streams in and gains citations.

import { formatScore, formatSeconds, h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";
import { sourceButton } from "./viewer.js";

let counter = 0;

/** Append the user's question to `container`. */
export function userMessage(container, text) {
  const el = h("article", { class: "msg user" }, h("div", { class: "msg-content" }, h("p", {}, text)));
  container.append(el);
  return el;
}

/** Where in its file a passage is (page, sheet, slide, headings), for citations and search hits. */
export function where(passage) {
  const parts = [];
  if (passage.page !== null && passage.page !== undefined) parts.push(t("cite.page", { page: passage.page }));
  if (passage.sheet) parts.push(t("cite.sheet", { sheet: passage.sheet }));
  if (passage.slide !== null && passage.slide !== undefined) parts.push(t("cite.slide", { slide: passage.slide }));
  if (passage.headings && passage.headings.length) parts.push(passage.headings.join(" › "));
  return parts.join(" · ");
}

function sourceItem(id, citation) {
  const quote = citation.quote || citation.text || "";
  const full = citation.quote && citation.text && citation.text !== citation.quote ? citation.text : null;
  const location = where(citation);
  return h(
    "details",
    { class: "source", id: `src-${id}-${citation.marker}`, dataset: { marker: citation.marker } },
    h(
      "summary",
      {},
      h("span", { class: "cite-num" }, String(citation.marker)),
      h("span", { class: "source-file" }, citation.file),
      location ? h("span", { class: "source-where" }, location) : null,
      h("span", { class: "source-score", title: t("cite.score") }, formatScore(citation.score)),
    ),
    h("blockquote", { class: "quote" }, quote),
    full ? h("details", { class: "passage" }, h("summary", {}, t("cite.full")), h("p", {}, full)) : null,
    h("div", { class: "source-kb" }, t("cite.kb", { kb: citation.kb }), sourceButton(citation)),
  );
}

/**
 * Append an answer to `container` and return its controller:
 * append(text), queued(position, etaS) (waiting for the model; 0: its turn), setCitations(list), finish(doneData), fail(message), stop(),
 * load(text, citations, storedMessage) (a stored turn shows its outcome, notices and closest passages again).
 */
export function assistantMessage(container) {
  const id = ++counter;
  const body = h("div", { class: "answer-body" });
  const sources = h("div", { class: "sources", hidden: true });
  const closest = h("div", { class: "closest-sources", hidden: true });
  const notes = h("div", { class: "notes" });
  const steps = h("details", { class: "tool-steps", hidden: true, open: true });
  const stepList = h("ol", {});
  steps.append(h("summary", {}, t("tool.steps")), stepList);
  const stepItems = new Map();
  const meta = h("div", { class: "meta" });
  const el = h(
    "article",
    { class: "msg assistant streaming", "aria-busy": "true" },
    h("div", { class: "avatar", "aria-hidden": "true" }, "kb"),
    h("div", { class: "msg-content" }, steps, body, notes, sources, closest, meta),
  );
  container.append(el);
  let text = "";
  let citations = [];
  let scheduled = false;
  let place = null; // {n, s} while waiting in the server's queue

  const openSource = (marker) => {
    const item = el.querySelector(`#src-${id}-${marker}`);
    if (!item) return;
    item.open = true;
    item.classList.remove("flash");
    void item.offsetWidth;
    item.classList.add("flash");
    item.scrollIntoView({ block: "nearest", behavior: "smooth" });
  };
  const marker = (n) => {
    const citation = citations.find((c) => c.marker === n);
    if (!citation) return null;
    return h("button", {
      type: "button", class: "cite", dataset: { marker: n }, title: `${citation.file} ${where(citation)}`.trim(),
      "aria-label": t("cite.open", { n }), onclick: () => openSource(n),
    }, String(n));
  };
  const draw = () => {
    scheduled = false;
    replace(body, renderMarkdown(text, marker));
    if (el.classList.contains("streaming") && !text) {
      body.append(h("p", { class: "thinking" }, place ? t("chat.queued", place) : t("chat.thinking")));
    } else if (el.classList.contains("streaming")) {
      const target = body.lastElementChild || body;
      target.append(h("span", { class: "caret", "aria-hidden": "true" }));
    }
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(draw);
    }
  };
  const setCitations = (list) => {
    citations = Array.isArray(list) ? list : [];
    replace(sources, h("h4", {}, t("cite.sources")), citations.map((c) => sourceItem(id, c)));
    sources.hidden = citations.length === 0;
    schedule();
  };
  const settle = () => {
    el.classList.remove("streaming");
    el.removeAttribute("aria-busy");
    draw();
  };
  const note = (message, kind) => notes.append(h("div", { class: `note ${kind}`, role: kind === "error" ? "alert" : null }, message));
  // What the answer rests on: the same after a reload (the server stores it with the turn).
  const showGrounding = (done) => {
    replace(notes);
    (done.notices || []).forEach((n) => note(n, "info"));
    if (done.outcome === "refused") note(t("chat.refused"), "info");
    else if (done.outcome === "fallback") note(t("chat.fallback"), "warn");
    else if (done.grounded === false) note(t("chat.ungrounded"), "warn");
    const list = Array.isArray(done.closest) ? done.closest : [];
    replace(closest, h("h4", {}, t("cite.closest")), list.map((c) => sourceItem(`${id}-closest`, c)));
    closest.hidden = list.length === 0;
  };

  // One line per tool call: the call when it starts, then its result (or error) and time.
  const toolStep = (step) => {
    const call = `${step.tool}(${JSON.stringify(step.arguments || {})})`;
    const outcome = !step.done ? h("span", { class: "muted" }, t("tool.running"))
      : step.error ? h("span", { class: "tool-error" }, t("tool.failed", { error: step.error }))
      : h("span", { class: "tool-result" }, step.result || "");
    const item = h("li", { class: "tool-step", dataset: { tool: step.tool } },
      h("code", {}, call), " ", outcome,
      step.ms !== null && step.ms !== undefined && step.done ? h("small", { class: "muted" }, ` ${t("tool.ms", { ms: Math.round(step.ms) })}`) : null);
    const key = step.call_id || `${step.step}`;
    const old = stepItems.get(key);
    if (old) old.replaceWith(item);
    else stepList.append(item);
    stepItems.set(key, item);
    steps.hidden = false;
  };
  const showSteps = (list) => {
    if (!Array.isArray(list) || !list.length) return;
    stepItems.clear();
    stepList.replaceChildren();
    list.forEach(toolStep);
  };

  draw();
  return {
    element: el,
    get text() {
      return text;
    },
    append(delta) {
      text += delta;
      schedule();
    },
    queued(position, etaS) {
      place = position > 0 ? { n: position, s: Math.max(1, Math.round(etaS)) } : null;
      schedule();
    },
    setCitations,
    toolStep,
    finish(done) {
      if (typeof done.answer === "string") text = done.answer;
      showSteps(done.tool_steps);
      if (Array.isArray(done.citations)) setCitations(done.citations);
      showGrounding(done);
      const timings = done.timings || {};
      const usage = done.usage || {};
      replace(meta, [
        done.model ? h("span", {}, done.model) : null,
        timings.ttft_s !== undefined ? h("span", {}, t("chat.ttft", { s: formatSeconds(timings.ttft_s) })) : null,
        timings.total_s !== undefined ? h("span", {}, t("chat.total", { s: formatSeconds(timings.total_s) })) : null,
        usage.completion_tokens ? h("span", {}, t("chat.tokens", { n: usage.completion_tokens })) : null,
      ]);
      settle();
    },
    fail(message) {
      note(message, "error");
      el.classList.add("failed");
      settle();
    },
    stop() {
      note(t("chat.stopped"), "warn");
      settle();
    },
    load(content, list, stored) {
      text = content || "";
      setCitations(list || []);
      if (stored) showSteps(stored.tool_steps);
      if (stored && stored.outcome) showGrounding(stored);
      settle();
    },
  };
}
