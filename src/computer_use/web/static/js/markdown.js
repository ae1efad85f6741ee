// A small Markdown renderer that builds DOM nodes directly, so it is safe by construction:
// text only ever becomes Text nodes, no HTML in the source is interpreted (it shows as
// typed), and links keep only http(s) and mailto targets. It covers what the model writes in
// practice: paragraphs, headings, lists (nested), block quotes, fenced code, tables, rules,
// and inline code, bold, italics, strike-through and links.
import { h } from "./dom.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;
const BLANK = /^\s*$/;

/** Renders `source` to a DocumentFragment. */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  for (const node of parseBlocks(lines)) fragment.appendChild(node);
  return fragment;
}

function parseBlocks(lines) {
  const nodes = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (BLANK.test(line)) {
      i += 1;
      continue;
    }
    let match;
    if ((match = FENCE.exec(line))) {
      const fence = match[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
      i += 1; // the closing fence (or the end)
      const code = h("code", { text: body.join("\n") });
      if (match[2]) code.dataset.language = match[2];
      nodes.push(h("pre", {}, code));
    } else if ((match = HEADING.exec(line))) {
      // The model's "# Title" is styled a step down so it never outshouts the page.
      const level = Math.min(match[1].length + 2, 6);
      nodes.push(h(`h${level}`, {}, parseInline(match[2] || "")));
      i += 1;
    } else if (RULE.test(line)) {
      nodes.push(h("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && (match = QUOTE.exec(lines[i]))) {
        body.push(match[1]);
        i += 1;
      }
      nodes.push(h("blockquote", {}, parseBlocks(body)));
    } else if (LIST_ITEM.test(line)) {
      const [list, next] = parseList(lines, i);
      nodes.push(list);
      i = next;
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1])) {
      const [table, next] = parseTable(lines, i);
      nodes.push(table);
      i = next;
    } else {
      const body = [];
      while (i < lines.length && !BLANK.test(lines[i]) && !startsBlock(lines, i)) {
        body.push(lines[i].trim());
        i += 1;
      }
      nodes.push(h("p", {}, parseInline(body.join("\n"))));
    }
  }
  return nodes;
}

function startsBlock(lines, i) {
  const line = lines[i];
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    RULE.test(line) ||
    QUOTE.test(line) ||
    LIST_ITEM.test(line) ||
    (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]))
  );
}

function parseList(lines, start) {
  const first = LIST_ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const list = h(ordered ? "ol" : "ul");
  if (ordered && Number.parseInt(first[2], 10) !== 1) {
    list.setAttribute("start", String(Number.parseInt(first[2], 10)));
  }
  let i = start;
  while (i < lines.length) {
    const match = LIST_ITEM.exec(lines[i]);
    if (!match || /\d/.test(match[2]) !== ordered) break;
    // Continuation lines are indented past the marker; nested lists live there too.
    const indent = match[1].length + match[2].length + 1;
    const body = [match[3] || ""];
    i += 1;
    while (i < lines.length) {
      const line = lines[i];
      if (BLANK.test(line)) {
        const next = lines[i + 1];
        if (next !== undefined && leadingSpaces(next) >= indent) {
          body.push("");
          i += 1;
          continue;
        }
        break;
      }
      if (leadingSpaces(line) >= Math.min(indent, 4)) {
        body.push(line.slice(Math.min(indent, leadingSpaces(line))));
      } else if (!LIST_ITEM.test(line) && !startsBlock(lines, i)) {
        body.push(line.trim()); // a lazy continuation of the item's paragraph
      } else {
        break;
      }
      i += 1;
    }
    const blocks = parseBlocks(body);
    // A one-paragraph item renders without the <p>, like every Markdown renderer does.
    const item = h("li");
    if (blocks.length && blocks[0].tagName === "P") {
      item.append(...blocks[0].childNodes);
      blocks.shift();
    }
    item.append(...blocks);
    list.appendChild(item);
    while (i < lines.length && BLANK.test(lines[i]) && LIST_ITEM.test(lines[i + 1] || "")) i += 1;
  }
  return [list, i];
}

function leadingSpaces(line) {
  return line.length - line.replace(/^ +/, "").length;
}

function splitRow(line) {
  const cells = [];
  let cell = "";
  const text = line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "");
  for (let j = 0; j < text.length; j += 1) {
    if (text[j] === "\\" && text[j + 1] === "|") {
      cell += "|";
      j += 1;
    } else if (text[j] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else cell += text[j];
  }
  cells.push(cell.trim());
  return cells;
}

function parseTable(lines, start) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((spec) => {
    if (spec.startsWith(":") && spec.endsWith(":")) return "center";
    if (spec.endsWith(":")) return "right";
    return null;
  });
  const cell = (tag, text, column) =>
    h(tag, { class: aligns[column] ? `align-${aligns[column]}` : null }, parseInline(text));
  const head = h("thead", {}, h("tr", {}, header.map((text, c) => cell("th", text, c))));
  const body = h("tbody");
  let i = start + 2;
  while (i < lines.length && !BLANK.test(lines[i]) && lines[i].includes("|")) {
    const cells = splitRow(lines[i]);
    body.appendChild(h("tr", {}, header.map((_, c) => cell("td", cells[c] || "", c))));
    i += 1;
  }
  return [h("div", { class: "table-wrap" }, h("table", {}, head, body)), i];
}

// --- inline ---

const INLINE_RULES = [
  // [sticky regex, build(match, inLink) -> Node | null (null: not here, try the next rule)]
  [/\\([!-/:-@[-`{-~])/y, (m) => document.createTextNode(m[1])],
  [/(`+)([\s\S]*?[^`])\1(?!`)/y, (m) => h("code", { text: m[2].replace(/^ (.*) $/, "$1") })],
  [
    /!\[([^\]]*)\]\(\s*<?((?:[^\s<>()]|\([^\s<>()]*\))*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/y,
    (m, inLink) => (inLink ? null : link(m[2], [`[image: ${m[1] || m[2]}]`])),
  ],
  [
    /\[((?:[^[\]\\]|\\.|\[[^\]]*\])*)\]\(\s*<?((?:[^\s<>()]|\([^\s<>()]*\))*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/y,
    (m, inLink) => (inLink ? null : link(m[2], parseInline(m[1], true))),
  ],
  [/<((?:https?:\/\/|mailto:)[^\s<>]+)>/y, (m, inLink) => (inLink ? null : link(m[1], [m[1]]))],
  [/\*\*(?=\S)([\s\S]*?\S)\*\*/y, (m, inLink) => h("strong", {}, parseInline(m[1], inLink))],
  [/__(?=\S)([\s\S]*?\S)__(?!\w)/y, (m, inLink) => h("strong", {}, parseInline(m[1], inLink))],
  [/~~(?=\S)([\s\S]*?\S)~~/y, (m, inLink) => h("del", {}, parseInline(m[1], inLink))],
  [/\*(?=[^\s*])([\s\S]*?[^\s*])\*(?!\*)/y, (m, inLink) => h("em", {}, parseInline(m[1], inLink))],
  [/_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/y, (m, inLink) => h("em", {}, parseInline(m[1], inLink))],
  [/https?:\/\/[^\s<>"'`]+/y, (m, inLink) => (inLink ? null : bareUrl(m[0]))],
  [/\n/y, () => h("br")],
];
const SPECIAL = new Set(["\\", "`", "!", "[", "<", "*", "_", "~", "h", "\n"]);

/** Inline Markdown of `text` as an array of nodes; `inLink` turns off nested links. */
export function parseInline(text, inLink = false) {
  const nodes = [];
  let plain = "";
  let i = 0;
  const flush = () => {
    if (plain) nodes.push(document.createTextNode(plain));
    plain = "";
  };
  outer: while (i < text.length) {
    const ch = text[i];
    // `_` and bare URLs only start at a word boundary ("snake_case" stays as typed).
    const atBoundary = i === 0 || !/\w/.test(text[i - 1]);
    if (SPECIAL.has(ch) && ((ch !== "_" && ch !== "h") || atBoundary)) {
      for (const [rule, build] of INLINE_RULES) {
        rule.lastIndex = i;
        const match = rule.exec(text);
        if (!match) continue;
        const node = build(match, inLink);
        if (!node) continue;
        flush();
        nodes.push(node);
        // A bare URL may give back trailing punctuation it matched (see bareUrl).
        i += node.consumed ?? match[0].length;
        continue outer;
      }
    }
    plain += ch;
    i += 1;
  }
  flush();
  return nodes;
}

/** Only web and mail links survive; anything else (javascript:, data:, relative) is text. */
export function safeHref(raw) {
  try {
    const url = new URL(raw);
    if (["http:", "https:", "mailto:"].includes(url.protocol)) return url.href;
  } catch {
    // not an absolute URL
  }
  return null;
}

// Remote images are never loaded (no network at run time, and the CSP forbids it): an image
// becomes a link to it.
function link(rawHref, content) {
  const href = safeHref(rawHref.replace(/\\(.)/g, "$1"));
  if (!href) return h("span", { class: "md-unsafe-link" }, content);
  return h("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" }, content);
}

function bareUrl(raw) {
  // Trailing punctuation ends the sentence, not the URL; so does an unbalanced ")".
  let url = raw.replace(/[.,;:!?'"]+$/, "");
  while (url.endsWith(")") && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) {
    url = url.slice(0, -1);
  }
  const node = link(url, [url]);
  node.consumed = url.length;
  return node;
}
