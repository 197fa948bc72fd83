// Building DOM nodes without innerHTML, and formatting numbers for people.

/**
 * Create an element: h("button", {class: "btn", onclick: fn}, "text", childNode).
 * Attributes starting with "on" become listeners; null/false attributes and children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Human-readable byte count. */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Score in [0, 1] as a fixed 2-decimal string. */
export function formatScore(score) {
  return typeof score === "number" ? score.toFixed(2) : "";
}

/** A timestamp (ISO string or epoch seconds) in the user's locale, short form. */
export function formatTime(value, lang) {
  if (value === null || value === undefined || value === "") return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const locale = lang === "zh" ? "zh-CN" : "en";
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString(locale, { month: "short", day: "numeric" });
}

/** Seconds with one or two decimals. */
export function formatSeconds(seconds) {
  return typeof seconds === "number" ? `${seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1)} s` : "";
}

/**
 * A button that asks for a second click before running `onConfirm` (no modal needed).
 * The armed state falls back after a few seconds.
 */
export function confirmButton({ label, confirmLabel, className = "btn ghost small", title, onConfirm }) {
  const button = h("button", { type: "button", class: className, title: title || null }, label);
  let timer = null;
  const reset = () => {
    clearTimeout(timer);
    button.classList.remove("armed");
    button.textContent = label;
  };
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    event.stopPropagation();
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = confirmLabel;
      timer = setTimeout(reset, 4000);
      return;
    }
    reset();
    button.disabled = true;
    try {
      await onConfirm();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
