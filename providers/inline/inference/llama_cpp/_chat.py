"""Chat prompts and the chatml-function-calling tool protocol.

The prompt is ChatML. With tools, the system message lists them and the
assistant answers either ``message:\\n<text>`` or one or more
``functions.<name>:\\n<JSON arguments>`` (llama-cpp-python's
"chatml-function-calling" format). Grammars make the model pick one of these
heads, and make the arguments follow the function's JSON schema, so tool
calls always parse. Everything here except ``render_jinja`` is plain Python.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from stack.errors import BadRequestError

from . import _generate as gen
from ._worker import Job

MAX_TOOL_CALLS = 8
_HEAD_TOKENS = 64  # room for "functions.<name>" when choosing what to answer

TOOLS_SYSTEM = (
    "\n\nYou have access to the following functions:\n"
    "{functions}"
    "\n\nYou can respond to users messages with either a single message or one or more function calls."
    "\n\nTo respond with a message begin the message with 'message:', use the following format:"
    "\n\nmessage:"
    "\n<message>"
    "\n\nTo respond with one or more function calls begin the message with 'functions.<function_name>:', "
    "use the following format:"
    "\n\nfunctions.<function_name>:"
    '\n{{ "arg1": "value1", "arg2": "value2" }}'
    "\nfunctions.<function_name>:"
    '\n{{ "arg1": "value1", "arg2": "value2" }}'
)


def content_text(content: Any, where: str) -> str:
    """The text of an OpenAI message content; anything but text is a 400 (these are text-only models)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if part.get("type") != "text":
            raise BadRequestError(f"this model takes text only, not {part.get('type')!r} parts", field=f"{where}[{i}]")
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def _tool_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"].get("parameters") or {"type": "object", "properties": {}}


def _functions_block(tools: list[dict[str, Any]]) -> str:
    lines = []
    for tool in tools:
        fn = tool["function"]
        doc = f"// {fn['description']}\n" if fn.get("description") else ""
        lines.append(f"\nfunctions.{fn['name']}:\n{doc}{json.dumps(_tool_parameters(tool))}\n")
    return "".join(lines)


def render_chatml(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """The ChatML prompt, with the tool list and protocol in the system message when ``tools``."""
    out: list[str] = []
    if tools and (not messages or messages[0]["role"] not in ("system", "developer")):
        messages = [{"role": "system", "content": "You are a helpful assistant."}, *messages]
    for i, message in enumerate(messages):
        role = message["role"]
        where = f"messages[{i}].content"
        if role in ("system", "developer"):
            text = content_text(message.get("content"), where)
            if tools and i == 0:
                text += TOOLS_SYSTEM.format(functions=_functions_block(tools))
            out.append(f"<|im_start|>system\n{text}<|im_end|>\n")
        elif role == "user":
            out.append(f"<|im_start|>user\n{content_text(message.get('content'), where)}<|im_end|>\n")
        elif role == "assistant":
            text = content_text(message.get("content"), where)
            calls = message.get("tool_calls") or []
            body = []
            if text:
                body.append(f"message:\n{text}" if tools else text)
            body += [f"functions.{c['function']['name']}:\n{c['function']['arguments']}" for c in calls]
            out.append(f"<|im_start|>assistant\n{chr(10).join(body)}<|im_end|>\n")
        elif role in ("tool", "function"):
            out.append(f"<|im_start|>tool\n{content_text(message.get('content'), where)}<|im_end|>\n")
        else:
            raise BadRequestError(f"unknown role {role!r}", field=f"messages[{i}].role")
    out.append("<|im_start|>assistant\n")
    return "".join(out)


def render_jinja(llama: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt from the chat template stored in the GGUF (worker thread only)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise BadRequestError("this GGUF has no chat template; configure chat_format 'chatml'", field="model")
    model = llama._model
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(llama.token_eos()),
        bos_token=model.token_get_text(llama.token_bos()),
    )
    plain = [{**m, "content": content_text(m.get("content"), f"messages[{i}].content")} for i, m in enumerate(messages)]
    try:
        return formatter(messages=plain).prompt
    except Exception as exc:  # the template rejects these messages (e.g. roles must alternate)
        raise BadRequestError(f"the model's chat template rejects these messages: {exc}", field="messages") from None


# -- grammars ---------------------------------------------------------------------


def head_grammar(names: list[str], *, allow_message: bool, allow_end: bool = False) -> str:
    """What the assistant starts with: ``message:`` and/or ``functions.<name>:`` (or nothing, after a call)."""
    functions = " | ".join(gen.literal(n) for n in names)
    options = [f'"functions." ({functions}) ":"']
    if allow_message:
        options.append('"message:"')
    root = " | ".join(options)
    return f"root ::= ({root})?" if allow_end else f"root ::= {root}"


def arguments_grammar(llama: Any, tool: dict[str, Any]) -> str:
    """JSON that follows the function's parameter schema (any JSON object when the schema cannot be converted)."""
    try:
        text = gen.schema_grammar(_tool_parameters(tool), field_name="tools")
        gen.check_grammar(llama, text, field_name="tools")
        return text
    except BadRequestError:
        return gen.json_grammar()


# -- one choice ------------------------------------------------------------------


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class Choice:
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    completion_tokens: int = 0
    logprobs: list[gen.TokenLogprob] | None = None


@dataclass
class Listener:
    """Stream callbacks of one choice (all optional)."""

    content: Callable[[gen.Piece], None] | None = None
    tool_start: Callable[[int, ToolCall], None] | None = None
    tool_arguments: Callable[[int, str], None] | None = None


@dataclass
class ChatSpec:
    """A validated chat request, ready for the worker thread."""

    model_id: str
    chat_format: str
    n_ctx: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_mode: str  # none | auto | required | named
    tool_name: str | None
    parallel_tool_calls: bool
    grammar: tuple[str, Any] | None  # (kind, value), kind: json_object | json_schema | gbnf | choice
    grammar_field: str
    sampling: gen.Sampling
    limits: gen.Limits
    n: int


def build_grammar(llama: Any, kind: str, value: Any, field_name: str) -> str:
    if kind == "json_object":
        text = gen.json_grammar()
    elif kind == "json_schema":
        text = gen.schema_grammar(value, field_name=field_name)
    elif kind == "choice":
        text = "root ::= " + " | ".join(gen.literal(str(c)) for c in value)
    else:
        text = value
    gen.check_grammar(llama, text, field_name=field_name)
    return text


def render(llama: Any, spec: ChatSpec) -> str:
    if spec.chat_format == "jinja":
        return render_jinja(llama, spec.messages)
    tools = spec.tools if spec.tool_mode != "none" else None
    return render_chatml(spec.messages, tools)


def run_choice(
    llama: Any, job: Job, spec: ChatSpec, prompt: str, grammar: str | None, sampling: gen.Sampling, listen: Listener
) -> Choice:
    """One assistant answer: text, or tool calls by the chatml-function-calling protocol."""

    def generate(text: str, sampling: gen.Sampling, limits: gen.Limits, grammar: str | None, on_piece=None):
        return gen.run(llama, job, gen.tokenize(llama, text), sampling, limits, grammar=grammar,
                       on_piece=on_piece, n_ctx=spec.n_ctx)

    def message(text: str, used: int) -> Choice:
        limits = spec.limits
        if limits.max_tokens is not None:
            limits = gen.Limits(**{**limits.__dict__, "max_tokens": max(1, limits.max_tokens - used)})
        out = generate(text, sampling, limits, grammar, listen.content)
        return Choice(content=out.text, finish_reason=out.finish_reason, completion_tokens=used + out.completion_tokens,
                      logprobs=out.logprobs if spec.limits.top_logprobs is not None else None)

    if spec.tool_mode == "none" or not spec.tools:
        return message(prompt, 0)

    tools = {t["function"]["name"]: t for t in spec.tools}
    names = list(tools)
    greedy = gen.Sampling(temperature=0.0, seed=sampling.seed)
    head_limits = gen.Limits(max_tokens=_HEAD_TOKENS, stop=[":"])
    used = 0
    if spec.tool_mode == "named":
        name = spec.tool_name
    else:
        head = generate(prompt, greedy, head_limits, head_grammar(names, allow_message=spec.tool_mode == "auto"))
        used += head.completion_tokens
        if not head.text.startswith("functions."):
            return message(prompt + "message:\n", used)
        name = head.text[len("functions."):]

    choice = Choice(finish_reason="tool_calls")
    budget = spec.limits.max_tokens
    while name in tools:
        prompt += f"functions.{name}:\n"
        call = ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=name, arguments="")
        index = len(choice.tool_calls)
        # the first call streams as it is generated; later ones only once known complete and new
        live = listen.tool_start is not None and index == 0
        if live:
            listen.tool_start(index, call)
        on_args = (lambda piece: listen.tool_arguments(index, piece.text)) if live and listen.tool_arguments else None
        limits = gen.Limits(max_tokens=None if budget is None else max(1, budget - used))
        args = generate(prompt, sampling, limits, arguments_grammar(llama, tools[name]), on_args)
        used += args.completion_tokens
        call.arguments = args.text
        if args.finish_reason == "length":
            choice.finish_reason = "length"
            if index == 0:
                choice.tool_calls.append(call)
            break
        if any((c.name, c.arguments) == (call.name, call.arguments) for c in choice.tool_calls):
            break  # the model repeats itself: the earlier call stands
        choice.tool_calls.append(call)
        if not live and listen.tool_start is not None:
            listen.tool_start(index, call)
            if listen.tool_arguments:
                listen.tool_arguments(index, call.arguments)
        # a named tool_choice asks for exactly that call
        if spec.tool_mode == "named" or not spec.parallel_tool_calls or len(choice.tool_calls) >= MAX_TOOL_CALLS:
            break
        prompt += args.text + "\n"
        head = generate(prompt, greedy, head_limits, head_grammar(names, allow_message=False, allow_end=True))
        used += head.completion_tokens
        name = head.text[len("functions."):] if head.text.startswith("functions.") else None
    choice.completion_tokens = used
    return choice
