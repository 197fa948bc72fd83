// Files attached to a conversation: pick or drop them, upload with progress, then each file's status.

import { api, upload } from "./api.js";
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";

const POLL_MS = 700;

/** A new conversation id (files can start a conversation before its first question). */
export function newConversationId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}

function filesPath(id) {
  return `/api/conversations/${encodeURIComponent(id)}/files`;
}

/**
 * The attach button and the list of attached files.
 * `conversation()` gives the current conversation id (or null); `onConversation(id)` is called
 * when attaching files starts a new conversation; `onChange(files)` after every refresh.
 */
export function attachments({ conversation, onConversation, onChange = () => {} }) {
  const list = h("ul", { class: "attachments", id: "attachments", hidden: true, "aria-label": t("files.attached") });
  const input = h("input", { type: "file", multiple: true, id: "attach-input", class: "sr-only" });
  const button = h("button", {
    type: "button", class: "btn ghost attach-button", id: "attach", title: t("files.attachHint"),
    onclick: () => input.click(),
  }, t("files.attach"));
  let rows = [];
  let uploading = [];
  let progress = "";
  let timer = null;
  let shown = null;

  function chip(file) {
    const status = file.status || "pending";
    const label = status === "uploading" ? t("files.uploading", { pct: file.pct ?? 0 }) : t(`status.${status}`);
    return h("li", { class: `attachment ${status}`, dataset: { name: file.name }, title: file.error || file.name },
      h("span", { class: "attachment-name" }, file.name),
      h("span", { class: `badge ${status}` }, label),
      file.error ? h("span", { class: "reason" }, file.error) : null);
  }

  function draw() {
    const all = [...uploading, ...rows];
    list.hidden = all.length === 0;
    replace(list, all.map(chip), progress ? h("li", { class: "attachment-progress muted" }, progress) : null);
  }

  /** Files of the catalog, plus the files a job refused (never in the catalog), by name. */
  function merge(body) {
    const byName = new Map((body.files || []).map((f) => [f.name, f]));
    for (const job of body.jobs || []) {
      for (const outcome of job.files || []) {
        if (!byName.has(outcome.name)) byName.set(outcome.name, outcome);
      }
    }
    return [...byName.values()];
  }

  async function refresh(id = conversation()) {
    clearTimeout(timer);
    shown = id;
    if (!id) {
      rows = [];
      progress = "";
      draw();
      onChange(rows);
      return;
    }
    let body;
    try {
      body = await api(filesPath(id));
    } catch (exc) {
      progress = exc.message;
      draw();
      return;
    }
    if (shown !== id) return;
    rows = merge(body);
    const running = (body.jobs || []).filter((j) => j.status === "queued" || j.status === "running");
    progress = running.length ? t("files.progress", { done: running[0].done || 0, total: running[0].total || 0 }) : "";
    draw();
    onChange(rows);
    if (running.length) timer = setTimeout(() => refresh(id), POLL_MS);
  }

  async function add(files) {
    if (!files.length) return;
    let id = conversation();
    if (!id) {
      id = newConversationId();
      onConversation(id);
    }
    uploading = files.map((f) => ({ name: f.name, status: "uploading", pct: 0 }));
    draw();
    const form = new FormData();
    files.forEach((file) => form.append("files", file, file.name));
    try {
      await upload(filesPath(id), form, (fraction) => {
        uploading.forEach((f) => { f.pct = Math.round(fraction * 100); });
        draw();
      });
      uploading = [];
    } catch (exc) {
      uploading = uploading.map((f) => ({ ...f, status: "failed", error: exc.message }));
      draw();
      return;
    }
    await refresh(id);
  }

  /** Files dropped anywhere on `target` are attached. */
  function bindDrop(target) {
    target.addEventListener("dragover", (e) => {
      if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
      e.preventDefault();
      target.classList.add("drop-over");
    });
    target.addEventListener("dragleave", (e) => {
      if (!target.contains(e.relatedTarget)) target.classList.remove("drop-over");
    });
    target.addEventListener("drop", (e) => {
      e.preventDefault();
      target.classList.remove("drop-over");
      add([...(e.dataTransfer?.files || [])]);
    });
  }

  input.addEventListener("change", () => { add([...input.files]); input.value = ""; });
  return {
    button: h("span", { class: "attach" }, button, input),
    list,
    add,
    refresh,
    bindDrop,
    files: () => rows,
    stop() { clearTimeout(timer); shown = null; },
  };
}
