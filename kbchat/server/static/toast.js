// Short messages in the corner: errors from the server stay until closed, others fade.

import { h } from "./dom.js";

/** Show `message`; kind is "error", "ok" or "info". */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const close = h("button", { class: "toast-close", type: "button", "aria-label": "×", onclick: () => item.remove() }, "×");
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, message), close);
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), kind === "ok" ? 2500 : 4000);
  return item;
}
