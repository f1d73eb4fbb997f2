// Vector DBs: the registered ones, and a query box answering the top chunks with their scores.
import { api } from "../api.js";
import { clear, errorBox, h, json, table } from "../dom.js";

export async function render(view, args) {
  const dbs = (await api("/v1/vector-dbs")).data;
  const selected = args[0] || dbs[0]?.identifier || "";
  const db = dbs.find((d) => d.identifier === selected);
  view.append(h("h1", {}, "Vector DBs"),
    table([
      { label: "Vector DB", value: (d) => h("span", { class: "mono" }, d.identifier) },
      { label: "Provider", value: (d) => d.provider_id },
      { label: "Embedding model", value: (d) => d.embedding_model },
      { label: "Dimension", value: (d) => String(d.embedding_dimension ?? "") },
    ], dbs, { testid: "vector-dbs", empty: "No vector DB is registered: POST /v1/vector-dbs makes one.",
      onClick: (d) => { location.hash = `#/vectors/${encodeURIComponent(d.identifier)}`; } }));
  if (!db) return;

  const input = h("input", { name: "query", size: 60, placeholder: "What to search for", "aria-label": "Query" });
  const maxChunks = h("input", { name: "max_chunks", type: "number", min: 1, max: 100, value: 5, style: { width: "70px" }, "aria-label": "Chunks" });
  const results = h("div", { "data-testid": "chunks" });
  async function search(event) {
    event.preventDefault();
    if (!input.value.trim()) return;
    clear(results, h("p", { class: "muted" }, "Searching…"));
    try {
      const answer = await api("/v1/vector-io/query", { method: "POST", body: {
        vector_db_id: db.identifier, query: input.value, params: { max_chunks: Number(maxChunks.value) || 5 } } });
      clear(results, table([
        { label: "#", value: ([, , i]) => String(i + 1) },
        { label: "Score", value: ([, score]) => score.toFixed(4) },
        { label: "Chunk", value: ([chunk]) => h("pre", {}, typeof chunk.content === "string" ? chunk.content : JSON.stringify(chunk.content)) },
        { label: "Metadata", value: ([chunk]) => json(chunk.metadata) },
      ], answer.chunks.map((c, i) => [c, answer.scores[i], i]), { empty: "No chunk found.", testid: "chunk-table" }));
    } catch (err) {
      clear(results, errorBox(err));
    }
  }
  view.append(
    h("h2", {}, `Query ${db.identifier}`),
    h("form", { class: "row", onsubmit: search }, input, h("label", {}, "Chunks ", maxChunks),
      h("button", { class: "primary", type: "submit" }, "Search")),
    results);
}
