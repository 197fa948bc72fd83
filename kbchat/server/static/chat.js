// The chat view: conversation history, knowledge-base / model / retrieval options, and the composer.

import { api, readEvents, send } from "./api.js";
import { assistantMessage, icon, userMessage } from "./answer.js";
import { attachments } from "./attachments.js";
import { confirmButton, formatTime, h, replace } from "./dom.js";
import { SAMPLE_KB } from "./firstrun.js";
import { lang, t } from "./i18n.js";
import { TOP_K_MAX } from "./limits.js";
import { toast } from "./toast.js";

const PREFS_KEY = "kbchat.chatPrefs";

function loadPrefs() {
  let stored = {};
  try {
    stored = JSON.parse(localStorage.getItem(PREFS_KEY) || "{}") || {};
  } catch {
    stored = {};
  }
  const prefs = { kbs: [], model: "", topK: "", threshold: "", mode: "auto", ...stored };
  // Never chosen: the knowledge bases are preselected once they are known (see firstKbs).
  return { prefs, kbsChosen: Array.isArray(stored.kbs) };
}

/** What a visitor who never chose starts with: the sample knowledge base if there is one,
 * else the only knowledge base if there is exactly one, else none (plain chat). */
function firstKbs(kbs) {
  if (kbs.some((kb) => kb.name === SAMPLE_KB)) return [SAMPLE_KB];
  return kbs.length === 1 ? [kbs[0].name] : [];
}

function field(label, control, compact = false) {
  return h("label", { class: compact ? "field inline compact" : "field inline" }, h("span", {}, label), control);
}

/** Render the chat view into `root`; `conversationId` opens that conversation. Returns a cleanup function. */
export function renderChat(root, conversationId, navigate) {
  const { prefs, kbsChosen } = loadPrefs();
  const savePrefs = () => localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  const state = { kbs: [], conversations: [], current: null, controller: null, tools: null };
  const toolNames = () => (state.tools || []).map((tool) => tool.source.startsWith("mcp:") ? `${tool.name} (${tool.source})` : tool.name).join(", ") || "…";
  async function loadTools() {
    if (state.tools !== null) return;
    state.tools = [];
    try {
      state.tools = (await api("/api/agent/tools")) || [];
    } catch (exc) {
      toast(exc.message, "error");
    }
    updateMode();
  }

  const convList = h("ul", { class: "conv-list", id: "conv-list" });
  const convSearch = h("input", {
    type: "search", id: "conv-search", placeholder: t("chat.search"), "aria-label": t("chat.search"), maxlength: "200",
  });
  const panel = h(
    "aside",
    { class: "side-panel conv-panel", id: "conv-panel" },
    h("button", { type: "button", class: "btn primary block", id: "new-chat", onclick: () => newChat() }, t("chat.new")),
    h("h3", { class: "panel-title" }, t("chat.history")),
    convSearch,
    convList,
  );
  const pickerSummary = h("summary", { id: "kb-summary" });
  const pickerMenu = h("div", { class: "picker-menu", role: "group" });
  const picker = h("details", { class: "picker", id: "kb-picker" }, pickerSummary, pickerMenu);
  const modelSelect = h("select", { id: "model-select" });
  const modeSelect = h("select", { id: "mode-select" },
    h("option", { value: "auto" }, t("chat.modeAuto")),
    h("option", { value: "agent" }, t("chat.modeAgent")),
    h("option", { value: "web" }, t("chat.modeWeb")));
  modeSelect.value = ["auto", "agent", "web"].includes(prefs.mode) ? prefs.mode : "auto";
  const topK = h("input", {
    type: "number", id: "top-k", min: "1", max: String(TOP_K_MAX), step: "1", value: String(prefs.topK), placeholder: t("chat.default"),
  });
  const threshold = h("input", {
    type: "number", id: "threshold", min: "0", max: "1", step: "0.05", value: String(prefs.threshold), placeholder: t("chat.default"),
  });
  const historyToggle = h("button", {
    type: "button", class: "btn ghost small only-narrow", id: "history-toggle",
    onclick: () => root.classList.toggle("panel-open"),
  }, t("chat.history"));
  const toolbar = h(
    "div",
    { class: "chat-toolbar" },
    historyToggle,
    field(t("chat.mode"), modeSelect, true),
    field(t("chat.kbs"), picker, true),
    field(t("chat.model"), modelSelect, true),
    h("span", { class: "retrieval-opts" }, field(t("chat.topk"), topK), field(t("chat.threshold"), threshold)),
  );
  const messages = h("div", { class: "messages", id: "messages" });
  const input = h("textarea", { id: "question", rows: "1", placeholder: t("chat.placeholder"), "aria-label": t("chat.placeholder") });
  const sendButton = h("button", { type: "submit", class: "btn primary", id: "send" }, t("chat.send"));
  const stopButton = h("button", { type: "button", class: "btn danger", id: "stop", hidden: true, onclick: () => stop() }, t("chat.stop"));
  const modeHint = h("div", { class: "mode-hint", id: "mode-hint" });
  const attached = attachments({
    conversation: () => state.current,
    onConversation: (id) => {
      state.current = id;
      navigate(`#/chat/${encodeURIComponent(id)}`);
    },
    onChange: () => { updateMode(); refreshConversations(); },
  });
  const composer = h("form", { class: "composer", id: "composer" }, attached.list,
    h("div", { class: "composer-box" }, attached.button, input, sendButton, stopButton), modeHint);
  const main = h("section", { class: "chat-main" }, toolbar, messages, composer);
  attached.bindDrop(main);
  replace(root, h("div", { class: "split chat-layout" }, panel, main));

  function updateMode() {
    const chosen = prefs.kbs.filter((name) => state.kbs.some((kb) => kb.name === name));
    pickerSummary.textContent = chosen.length ? chosen.join(", ") : t("chat.noKb");
    const files = attached.files().filter((f) => f.status === "indexed" || f.status === "pending").map((f) => f.name);
    const sources = [...chosen, ...files];
    const mode = modeSelect.value === "agent"
      ? t("chat.modeAgentHint", { kbs: sources.join(", ") || t("chat.modeAgentAll"), tools: toolNames() })
      : modeSelect.value === "web" ? t("chat.modeWebHint")
      : files.length ? t("files.mode", { sources: sources.join(", ") })
      : chosen.length ? t("chat.modeKb", { kbs: chosen.join(", ") }) : t("chat.modePlain");
    replace(modeHint, h("span", {}, mode), h("span", { class: "keys" }, t("chat.keys")));
    topK.disabled = threshold.disabled = chosen.length === 0;
    return chosen;
  }

  function drawPicker() {
    if (!state.kbs.length) {
      replace(pickerMenu, h("p", { class: "muted" }, t("chat.noKbs"), " ", h("a", { href: "#/kbs" }, t("chat.createKb"))));
    } else {
      replace(pickerMenu, state.kbs.map((kb) => {
        const box = h("input", { type: "checkbox", value: kb.name, checked: prefs.kbs.includes(kb.name) });
        box.addEventListener("change", () => {
          prefs.kbs = box.checked ? [...new Set([...prefs.kbs, kb.name])] : prefs.kbs.filter((n) => n !== kb.name);
          savePrefs();
          updateMode();
        });
        return h("label", { class: "check" }, box, h("span", {}, kb.name),
          h("small", { class: "muted" }, t("kb.counts", { files: kb.files ?? 0, chunks: kb.chunks ?? 0 })));
      }));
    }
    updateMode();
  }

  function drawModels(models) {
    const options = models.length ? models : [{ name: "", default: true }];
    replace(modelSelect, options.map((m) => h("option", { value: m.name }, m.name ? `${m.name}${m.default ? ` (${t("chat.defaultModel")})` : ""}` : t("chat.default"))));
    const preferred = options.find((m) => m.name === prefs.model) || options.find((m) => m.default) || options[0];
    modelSelect.value = preferred.name;
  }

  function drawConversations() {
    if (!state.conversations.length) {
      replace(convList, h("li", { class: "empty-small" }, convSearch.value.trim() ? t("chat.noMatch") : t("chat.noHistory")));
      return;
    }
    replace(convList, state.conversations.map((c) => {
      const link = h("a", { href: `#/chat/${encodeURIComponent(c.id)}`, class: "conv-link" },
        h("span", { class: "conv-title" }, c.title || t("chat.untitled")),
        h("span", { class: "conv-meta" }, [(c.kbs || []).join(", ") || t("chat.plainShort"), formatTime(c.updated_at, lang())].filter(Boolean).join(" · ")));
      const item = h("li", { class: c.id === state.current ? "active" : null, dataset: { id: c.id } }, link);
      const exportMenu = h("details", { class: "conv-export" },
        h("summary", { class: "btn ghost small", title: t("chat.export"), "aria-label": t("chat.export") }, "⤓"),
        h("div", { class: "picker-menu" },
          h("button", { type: "button", class: "btn ghost small export-md", onclick: (event) => exportConversation(c, "markdown", event) }, t("chat.exportMarkdown")),
          h("button", { type: "button", class: "btn ghost small export-json", onclick: (event) => exportConversation(c, "json", event) }, t("chat.exportJson"))));
      item.append(
        h("button", { type: "button", class: "btn ghost small conv-rename", title: t("chat.rename"), "aria-label": t("chat.rename"), onclick: () => startRename(item, link, c) }, icon("pencil")),
        exportMenu,
        confirmButton({
          label: "×", confirmLabel: t("common.confirmDelete"), className: "btn ghost small conv-delete", title: t("chat.delete"),
          onConfirm: () => deleteConversation(c.id),
        }),
      );
      return item;
    }));
  }

  function startRename(item, link, conversation) {
    const field = h("input", { type: "text", class: "conv-title-input", value: conversation.title, maxlength: "200", "aria-label": t("chat.rename") });
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = field.value.trim();
      if (save && !title) toast(t("chat.titleEmpty"), "error");
      else if (save && title !== conversation.title) {
        try {
          await api(`/api/conversations/${encodeURIComponent(conversation.id)}`, { method: "PATCH", json: { title } });
        } catch (exc) {
          toast(exc.message, "error");
        }
      }
      await refreshConversations();
    };
    field.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") finish(false);
    });
    field.addEventListener("blur", () => finish(true));
    link.replaceWith(field);
    field.focus();
    field.select();
  }

  async function exportConversation(conversation, format, event) {
    event.target.closest("details").open = false;
    try {
      const response = await send(`/api/conversations/${encodeURIComponent(conversation.id)}/export?format=${format}`);
      const named = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
      const url = URL.createObjectURL(await response.blob());
      const link = h("a", { href: url, download: named ? named[1] : `conversation.${format === "json" ? "json" : "md"}`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (exc) {
      toast(exc.message, "error");
    }
  }

  function emptyState() {
    replace(messages, h("div", { class: "empty", id: "chat-empty" },
      h("h2", {}, t("chat.emptyTitle")),
      h("p", {}, state.kbs.length ? t("chat.emptyText") : t("chat.emptyNoKb")),
      state.kbs.length ? null : h("a", { class: "btn", href: "#/kbs" }, t("chat.createKb"))));
  }

  async function refreshConversations() {
    const search = convSearch.value.trim();
    try {
      const query = search ? `?q=${encodeURIComponent(search)}` : "";
      const found = (await api(`/api/conversations${query}`)) || [];
      if (search !== convSearch.value.trim()) return; // a newer search is on its way
      state.conversations = found;
    } catch (exc) {
      state.conversations = [];
      if (exc.status !== 401) toast(t("chat.historyError", { message: exc.message }), "error");
    }
    drawConversations();
  }

  function newChat() {
    stop();
    state.current = null;
    navigate("#/chat");
    emptyState();
    attached.refresh(null);
    drawConversations();
    root.classList.remove("panel-open");
    input.focus();
  }

  async function deleteConversation(id) {
    try {
      await api(`/api/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (exc) {
      toast(exc.message, "error");
      return;
    }
    if (id === state.current) newChat();
    await refreshConversations();
  }

  async function openConversation(id) {
    try {
      const conversation = await api(`/api/conversations/${encodeURIComponent(id)}`);
      state.current = conversation.id ?? id;
      await attached.refresh(state.current);
      messages.replaceChildren();
      // Answers of a conversation that never used a knowledge base or a file were plain chat.
      const plain = !(conversation.kbs || []).length && plainChat([]);
      for (const m of conversation.messages || []) {
        if (m.role === "user") showQuestion(m.content, m.id);
        else if (m.role === "assistant") answerView(plain).load(m.content, m.citations, m);
      }
      if (Array.isArray(conversation.kbs)) {
        prefs.kbs = conversation.kbs;
        drawPicker();
      }
      if (conversation.model && [...modelSelect.options].some((o) => o.value === conversation.model)) modelSelect.value = conversation.model;
      messages.scrollTop = messages.scrollHeight;
    } catch (exc) {
      state.current = null;
      navigate("#/chat");
      emptyState();
      toast(t("chat.openError", { message: exc.message }), "error");
    }
    drawConversations();
  }

  function setBusy(busy) {
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
    root.classList.toggle("busy", busy);
  }

  function stop() {
    if (state.controller) state.controller.abort();
  }

  // The turns on screen: questions can be edited and resent, answers copied, regenerated and rated.
  function showQuestion(text, id = null) {
    return userMessage(messages, text, { id, onEdit: (edited, element) => resend(element, edited) });
  }

  /** Whether a question asked now goes to the model alone: no knowledge base, no attached file. */
  function plainChat(kbs) {
    const files = attached.files().some((f) => f.status === "indexed" || f.status === "pending");
    return modeSelect.value === "auto" && kbs.length === 0 && !files;
  }

  function answerView(plain = false) {
    const base = () => `/api/conversations/${encodeURIComponent(state.current)}/messages`;
    return assistantMessage(messages, {
      plain,
      rate: (id, verdict, comment) => api(`${base()}/${id}/feedback`, { method: "PUT", json: { verdict, comment } }),
      clearRating: (id) => api(`${base()}/${id}/feedback`, { method: "DELETE" }),
      regenerate: (answer) => {
        const asked = answer.element.previousElementSibling;
        if (asked && asked.classList.contains("user")) resend(asked, asked.querySelector(".msg-content p")?.textContent || "");
      },
    });
  }

  /** Ask `text` in place of the question `element` and every turn after it (the server replaces them too). */
  function resend(element, text) {
    if (state.controller || !text) return;
    const replaceFrom = element.dataset.id ? Number(element.dataset.id) : null;
    while (element.nextElementSibling) element.nextElementSibling.remove();
    element.remove();
    ask(text, replaceFrom);
  }

  function requestBody(question, kbs, replaceFrom) {
    const body = { question, kbs, stream: true };
    if (replaceFrom !== null && state.current) body.replace_from = replaceFrom;
    if (modeSelect.value !== "auto") body.mode = modeSelect.value;
    if (modelSelect.value) body.model = modelSelect.value;
    if (state.current) body.conversation_id = state.current;
    if (kbs.length) {
      if (topK.value) body.top_k = Number(topK.value);
      if (threshold.value !== "") body.threshold = Number(threshold.value);
    }
    return body;
  }

  function onEvent(answer, asked, name, data) {
    if (name === "delta") answer.append(data.text ?? "");
    else if (name === "tool") answer.toolStep(data);
    else if (name === "queued") answer.queued(data.position, data.eta_s);
    else if (name === "citations") answer.setCitations(data.citations);
    else if (name === "done") {
      if (data.question_id !== null && data.question_id !== undefined) asked.dataset.id = String(data.question_id);
      answer.finish(data);
      if (data.conversation_id) {
        state.current = data.conversation_id;
        navigate(`#/chat/${encodeURIComponent(data.conversation_id)}`);
      }
    } else if (name === "error") answer.fail((data.error && data.error.message) || String(data));
    messages.scrollTop = messages.scrollHeight;
  }

  async function ask(text, replaceFrom = null) {
    const kbs = updateMode();
    document.getElementById("chat-empty")?.remove();
    const asked = showQuestion(text);
    const answer = answerView(plainChat(kbs));
    messages.scrollTop = messages.scrollHeight;
    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);
    let ended = false;
    try {
      const response = await send("/api/chat", {
        method: "POST", json: requestBody(text, kbs, replaceFrom), signal: controller.signal, accept: "text/event-stream",
      });
      if ((response.headers.get("content-type") || "").includes("application/json")) {
        onEvent(answer, asked, "done", await response.json());
        ended = true;
      } else {
        await readEvents(response, (name, data) => {
          if (name === "done" || name === "error") ended = true;
          onEvent(answer, asked, name, data);
        });
      }
      if (!ended) answer.fail(t("chat.incomplete"));
    } catch (exc) {
      if (exc.name === "AbortError") answer.stop();
      else answer.fail(exc.message);
    } finally {
      state.controller = null;
      setBusy(false);
      input.focus();
    }
    await refreshConversations();
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || state.controller) return;
    input.value = "";
    input.style.height = "";
    ask(question);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  });
  let searchTimer = null;
  convSearch.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(refreshConversations, 250);
  });
  modelSelect.addEventListener("change", () => { prefs.model = modelSelect.value; savePrefs(); });
  modeSelect.addEventListener("change", () => {
    prefs.mode = modeSelect.value;
    savePrefs();
    updateMode();
    if (modeSelect.value === "agent") loadTools();
  });
  if (modeSelect.value === "agent") loadTools();
  topK.addEventListener("change", () => { prefs.topK = topK.value; savePrefs(); });
  threshold.addEventListener("change", () => { prefs.threshold = threshold.value; savePrefs(); });
  const closePicker = (event) => { if (!picker.contains(event.target)) picker.open = false; };
  document.addEventListener("click", closePicker);

  async function load() {
    emptyState();
    drawPicker();
    drawModels([]);
    const [kbs, models] = await Promise.allSettled([api("/api/kbs"), api("/api/models")]);
    if (kbs.status === "fulfilled") state.kbs = kbs.value || [];
    else toast(t("kb.loadError", { message: kbs.reason.message }), "error");
    if (!kbsChosen) prefs.kbs = firstKbs(state.kbs);  // stored once the visitor changes a setting
    if (models.status === "fulfilled") drawModels(models.value || []);
    else toast(t("settings.modelsError", { message: models.reason.message }), "error");
    drawPicker();
    if (conversationId) await openConversation(conversationId);
    // Redraw the empty state with the KB list, unless a question was asked meanwhile.
    else if (document.getElementById("chat-empty")) emptyState();
    await refreshConversations();
  }
  load();
  input.focus();

  return () => {
    stop();
    clearTimeout(searchTimer);
    attached.stop();
    document.removeEventListener("click", closePicker);
  };
}
