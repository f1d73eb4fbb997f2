// Training runs (W&B Training style): the runs, and one run's metric charts per split,
// checkpoints and the trajectories logged at a step, every list paged by the server.
import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { clear, h, json, messageView, pager, table, when } from "../dom.js";

const MODELS_PAGE = 20;
const GROUPS_PAGE = 10;
const CHECKPOINTS_PAGE = 20;

export async function render(view, args, query) {
  if (args[0]) return renderRun(view, args[0], query);
  const page = Number(query.get("page") || 0);
  const models = await api("/v1/preview/models", { query: { limit: MODELS_PAGE, offset: page * MODELS_PAGE } });
  view.append(
    h("h1", {}, "Training runs"),
    table([
      { label: "Run", value: (m) => `${m.entity}/${m.project}/${m.name}` },
      { label: "Base model", value: (m) => m.base_model },
      { label: "Id", value: (m) => h("span", { class: "mono" }, m.id) },
    ], models.data, { testid: "runs", empty: "No training run yet: create one with POST /v1/preview/models.",
      onClick: (m) => { location.hash = `#/training/${encodeURIComponent(m.id)}`; } }),
    pager({ page, hasMore: models.has_more, onPage: (p) => { location.hash = `#/training?page=${p}`; } }));
}

// metrics history -> {metric: {split: [[x, y]]}}; x is the log call's number in its split, or its step
// (the mean of a step's log calls: art logs once a step, other clients may log more often)
export function metricSeries(records, xAxis) {
  const out = {};
  const counters = {};
  const sums = {};
  for (const r of records) {
    const n = (counters[r.split] = (counters[r.split] ?? 0) + 1);
    for (const [key, value] of Object.entries(r.metrics)) {
      const metric = key.startsWith(`${r.split}/`) ? key.slice(r.split.length + 1) : key;
      const bySplit = (out[metric] ??= {});
      if (xAxis === "step") {
        const acc = ((sums[metric] ??= {})[r.split] ??= new Map());
        const [total, count] = acc.get(r.step) ?? [0, 0];
        acc.set(r.step, [total + value, count + 1]);
        bySplit[r.split] = [...acc].map(([step, [t, c]]) => [step, t / c]);
      } else {
        (bySplit[r.split] ??= []).push([n, value]);
      }
    }
  }
  return out;
}

async function renderRun(view, modelId, query) {
  const model = await api(`/v1/preview/models/${encodeURIComponent(modelId)}`);
  const history = (await api(`/v1/preview/models/${encodeURIComponent(modelId)}/metrics`)).data;
  const xAxis = query.get("x") === "step" ? "step" : "log";
  const series = metricSeries(history, xAxis);
  // reward first, then the counts, then the rest by name
  const names = Object.keys(series).sort((a, b) => (a === "reward" ? -1 : b === "reward" ? 1 : a.localeCompare(b)));
  const steps = [...new Set(history.map((r) => r.step))].sort((a, b) => a - b);
  const splits = [...new Set(history.map((r) => r.split))];
  const setQuery = (changes) => {
    for (const [k, v] of Object.entries(changes)) if (v === null) query.delete(k); else query.set(k, v);
    location.hash = `#/training/${encodeURIComponent(modelId)}?${query}`;
  };

  const axisPicker = h("select", { "aria-label": "X axis", onchange: (e) => setQuery({ x: e.target.value }) },
    h("option", { value: "log", selected: xAxis === "log" }, "x: log call"),
    h("option", { value: "step", selected: xAxis === "step" }, "x: step"));
  const charts = h("div", { class: "charts", "data-testid": "charts" },
    names.map((name) => lineChart(name, Object.entries(series[name]).map(([label, points]) => ({ label, points })),
      { xLabel: xAxis === "step" ? "step" : "log call" })));
  const checkpoints = h("div");
  const trajectories = h("div");
  view.append(
    h("p", {}, h("a", { href: "#/training" }, "← Training runs")),
    h("h1", {}, `${model.entity}/${model.project}/${model.name}`),
    h("p", { class: "muted" }, `base model ${model.base_model} · served as `,
      h("span", { class: "mono" }, `wandb-artifact:///${model.entity}/${model.project}/${model.name}`),
      ` · ${history.length} log calls`),
    h("div", { class: "row" }, h("h2", {}, "Metrics"), axisPicker),
    history.length ? charts : h("p", { class: "muted" }, "Nothing logged yet."),
    h("h2", {}, "Checkpoints"), checkpoints,
    h("h2", {}, "Trajectories"), trajectories);
  await Promise.all([
    renderCheckpoints(checkpoints, modelId, []),
    renderTrajectories(trajectories, modelId, steps, splits, query, setQuery),
  ]);
}

// cursors: the `after` ids of the pages before this one (the API pages by cursor)
async function renderCheckpoints(box, modelId, cursors) {
  const page = await api(`/v1/preview/models/${encodeURIComponent(modelId)}/checkpoints`,
    { query: { limit: CHECKPOINTS_PAGE, after: cursors.at(-1) } });
  clear(box,
    table([
      { label: "Step", value: (c) => String(c.step) },
      { label: "Checkpoint", value: (c) => h("span", { class: "mono" }, c.id) },
      { label: "Metrics", value: (c) => Object.entries(c.metrics).map(([k, v]) => `${k}=${Number(v).toPrecision(4)}`).join(" ") },
    ], page.data, { testid: "checkpoints", empty: "No checkpoint yet: training jobs record one a step." }),
    page.data.length || cursors.length ? pager({
      page: cursors.length, hasMore: page.has_more,
      onPage: (p) => renderCheckpoints(box, modelId, p < cursors.length ? cursors.slice(0, p) : [...cursors, page.last_id]),
    }) : "");
}

async function renderTrajectories(box, modelId, steps, splits, query, setQuery) {
  if (!steps.length) { box.append(h("p", { class: "muted" }, "Nothing logged yet.")); return; }
  const step = query.has("step") ? Number(query.get("step")) : steps.at(-1);
  const split = query.get("split") || "";
  const page = Number(query.get("gpage") || 0);
  const groups = await api(`/v1/preview/models/${encodeURIComponent(modelId)}/trajectories`,
    { query: { step, split, limit: GROUPS_PAGE, offset: page * GROUPS_PAGE } });
  const messages = h("div", { "data-testid": "trajectory" });
  const pick = (group, t, i) => clear(messages,
    h("h3", {}, `Trajectory ${i + 1} of group ${group.group_index} · reward ${t.reward}`),
    (t.messages_and_choices || []).map((m) => messageView(m.message && m.finish_reason ? m.message : m)),
    Object.keys(t.metrics || {}).length ? json(t.metrics) : "");
  box.append(
    h("div", { class: "row" },
      h("label", {}, "Step ", h("select", { "aria-label": "Step", onchange: (e) => setQuery({ step: e.target.value, gpage: null }) },
        steps.map((s) => h("option", { value: s, selected: s === step }, String(s))))),
      h("label", {}, "Split ", h("select", { "aria-label": "Split", onchange: (e) => setQuery({ split: e.target.value, gpage: null }) },
        ["", ...splits].map((s) => h("option", { value: s, selected: s === split }, s || "all"))))),
    groups.data.length ? h("div", { "data-testid": "groups" }, groups.data.map((g) => h("div", { class: "panel" },
      h("div", { class: "muted" }, `${g.split} · step ${g.step} · group ${g.group_index} · ${when(g.created_at)}`),
      table([
        { label: "#", value: ([, i]) => String(i + 1) },
        { label: "Reward", value: ([t]) => String(t.reward) },
        { label: "Messages", value: ([t]) => String((t.messages_and_choices || []).length) },
        { label: "Last message", value: ([t]) => {
          const last = (t.messages_and_choices || []).at(-1);
          const m = last?.message ?? last;
          return String(m?.content ?? "").slice(0, 80);
        } },
      ], g.group.trajectories.map((t, i) => [t, i]), { onClick: ([t, i]) => pick(g, t, i) }),
      (g.group.exceptions || []).map((e) => h("div", { class: "error" }, `${e.type}: ${e.message}`)))))
      : h("p", { class: "muted" }, "No group at this step."),
    pager({ page, hasMore: groups.has_more, onPage: (p) => setQuery({ gpage: p }) }),
    messages);
}
