// Entry point: language, API-key prompt, health indicator, and the hash router between the three views.

import { api, apiKey, onKeyChange, setApiKey, setKeyPrompt } from "./api.js";
import { renderChat } from "./chat.js";
import { watchFirstRun } from "./firstrun.js";
import { applyStatic, lang, onLangChange, setLang, t } from "./i18n.js";
import { renderKbs } from "./kbs.js";
import { renderSettings } from "./settings.js";

const VIEWS = { chat: renderChat, kbs: renderKbs, settings: renderSettings };

let cleanup = null;
let renderedRoute = null;

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = VIEWS[parts[0]] ? parts[0] : "chat";
  return { name, arg: parts.slice(1).join("/") || null };
}

/** Render the view named by the URL hash (re-rendering it when `force`). */
function show(force = false) {
  const { name, arg } = route();
  const key = `${name}:${arg}`;
  if (!force && key === renderedRoute) return;
  renderedRoute = key;
  if (cleanup) cleanup();
  const view = document.getElementById("view");
  view.replaceChildren();
  view.dataset.view = name;
  document.querySelectorAll(".tabs a").forEach((a) => {
    a.classList.toggle("active", a.dataset.view === name);
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  document.title = `${t(`nav.${name}`)} · kbchat`;
  cleanup = VIEWS[name](view, arg, (hash) => navigate(hash)) || null;
}

/** Change the URL hash without re-rendering (views keep their own state in sync). */
function navigate(hash) {
  if (location.hash === hash) return;
  history.replaceState(null, "", hash);
  const { name, arg } = route();
  renderedRoute = `${name}:${arg}`;
}

let pendingKey = null;

function promptForKey(message) {
  if (pendingKey) return pendingKey;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  error.hidden = !message;
  error.textContent = message ? t("auth.rejected", { message }) : "";
  input.value = "";
  pendingKey = new Promise((resolve) => {
    const finish = (value) => {
      dialog.removeEventListener("close", onClose);
      document.getElementById("key-cancel").onclick = null;
      if (dialog.open) dialog.close();
      pendingKey = null;
      resolve(value);
    };
    const onClose = () => finish(dialog.returnValue === "ok" ? input.value.trim() || null : null);
    dialog.addEventListener("close", onClose);
    document.getElementById("key-cancel").onclick = () => finish(null);
  });
  dialog.returnValue = "";
  dialog.showModal();
  input.focus();
  return pendingKey;
}

async function checkHealth() {
  const badge = document.getElementById("health");
  try {
    await api("/api/health");
    badge.className = "health ok";
    badge.title = t("health.ok");
  } catch (exc) {
    badge.className = exc.status === 401 ? "health" : "health bad";
    badge.title = exc.status === 401 ? "" : t("health.bad", { message: exc.message });
  }
}

function boot() {
  setKeyPrompt(promptForKey);
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    document.getElementById("key-dialog").close("ok");
  });
  const forget = document.getElementById("forget-key");
  const showForget = () => { forget.hidden = !apiKey(); };
  forget.addEventListener("click", () => { setApiKey(null); show(true); });
  onKeyChange(showForget);
  showForget();

  const select = document.getElementById("lang-select");
  select.value = lang();
  select.addEventListener("change", () => setLang(select.value));
  onLangChange(() => {
    select.value = lang();
    applyStatic(document);
    show(true);
  });
  applyStatic(document);

  window.addEventListener("hashchange", () => show());
  show(true);
  checkHealth();
  watchFirstRun();
}

boot();
