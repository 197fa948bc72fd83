// Answers as Markdown: markdown-it renders, DOMPurify keeps only the tags and links an answer may
// have, and [n] markers become citation buttons. Model output cannot inject markup or script:
// raw HTML is escaped by markdown-it, then the result is sanitised to an allow-list and returned
// as DOM nodes (never assigned as HTML to the page).

import "./vendor/markdown-it.min.js";
import "./vendor/purify.min.js";

const { markdownit, DOMPurify } = globalThis;

const md = markdownit({ html: false, linkify: true, breaks: true, typographer: false });
md.linkify.set({ fuzzyLink: false, fuzzyEmail: false }); // "readme.md" is a file name, not a site
md.disable("image"); // an answer loads nothing: ![x](url) stays a link
// An answer's "# Title" sits below the page's own headings: h1 becomes h3, and so on.
md.core.ruler.push("answer_headings", (state) => {
  for (const token of state.tokens) {
    if (token.type === "heading_open" || token.type === "heading_close") {
      token.tag = `h${Math.min(Number(token.tag.slice(1)) + 2, 6)}`;
    }
  }
});

const SANITIZE = {
  ALLOWED_TAGS: [
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
  ],
  ALLOWED_ATTR: ["href", "title", "start"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  RETURN_DOM_FRAGMENT: true,
};

const purifier = DOMPurify(window);
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName !== "A") return;
  if (node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const MARKER = /\[(\d{1,3})\]/g;

/** Common list markers of models' answers ("• item", "1、item") as Markdown's own, outside code. */
function normaliseLists(text) {
  let fenced = false;
  return text.split("\n").map((line) => {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) return line;
    return line.replace(/^(\s*)•\s+/, "$1- ").replace(/^(\s*)(\d+)、\s*/, "$1$2. ");
  }).join("\n");
}

/** Replace [n] in the fragment's text (outside code and links) with citation(n) nodes. */
function linkCitations(fragment, citation) {
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement && node.parentElement.closest("code, pre, a")
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const texts = [];
  while (walker.nextNode()) texts.push(walker.currentNode);
  for (const node of texts) {
    const value = node.nodeValue;
    if (!MARKER.test(value)) continue;
    MARKER.lastIndex = 0;
    const parts = document.createDocumentFragment();
    let last = 0;
    for (const match of value.matchAll(MARKER)) {
      const cite = citation(Number(match[1]));
      if (!cite) continue;
      parts.append(value.slice(last, match.index), cite);
      last = match.index + match[0].length;
    }
    if (last === 0) continue;
    parts.append(value.slice(last));
    node.replaceWith(parts);
  }
}

/**
 * Render `text` as a DocumentFragment of sanitised nodes.
 * `citation(n)` returns a node for marker [n], or null to leave the marker as text.
 */
export function renderMarkdown(text, citation = () => null) {
  const html = md.render(normaliseLists(String(text || "")));
  const fragment = purifier.sanitize(html, SANITIZE);
  linkCitations(fragment, citation);
  return fragment;
}
