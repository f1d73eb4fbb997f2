// Prompt logs: every project's logs newest first, filtered by project and session, and one log
// with its messages, output, settings and feedback.
import { api } from "../api.js";
import { h, json, messageView, pager, table, when } from "../dom.js";

const PAGE_SIZE = 20;

export async function render(view, args, query) {
  if (args[0]) return renderLog(view, args[0]);
  const page = Number(query.get("page") || 0);
  const project = query.get("project") || "";
  const session = query.get("session") || "";
  const filter = (changes) => {
    const next = new URLSearchParams({ project, session, ...changes });
    for (const [k, v] of [...next]) if (!v) next.delete(k);
    location.hash = `#/logs?${next}`;
  };
  const [projects, logs] = await Promise.all([
    api("/v1/prompt-log-projects", { query: { limit: 100 } }),
    api("/v1/prompt-logs", { query: { project_id: project, session_id: session, limit: PAGE_SIZE, offset: page * PAGE_SIZE } }),
  ]);
  const sessionInput = h("input", { name: "session", value: session, size: 32, placeholder: "sesh_…", "aria-label": "Session" });
  view.append(
    h("h1", {}, "Prompt logs"),
    h("form", { class: "row panel", onsubmit: (e) => { e.preventDefault(); filter({ session: sessionInput.value.trim(), page: "" }); } },
      h("label", {}, "Project ", h("select", { "aria-label": "Project", onchange: (e) => filter({ project: e.target.value, page: "" }) },
        h("option", { value: "" }, "all"),
        projects.data.map((p) => h("option", { value: p.id, selected: p.id === project }, p.path)))),
      h("label", {}, "Session ", sessionInput),
      h("button", { type: "submit", class: "primary" }, "Filter"),
      session ? h("button", { type: "button", onclick: () => filter({ session: "", page: "" }) }, "All sessions") : ""),
    table([
      { label: "Logged", value: (l) => when(l.created_at) },
      { label: "Project", value: (l) => l.project },
      { label: "Session", value: (l) => (l.session_id ? h("a", { href: "#", class: "mono", onclick: (e) => {
        e.preventDefault(); e.stopPropagation(); filter({ session: l.session_id, page: "" });
      } }, l.session_id) : "") },
      { label: "Messages", value: (l) => String(l.messages_count) },
      { label: "Output", value: (l) => l.output ?? "" },
    ], logs.data, { testid: "logs", empty: "No log matches.",
      onClick: (l) => { location.hash = `#/logs/${encodeURIComponent(l.id)}`; } }),
    pager({ page, hasMore: logs.has_more, onPage: (p) => filter({ page: String(p) }) }));
}

async function renderLog(view, logId) {
  const log = await api(`/v1/prompt-logs/${encodeURIComponent(logId)}`);
  const numbers = ["prompt_tokens", "output_tokens", "prompt_cost", "output_cost", "provider_latency", "duration"]
    .filter((k) => log[k] !== undefined && log[k] !== null);
  view.append(
    h("p", {}, h("a", { href: "#/logs" }, "← Prompt logs")),
    h("h1", {}, `Log `, h("span", { class: "mono" }, log.id)),
    h("p", { class: "muted" }, `${log.project} · ${when(log.created_at)}`,
      log.session_id ? h("span", {}, " · session ", h("a", { href: `#/logs?session=${encodeURIComponent(log.session_id)}`, class: "mono" }, log.session_id)) : "",
      numbers.map((k) => ` · ${k} ${log[k]}`)),
    h("h2", {}, "Messages"),
    h("div", { class: "chat", "data-testid": "log-messages" }, (log.messages || []).map(messageView),
      log.output_message ? messageView(log.output_message)
        : log.output ? messageView({ role: "assistant", content: log.output }) : ""),
    log.error ? h("p", { class: "error" }, log.error) : "",
    h("h2", {}, "Feedback"),
    table([
      { label: "Type", value: (f) => f.type },
      { label: "Value", value: (f) => (typeof f.value === "object" ? JSON.stringify(f.value) : String(f.value)) },
      { label: "User", value: (f) => f.user ?? "" },
      { label: "When", value: (f) => when(f.created_at) },
    ], log.feedback || [], { testid: "feedback", empty: "No feedback." }),
    log.inputs ? [h("h2", {}, "Inputs"), json(log.inputs)] : "",
    h("h2", {}, "Settings"), json(log.config),
    log.metadata ? [h("h2", {}, "Metadata"), json(log.metadata)] : "");
}
