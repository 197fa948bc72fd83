// A small, safe Markdown subset for answers: paragraphs, headings, lists, code, bold, and [n] citations.
// It builds DOM nodes (never innerHTML), so model output cannot inject markup.

import { h } from "./dom.js";

const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|\[(\d{1,2})\]/g;

/**
 * Render `text` as a DocumentFragment.
 * `citation(n)` returns a node for marker [n], or null to leave the marker as text.
 */
export function renderMarkdown(text, citation = () => null) {
  const fragment = document.createDocumentFragment();
  const lines = String(text || "").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === "") {
      i += 1;
    } else if (line.trimStart().startsWith("```")) {
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].trimStart().startsWith("```")) code.push(lines[i++]);
      i += 1;
      fragment.append(h("pre", {}, h("code", {}, code.join("\n"))));
    } else if (/^#{1,4}\s/.test(line)) {
      const level = Math.min(line.match(/^#+/)[0].length + 2, 6);
      fragment.append(h(`h${level}`, {}, inline(line.replace(/^#+\s*/, ""), citation)));
      i += 1;
    } else if (listKind(line)) {
      const kind = listKind(line);
      const list = h(kind);
      while (i < lines.length && listKind(lines[i]) === kind) {
        list.append(h("li", {}, inline(lines[i].replace(/^\s*([-*•]|\d+[.)、])\s+/, ""), citation)));
        i += 1;
      }
      fragment.append(list);
    } else {
      const paragraph = [];
      while (i < lines.length && lines[i].trim() !== "" && !startsBlock(lines[i])) paragraph.push(lines[i++]);
      const p = h("p");
      paragraph.forEach((text, n) => {
        if (n > 0) p.append(h("br"));
        p.append(inline(text, citation));
      });
      fragment.append(p);
    }
  }
  return fragment;
}

function listKind(line) {
  if (/^\s*[-*•]\s+/.test(line)) return "ul";
  if (/^\s*\d+[.)、]\s+/.test(line)) return "ol";
  return null;
}

function startsBlock(line) {
  return Boolean(listKind(line)) || /^#{1,4}\s/.test(line) || line.trimStart().startsWith("```");
}

function inline(text, citation) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    fragment.append(text.slice(last, match.index));
    if (match[1]) fragment.append(h("code", {}, match[1].slice(1, -1)));
    else if (match[2]) fragment.append(h("strong", {}, match[2].slice(2, -2)));
    else fragment.append(citation(Number(match[3])) || match[0]);
    last = match.index + match[0].length;
  }
  fragment.append(text.slice(last));
  return fragment;
}
