// One chat message on screen: the user's question, or an answer that streams in and gains citations.

import { formatScore, formatSeconds, h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";
import { toast } from "./toast.js";
import { sourceButton } from "./viewer.js";

let counter = 0;

/** Copy `text` to the clipboard (the Clipboard API, or a selection where the page is not a secure context). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { class: "sr-only", readonly: true }, text);
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error(t("answer.copyFailed"));
}

/**
 * Append the user's question to `container`. `id` is its stored id (dataset.id, also set
 * later for a new question); `onEdit(text, element)` is called when the user edits and resends it.
 */
export function userMessage(container, text, { id = null, onEdit = null } = {}) {
  const bubble = h("div", { class: "msg-content" }, h("p", {}, text));
  const el = h("article", { class: "msg user", dataset: id === null || id === undefined ? {} : { id } }, bubble);
  if (onEdit) {
    const edit = h("button", { type: "button", class: "btn ghost small msg-edit", title: t("answer.edit"), "aria-label": t("answer.edit") }, icon("pencil"));
    const startEdit = () => {
      const area = h("textarea", { class: "edit-question", rows: "3", "aria-label": t("answer.edit") }, text);
      const cancel = () => replace(bubble, h("p", {}, text));
      const send = () => {
        const value = area.value.trim();
        if (value) onEdit(value, el);
      };
      area.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          send();
        } else if (event.key === "Escape") cancel();
      });
      replace(bubble, area, h("div", { class: "edit-actions" },
        h("button", { type: "button", class: "btn ghost small edit-cancel", onclick: cancel }, t("common.cancel")),
        h("button", { type: "button", class: "btn primary small edit-send", onclick: send }, t("answer.resend"))));
      area.focus();
    };
    edit.addEventListener("click", startEdit);
    el.prepend(edit);
  }
  container.append(el);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

const ICONS = {
  thumb: ["M3 10h4v11H3z", "M7 10l4-8c1.7 0 3 1.3 3 3v3h5.5c1.2 0 2.1 1.1 1.9 2.3l-1.4 8c-.2 1-1 1.7-2 1.7H7"],
  pencil: ["M4 20h4L19 9l-4-4L4 16z", "M13 7l4 4"],
};

/** A line icon in the text colour (emoji need a font many Linux desktops lack); `turned` rotates it 180°. */
export function icon(name, turned = false) {
  const svg = document.createElementNS(SVG, "svg");
  const attrs = { viewBox: "0 0 24 24", width: "16", height: "16", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linejoin": "round", "aria-hidden": "true" };
  for (const [key, value] of Object.entries(attrs)) svg.setAttribute(key, value);
  if (turned) svg.setAttribute("transform", "rotate(180)");
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/**
 * The actions under a finished answer: copy, regenerate, and a rating (thumbs up/down with an
 * optional comment). `actions.rate(verdict, comment)` stores a rating and resolves with it,
 * `actions.clearRating()` takes it back, `actions.regenerate()` asks again.
 */
function answerActions(getText, actions) {
  let feedback = null;
  const up = h("button", { type: "button", class: "btn ghost small action-up", "aria-pressed": "false", title: t("answer.good"), "aria-label": t("answer.good") }, icon("thumb"));
  const down = h("button", { type: "button", class: "btn ghost small action-down", "aria-pressed": "false", title: t("answer.bad"), "aria-label": t("answer.bad") }, icon("thumb", true));
  const comment = h("textarea", { class: "feedback-comment", rows: "2", maxlength: "2000", placeholder: t("answer.commentHint"), "aria-label": t("answer.commentHint") });
  const save = h("button", { type: "button", class: "btn small feedback-save" }, t("answer.commentSave"));
  const form = h("div", { class: "feedback-form", hidden: true }, comment, save);
  const said = h("p", { class: "feedback-said muted", hidden: true });
  const draw = () => {
    up.setAttribute("aria-pressed", String(feedback?.verdict === "up"));
    down.setAttribute("aria-pressed", String(feedback?.verdict === "down"));
    said.hidden = !(feedback && feedback.comment);
    said.textContent = feedback && feedback.comment ? t("answer.commented", { comment: feedback.comment }) : "";
  };
  const rate = async (verdict) => {
    try {
      if (feedback && feedback.verdict === verdict) {
        await actions.clearRating();
        feedback = null;
        form.hidden = true;
      } else {
        feedback = await actions.rate(verdict, feedback ? feedback.comment : "");
        comment.value = feedback.comment || "";
        form.hidden = false;
        comment.focus();
      }
      draw();
    } catch (exc) {
      toast(exc.message, "error");
    }
  };
  up.addEventListener("click", () => rate("up"));
  down.addEventListener("click", () => rate("down"));
  save.addEventListener("click", async () => {
    if (!feedback) return;
    try {
      feedback = await actions.rate(feedback.verdict, comment.value);
      form.hidden = true;
      draw();
      toast(t("answer.thanks"), "ok");
    } catch (exc) {
      toast(exc.message, "error");
    }
  });
  const copy = h("button", { type: "button", class: "btn ghost small action-copy", title: t("answer.copy") }, t("answer.copy"));
  copy.addEventListener("click", async () => {
    try {
      await copyText(getText());
      toast(t("answer.copied"), "ok");
    } catch (exc) {
      toast(exc.message, "error");
    }
  });
  const regenerate = h("button", { type: "button", class: "btn ghost small action-regenerate", title: t("answer.regenerate"), onclick: () => actions.regenerate() }, t("answer.regenerate"));
  const bar = h("div", { class: "answer-actions", role: "group", "aria-label": t("answer.actions") }, copy, regenerate, up, down);
  const element = h("div", { class: "answer-tools" }, bar, form, said);
  return {
    element,
    setFeedback(value) {
      feedback = value || null;
      draw();
    },
    setRatable(ratable) {
      up.hidden = down.hidden = !ratable;
    },
  };
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
 * `actions` (optional): {rate(id, verdict, comment), clearRating(id), regenerate(controller)} for the answer's buttons,
 * and `plain`: the question went to the model alone (no knowledge base, no file), so nothing was searched;
 * the answer can be rated once it has a stored id (dataset.id: from done.message_id or the stored message).
 */
export function assistantMessage(container, actions = null) {
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
  const answerId = () => (el.dataset.id ? Number(el.dataset.id) : null);
  const tools = actions ? answerActions(() => text, {
    rate: (verdict, comment) => actions.rate(answerId(), verdict, comment),
    clearRating: () => actions.clearRating(answerId()),
    regenerate: () => actions.regenerate(controller),
  }) : null;
  const setId = (id) => {
    if (id === null || id === undefined) delete el.dataset.id;
    else el.dataset.id = String(id);
    if (tools) tools.setRatable(answerId() !== null);
  };
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
    if (tools && !tools.element.isConnected) {
      tools.setRatable(answerId() !== null);
      el.querySelector(".msg-content").append(tools.element);
    }
    draw();
  };
  const note = (message, kind) => notes.append(h("div", { class: `note ${kind}`, role: kind === "error" ? "alert" : null }, message));
  // What the answer rests on: the same after a reload (the server stores it with the turn).
  const showGrounding = (done) => {
    replace(notes);
    (done.notices || []).forEach((n) => note(n, "info"));
    if (done.outcome === "refused") note(t("chat.refused"), "info");
    else if (done.outcome === "fallback") note(t("chat.fallback"), "warn");
    else if (done.grounded === false && actions?.plain) note(t("chat.plain"), "info");
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
  const controller = {
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
      setId(done.message_id);
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
      if (stored) {
        setId(stored.id);
        showSteps(stored.tool_steps);
        if (tools) tools.setFeedback(stored.feedback);
      }
      if (stored && stored.outcome) showGrounding(stored);
      settle();
    },
  };
  return controller;
}
