// Evals: eval jobs with their progress, and a finished job's aggregated scores and results, paged by the server.
import { api } from "../api.js";
import { badge, h, json, pager, table, when } from "../dom.js";

const JOBS_PAGE = 20;
const ROWS_PAGE = 20;

function progressBar(job) {
  const pct = Math.round((job.progress || 0) * 100);
  return h("span", {}, h("span", { class: "progress", title: `${pct}%` }, h("div", { style: { width: `${pct}%` } })), ` ${pct}%`);
}

// {accuracy: {accuracy: 0.5, num_correct: 1}} -> [["accuracy", 0.5], ["accuracy.num_correct", 1]]
function flatten(value, prefix = "") {
  return Object.entries(value).flatMap(([k, v]) => {
    const name = !prefix ? k : k === prefix.split(".").at(-1) ? prefix : `${prefix}.${k}`;
    return v && typeof v === "object" && !Array.isArray(v) ? flatten(v, name) : [[name, v]];
  });
}

function model(job) {
  const candidate = job.params?.task_config?.eval_candidate;
  return candidate?.model ?? candidate?.config?.model ?? "";
}

export async function render(view, args, query) {
  if (args[0]) return renderJob(view, args[0], query);
  const page = Number(query.get("page") || 0);
  const jobs = await api("/v1/jobs", { query: { kind: "eval", limit: JOBS_PAGE, offset: page * JOBS_PAGE } });
  view.append(
    h("h1", {}, "Evals"),
    table([
      { label: "Task", value: (j) => j.params?.task_id ?? "" },
      { label: "Model", value: (j) => model(j) },
      { label: "Status", value: (j) => badge(j.status) },
      { label: "Progress", value: (j) => progressBar(j) },
      { label: "Message", value: (j) => j.error || j.message || "" },
      { label: "Scheduled", value: (j) => when(j.scheduled_at) },
    ], jobs.data, { testid: "eval-jobs", empty: "No eval job yet: POST /v1/eval/tasks/{task_id}/jobs starts one.",
      onClick: (j) => { location.hash = `#/evals/${encodeURIComponent(j.job_id)}`; } }),
    pager({ page, hasMore: jobs.has_more, onPage: (p) => { location.hash = `#/evals?page=${p}`; } }));
}

async function renderJob(view, jobId, query) {
  const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { query: { include_result: false } });
  view.append(
    h("p", {}, h("a", { href: "#/evals" }, "← Evals")),
    h("h1", {}, `Eval of ${job.params?.task_id ?? "?"} `, badge(job.status)),
    h("p", { class: "muted" }, `${model(job)} · `, progressBar(job), ` · ${job.message || ""}`,
      job.completed_at ? ` · finished ${when(job.completed_at)}` : ""),
    job.error ? h("p", { class: "error" }, job.error) : "");
  if (job.status !== "completed") return;

  const page = Number(query.get("page") || 0);
  // one row more than shown: whether a next page exists
  const result = await api(`/v1/eval/tasks/${encodeURIComponent(job.params.task_id)}/jobs/${encodeURIComponent(jobId)}/result`,
    { query: { limit: ROWS_PAGE + 1, offset: page * ROWS_PAGE } });
  const fns = Object.keys(result.scores);
  const rows = result.generations.slice(0, ROWS_PAGE).map((g, i) => ({
    index: page * ROWS_PAGE + i, generation: g, scores: fns.map((fn) => result.scores[fn].score_rows[i]),
  }));
  const scoreText = (row) => (row ? Object.entries(row).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ") : "");
  view.append(
    h("h2", {}, "Aggregated scores"),
    table([
      { label: "Scoring function", value: ([fn]) => h("span", { class: "mono" }, fn) },
      { label: "Result", value: ([, s]) => flatten(s.aggregated_results || {}).map(([k, v]) =>
        h("div", {}, h("b", {}, k), ` ${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : JSON.stringify(v)}`)) },
    ], Object.entries(result.scores), { testid: "aggregated" }),
    h("h2", {}, "Results"),
    table([
      { label: "Row", value: (r) => String(r.index + 1) },
      { label: "Generated", value: (r) => h("pre", {}, r.generation.generated_answer ?? JSON.stringify(r.generation)) },
      ...fns.map((fn, k) => ({ label: fn, value: (r) => scoreText(r.scores[k]) })),
    ], rows, { testid: "results" }),
    pager({ page, hasMore: result.generations.length > ROWS_PAGE,
      onPage: (p) => { location.hash = `#/evals/${encodeURIComponent(jobId)}?page=${p}`; } }),
    h("details", {}, h("summary", {}, "Job parameters"), json(job.params)));
}
