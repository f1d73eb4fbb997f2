// Models and providers: what is served, by whom, and each model's loading state.
import { api } from "../api.js";
import { badge, h, table } from "../dom.js";

export async function render(view) {
  const [models, providers, health] = await Promise.all([
    api("/v1/models"), api("/v1/inspect/providers"), api("/v1/health")]);
  const states = health.providers || {};
  const state = (m) => {
    const byModel = states[m.provider_id] || {};
    return byModel[m.identifier] ?? byModel[m.provider_resource_id] ?? "served";
  };
  view.append(
    h("h1", {}, "Models & providers"),
    h("p", { class: "muted" }, `Server status: ${health.status}`),
    h("h2", {}, "Models"),
    table([
      { label: "Model", value: (m) => h("span", { class: "mono" }, m.identifier) },
      { label: "Type", value: (m) => m.model_type },
      { label: "Provider", value: (m) => m.provider_id },
      { label: "Provider model", value: (m) => h("span", { class: "mono" }, m.provider_resource_id) },
      { label: "State", value: (m) => badge(state(m)) },
    ], models.data, { empty: "No models are registered.", testid: "models" }),
    h("h2", {}, "Providers"),
    table([
      { label: "API", value: (p) => p.api },
      { label: "Provider", value: (p) => p.provider_id },
      { label: "Type", value: (p) => h("span", { class: "mono" }, p.provider_type) },
      { label: "Health", value: (p) => {
        const s = states[p.provider_id];
        return s ? Object.entries(s).map(([m, v]) => h("div", {}, h("span", { class: "mono" }, m), " ", badge(v))) : "";
      } },
    ], providers.data, { testid: "providers" }),
  );
  if (health.telemetry) {
    view.append(h("h2", {}, "Telemetry"), table(
      [{ label: "Counter", value: ([k]) => k }, { label: "Value", value: ([, v]) => String(v) }],
      Object.entries(health.telemetry)));
  }
}
