// Traces: a filtered, server-paged list of requests, and one trace's span waterfall with attributes.
import { api } from "../api.js";
import { badge, clear, h, json, ms, pager, table, when } from "../dom.js";

const PAGE_SIZE = 20;

export async function render(view, args, query) {
  if (args[0]) return renderTrace(view, args[0]);
  return renderList(view, query);
}

// the filter form's fields as the telemetry API's attribute_filters (all must hold on one span)
function conditions(query) {
  const out = [];
  if (query.get("name")) out.push({ key: "name", op: "eq", value: query.get("name") });
  if (query.get("model")) out.push({ key: "gen_ai.request.model", op: "eq", value: query.get("model") });
  if (query.get("status")) out.push({ key: "status", op: "eq", value: query.get("status") });
  if (query.get("key")) {
    const raw = query.get("value") ?? "";
    const numeric = raw !== "" && !isNaN(Number(raw));
    out.push({ key: query.get("key"), op: query.get("op") || "eq", value: numeric ? Number(raw) : raw });
  }
  return out;
}

function durationMs(span) {
  return span.end_time ? new Date(span.end_time) - new Date(span.start_time) : null;
}

async function renderList(view, query) {
  const page = Number(query.get("page") || 0);
  const filters = conditions(query);
  const field = (name, label, attrs = {}) => h("label", {}, `${label} `, h("input", { name, value: query.get(name) || "", ...attrs }));
  const form = h("form", { class: "row panel", onsubmit: (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
    location.hash = `#/traces?${params}`;
  } },
  field("name", "Span name", { placeholder: "POST /v1/chat/completions", size: 24 }),
  field("model", "Model", { size: 18 }),
  h("label", {}, "Status ", h("select", { name: "status" },
    ["", "ok", "error"].map((s) => h("option", { value: s, selected: query.get("status") === s }, s || "any")))),
  field("key", "Attribute", { placeholder: "http.response.status_code", size: 22 }),
  h("select", { name: "op", "aria-label": "Operator" },
    ["eq", "ne", "gt", "lt"].map((op) => h("option", { value: op, selected: query.get("op") === op }, op))),
  field("value", "Value", { size: 10 }),
  h("button", { type: "submit", class: "primary" }, "Filter"));

  // one more than a page: whether there is a next one, without counting them all
  const traces = (await api("/v1/telemetry/traces", { query: {
    limit: PAGE_SIZE + 1, offset: page * PAGE_SIZE, attribute_filters: filters.length ? filters : undefined,
  } })).data;
  const shown = traces.slice(0, PAGE_SIZE);
  // each trace's root span (name, status code): one small read per row of this page
  const roots = await Promise.all(shown.map((t) =>
    api(`/v1/telemetry/traces/${encodeURIComponent(t.trace_id)}/spans/${encodeURIComponent(t.root_span_id)}`).catch(() => null)));
  const rows = shown.map((t, i) => ({ ...t, root: roots[i] }));
  const goto = (p) => { query.set("page", p); location.hash = `#/traces?${query}`; };
  view.append(
    h("h1", {}, "Traces"), form,
    table([
      { label: "Started", value: (t) => when(t.start_time) },
      { label: "Request", value: (t) => t.root?.name ?? "" },
      { label: "Status", value: (t) => String(t.root?.attributes?.["http.response.status_code"] ?? "") },
      { label: "Duration", value: (t) => ms(durationMs(t)) },
      { label: "Trace", value: (t) => h("span", { class: "mono" }, t.trace_id) },
    ], rows, { testid: "traces", empty: "No trace matches.",
      onClick: (t) => { location.hash = `#/traces/${encodeURIComponent(t.trace_id)}`; } }),
    pager({ page, hasMore: traces.length > PAGE_SIZE, onPage: goto }));
}

async function renderTrace(view, traceId) {
  const trace = await api(`/v1/telemetry/traces/${encodeURIComponent(traceId)}`);
  const tree = await api(`/v1/telemetry/spans/${encodeURIComponent(trace.root_span_id)}/tree`);
  const spans = Object.values(tree.data).sort((a, b) => new Date(a.start_time) - new Date(b.start_time));
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const depth = (s) => { let d = 0; for (let p = byId.get(s.parent_span_id); p && d < 50; p = byId.get(p.parent_span_id)) d++; return d; };
  // children right after their parent, in start order: the waterfall reads top-down
  const ordered = [];
  const children = new Map();
  for (const s of spans) {
    const parent = byId.has(s.parent_span_id) ? s.parent_span_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  const walk = (id) => { for (const s of children.get(id) || []) { ordered.push(s); walk(s.span_id); } };
  walk(null);

  const t0 = Math.min(...spans.map((s) => new Date(s.start_time).getTime()));
  const t1 = Math.max(...spans.map((s) => new Date(s.end_time || s.start_time).getTime()), t0 + 1);
  const detail = h("div", { "data-testid": "span-detail" });
  const rows = ordered.map((s) => {
    const start = new Date(s.start_time).getTime();
    const end = new Date(s.end_time || s.start_time).getTime();
    const row = h("div", { class: "span-row", "data-testid": "span", onclick: () => select(s, row) },
      h("div", { class: "name", style: { paddingLeft: `${8 + depth(s) * 14}px` }, title: s.name }, s.name),
      h("div", { class: "track" }, h("div", {
        class: `bar ${s.status === "error" ? "error" : ""}`,
        style: { left: `${((start - t0) / (t1 - t0)) * 100}%`, width: `${((end - start) / (t1 - t0)) * 100}%` },
      })),
      h("div", { class: "dur" }, ms(end - start)));
    return row;
  });
  function select(span, row) {
    for (const r of rows) r.classList.toggle("selected", r === row);
    clear(detail,
      h("h2", {}, span.name, " ", badge(span.status || "unset")),
      table([{ label: "Attribute", value: ([k]) => h("span", { class: "mono" }, k) },
        { label: "Value", value: ([, v]) => (typeof v === "object" && v !== null ? json(v) : String(v)) }],
      Object.entries({ span_id: span.span_id, parent_span_id: span.parent_span_id, start_time: span.start_time,
        end_time: span.end_time, ...(span.attributes || {}) }), { testid: "attributes" }));
  }
  view.append(
    h("p", {}, h("a", { href: "#/traces" }, "← Traces")),
    h("h1", {}, `Trace `, h("span", { class: "mono" }, traceId)),
    h("p", { class: "muted" }, `${spans.length} spans · ${ms(t1 - t0)} · started ${when(trace.start_time)}`),
    h("div", { class: "waterfall", "data-testid": "waterfall" }, rows),
    detail);
  if (rows.length) select(ordered[0], rows[0]);
}
