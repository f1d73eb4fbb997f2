// Playground: chat with a served model over /v1/chat/completions, streamed, with tools and JSON output.
import { api, stream } from "../api.js";
import { clear, errorBox, h, messageView, ms } from "../dom.js";

const SAMPLE_TOOLS = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];

// the conversation outlives a visit to another page (this tab only)
const state = { messages: [], model: "" };

// the model's tool call that has no result yet: the next thing typed answers it
function pendingToolCall() {
  const answered = new Set(state.messages.filter((m) => m.role === "tool").map((m) => m.tool_call_id));
  const last = [...state.messages].reverse().find((m) => m.role === "assistant");
  return (last?.tool_calls || []).find((c) => !answered.has(c.id));
}

export async function render(view) {
  const models = (await api("/v1/models")).data.filter((m) => m.model_type === "llm");
  if (!state.model || !models.some((m) => m.identifier === state.model)) state.model = models[0]?.identifier ?? "";

  const modelSelect = h("select", { name: "model", "aria-label": "Model",
    onchange: () => { state.model = modelSelect.value; } },
  models.map((m) => h("option", { value: m.identifier, selected: m.identifier === state.model }, m.identifier)));
  const system = h("textarea", { name: "system", rows: 2, placeholder: "System prompt (optional)" });
  const input = h("textarea", { name: "message", rows: 3, placeholder: "Message", "aria-label": "Message" });
  const maxTokens = h("input", { name: "max_tokens", type: "number", min: 1, value: 128, style: { width: "90px" } });
  const temperature = h("input", { name: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0.7, style: { width: "80px" } });
  const toolsOn = h("input", { type: "checkbox", name: "tools" });
  const jsonOn = h("input", { type: "checkbox", name: "json" });
  const toolsText = h("textarea", { name: "tools_json", rows: 8, class: "mono", hidden: true },
    JSON.stringify(SAMPLE_TOOLS, null, 2));
  toolsOn.addEventListener("change", () => { toolsText.hidden = !toolsOn.checked; });
  const chat = h("div", { class: "chat", "data-testid": "chat" });
  const stats = h("div", { class: "stats", "data-testid": "stats" });
  const send = h("button", { class: "primary", type: "submit" }, "Send");
  const reset = h("button", { type: "button", onclick: () => { state.messages = []; drawChat(); stats.replaceChildren(); } }, "New chat");

  function drawChat() {
    clear(chat, state.messages.map(messageView));
    const pending = pendingToolCall();
    input.placeholder = pending ? `Result of ${pending.function.name}(${pending.function.arguments})` : "Message";
  }

  async function submit(event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || !state.model) return;
    let tools;
    if (toolsOn.checked) {
      try { tools = JSON.parse(toolsText.value); } catch (err) { stats.replaceChildren(errorBox(new Error(`tools: ${err.message}`))); return; }
    }
    const pending = pendingToolCall();
    state.messages.push(pending ? { role: "tool", tool_call_id: pending.id, content: text } : { role: "user", content: text });
    input.value = "";
    drawChat();
    const answer = { role: "assistant", content: "" };
    const answerView = messageView(answer);
    const answerText = h("span", { "data-testid": "answer" });
    answerView.append(answerText);
    chat.append(answerView);
    send.disabled = true;
    stats.replaceChildren("…");

    const history = system.value.trim() ? [{ role: "system", content: system.value.trim() }, ...state.messages] : state.messages;
    const body = {
      model: state.model, messages: history, stream: true, stream_options: { include_usage: true },
      max_tokens: Number(maxTokens.value) || undefined, temperature: Number(temperature.value),
      ...(tools ? { tools } : {}),
      ...(jsonOn.checked ? { response_format: { type: "json_object" } } : {}),
    };
    const started = performance.now();
    let firstToken = null;
    let usage = null;
    let chunks = 0;
    const calls = [];
    try {
      const response = await stream("/v1/chat/completions", body, (chunk) => {
        if (chunk.usage) usage = chunk.usage;
        const delta = chunk.choices?.[0]?.delta;
        if (!delta) return;
        if (firstToken === null && (delta.content || delta.tool_calls)) firstToken = performance.now() - started;
        if (delta.content) {
          answer.content += delta.content;
          answerText.textContent = answer.content;
          answerText.dataset.chunks = ++chunks;  // how many pieces it arrived in (streaming shows)
        }
        for (const call of delta.tool_calls || []) {
          const slot = calls[call.index ?? calls.length] ??= {
            id: call.id || `call_${calls.length}`, type: "function", function: { name: "", arguments: "" } };
          if (call.function?.name) slot.function.name += call.function.name;
          if (call.function?.arguments) slot.function.arguments += call.function.arguments;
          answerText.textContent = answer.content + calls.map((c) => `\n→ ${c.function.name}(${c.function.arguments})`).join("");
        }
      });
      const total = performance.now() - started;
      if (calls.length) answer.tool_calls = calls;
      state.messages.push(answer);
      const traceId = response.headers.get("x-trace-id");
      const tokens = usage ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens` : "no usage reported";
      const rate = usage && total > 0 ? ` · ${(usage.completion_tokens / (total / 1000)).toFixed(1)} tok/s` : "";
      stats.replaceChildren(`${tokens} · first token ${ms(firstToken)} · total ${ms(total)}${rate}`,
        traceId ? h("span", {}, " · ", h("a", { href: `#/traces/${traceId}`, "data-testid": "trace-link" }, "trace")) : "");
    } catch (err) {
      state.messages.pop();
      answerView.remove();
      stats.replaceChildren(errorBox(err));
    } finally {
      send.disabled = false;
    }
  }

  view.append(
    h("h1", {}, "Playground"),
    models.length ? "" : h("p", { class: "error" }, "No LLM is registered with this server."),
    h("form", { onsubmit: submit },
      h("div", { class: "row" }, h("label", {}, "Model ", modelSelect),
        h("label", {}, "Max tokens ", maxTokens), h("label", {}, "Temperature ", temperature),
        h("label", {}, toolsOn, " Tools"), h("label", {}, jsonOn, " JSON output")),
      system, toolsText, chat, input,
      h("div", { class: "row" }, send, reset)),
    stats);
  drawChat();
}
