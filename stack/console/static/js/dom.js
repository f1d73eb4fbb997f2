// A few DOM helpers: h() builds elements, the rest are the widgets every page shares.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el, ...children) { el.replaceChildren(); el.append(...children.flat().filter(Boolean)); return el; }

export function errorBox(err) { return h("div", { class: "error", role: "alert" }, err.message || String(err)); }

// rows: objects; columns: [{label, value(row) -> node|string}]; onClick(row) makes rows clickable
export function table(columns, rows, { onClick, empty = "Nothing here yet.", testid } = {}) {
  if (!rows.length) return h("p", { class: "muted", "data-testid": testid }, empty);
  return h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {
      class: onClick ? "clickable" : "",
      onclick: onClick ? () => onClick(row) : undefined,
    }, columns.map((c) => h("td", { class: c.class || "" }, c.value(row)))))));
}

// Previous / next over a server-paged list; load(page) re-renders
export function pager({ page, hasMore, onPage, label }) {
  return h("div", { class: "pager" },
    h("button", { type: "button", disabled: page <= 0, onclick: () => onPage(page - 1) }, "Previous"),
    h("span", { class: "muted" }, label ?? `page ${page + 1}`),
    h("button", { type: "button", disabled: !hasMore, onclick: () => onPage(page + 1) }, "Next"));
}

export function badge(text) { return h("span", { class: `badge ${String(text).split(/[ :]/)[0]}` }, text); }

export function when(value) {
  if (!value) return "";
  const d = new Date(value);
  return isNaN(d) ? String(value) : d.toLocaleString();
}

export function ms(value) {
  if (value === null || value === undefined || isNaN(value)) return "";
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 2 : 0)} ms`;
}

export function json(value) { return h("pre", { class: "mono" }, JSON.stringify(value, null, 2)); }

// The text of a message's content: a string, or the text parts of a list
export function contentText(content) {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? (p.type ? `[${p.type}]` : JSON.stringify(p))).join("");
  return content.text ?? JSON.stringify(content);
}

export function messageView(message) {
  const calls = message.tool_calls || [];
  return h("div", { class: `msg ${message.role}` },
    h("span", { class: "role" }, message.role + (message.name ? ` · ${message.name}` : "")),
    contentText(message.content),
    calls.map((c) => h("pre", { class: "mono" }, `→ ${c.function?.name ?? c.tool_name}(${c.function?.arguments ?? JSON.stringify(c.arguments)})`)));
}
