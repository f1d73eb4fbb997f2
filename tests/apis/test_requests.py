"""Each Protocol's routes and request bodies match the Llama Stack v1 spec.

The server builds a POST body model from the method signature (parameters that
are not path parameters), so those parameters must be the spec's request
schema properties, with the same ones required. This builds that model the
same way and compares it with the spec.
"""

import inspect
import re
import typing

import pytest
import yaml
from pydantic import ValidationError, create_model

from stack.apis import get_protocol
from stack.apis._webmethod import get_webmethod
from tests.support import shared_path

SPEC_PATH = shared_path("spec", "llama-stack-v1.yaml")
SPEC = yaml.safe_load(SPEC_PATH.read_text())

# API family -> the spec's tag for its operations.
FAMILIES = {
    "inference": "Inference",
    "batch_inference": "BatchInference (Coming Soon)",
    "safety": "Safety",
    "shields": "Shields",
    "agents": "Agents",
    "eval": "Eval",
    "synthetic_data_generation": "SyntheticDataGeneration (Coming Soon)",
}


def spec_operations(tag):
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if tag in op.get("tags", []):
                yield method.upper(), path, op


def camel(name):
    return "".join(part.capitalize() for part in name.split("_"))


def operations(api):
    """(HTTP method, route) -> (method name, WebMethod, function) of the family's Protocol."""
    ops = {}
    for name, fn in vars(get_protocol(api)).items():
        if callable(fn) and not name.startswith("_"):
            wm = get_webmethod(fn)
            assert wm is not None, f"{api}.{name} has no @webmethod"
            ops[(wm.method, wm.route)] = (name, wm, fn)
    return ops


def body_params(wm, fn):
    sig = inspect.signature(fn)
    return {
        n: p for n, p in sig.parameters.items() if n != "self" and n not in wm.path_params
    }


def request_model(wm, fn, name):
    hints = typing.get_type_hints(fn, include_extras=True)
    fields = {}
    for n, p in body_params(wm, fn).items():
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[n] = (hints[n], default)
    return create_model(name, **fields)


@pytest.mark.parametrize("api", FAMILIES)
def test_every_spec_operation_is_declared_and_nothing_else(api):
    spec_ops = {(m, p) for m, p, _ in spec_operations(FAMILIES[api])}
    assert spec_ops, f"no spec operations tagged {FAMILIES[api]!r}"
    assert set(operations(api)) == spec_ops


def _cases():
    for api, tag in FAMILIES.items():
        for method, path, op in spec_operations(tag):
            yield pytest.param(api, method, path, op, id=f"{method} {path}")


#: query parameters polystack adds to a spec operation (documented in its docs/apis page); nothing the spec names is missing
EXTENSIONS = {
    ("GET", "/v1/eval/tasks/{task_id}/jobs/{job_id}/result"): {"limit", "offset"},  # docs/apis/eval.md: pages of results
}


@pytest.mark.parametrize("api, method, path, op", list(_cases()))
def test_parameters_match_the_spec(api, method, path, op):
    name, wm, fn = operations(api)[(method, path)]
    sig_params = set(body_params(wm, fn))
    spec_path_params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert set(wm.path_params) == spec_path_params
    assert spec_path_params <= set(inspect.signature(fn).parameters)

    if not wm.has_body:
        query = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        added = EXTENSIONS.get((method, path), set())
        assert sig_params == set(query) | added
        for q, p in body_params(wm, fn).items():
            if q in added:
                assert p.default is not inspect.Parameter.empty, f"{q}: an extension must be optional"
                continue
            assert (p.default is inspect.Parameter.empty) == query[q]["required"], q
        return

    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema_name = ref.rsplit("/", 1)[-1]
    assert (wm.request_name or camel(name) + "Request") == schema_name
    schema = SPEC["components"]["schemas"][schema_name]
    assert sig_params == set(schema["properties"])

    built = request_model(wm, fn, schema_name).model_json_schema()
    assert set(built.get("required", [])) == set(schema.get("required", []))


def _response_schema_name(op):
    content = op["responses"]["200"].get("content")
    if not content:
        return None
    schema = next(iter(content.values()))["schema"]
    refs = [s.get("$ref", "null") for s in schema.get("oneOf", [schema])]
    return sorted(r.rsplit("/", 1)[-1] if r != "null" else "None" for r in refs)


@pytest.mark.parametrize("api, method, path, op", list(_cases()))
def test_return_type_matches_the_spec_response(api, method, path, op):
    name, wm, fn = operations(api)[(method, path)]
    ret = typing.get_type_hints(fn)["return"]
    expected = _response_schema_name(op)
    if expected is None:
        assert ret is type(None)
        return
    members = typing.get_args(ret) if typing.get_origin(ret) in (typing.Union, __import__("types").UnionType) else (ret,)
    names = []
    for m in members:
        if m is type(None):
            names.append("None")
        elif typing.get_origin(m) is not None:  # AsyncIterator[Chunk] for streamed responses
            names.append(typing.get_args(m)[0].__name__)
        else:
            names.append(m.__name__)
    assert sorted(names) == expected


def test_streaming_operations_return_an_async_iterator():
    from collections.abc import AsyncIterator

    streaming = [
        (api, m, p)
        for api, tag in FAMILIES.items()
        for m, p, op in spec_operations(tag)
        if "text/event-stream" in op["responses"]["200"].get("content", {})
    ]
    assert len(streaming) == 3
    for api, m, p in streaming:
        _, _, fn = operations(api)[(m, p)]
        ret = typing.get_type_hints(fn)["return"]
        assert any(typing.get_origin(a) is AsyncIterator for a in typing.get_args(ret)), (m, p)
        assert "stream" in inspect.signature(fn).parameters


def test_route_placeholders_are_plain_names():
    for api in FAMILIES:
        for (_, route) in operations(api):
            assert re.fullmatch(r"(/[a-z0-9_\-]+|/\{[a-z_]+\})+", route), route


def _request_model_for(api, method, path):
    name, wm, fn = operations(api)[(method, path)]
    return request_model(wm, fn, wm.request_name or camel(name) + "Request")


USER = {"role": "user", "content": "What's the weather in Paris?"}
ASSISTANT_CALL = {
    "role": "assistant",
    "content": "",
    "stop_reason": "end_of_message",
    "tool_calls": [{"call_id": "c1", "tool_name": "get_weather", "arguments": {"city": "Paris"}}],
}
TOOL_REPLY = {"role": "tool", "call_id": "c1", "tool_name": "get_weather", "content": "sunny, 21C"}
SAMPLING = {"strategy": {"type": "top_p", "temperature": 0.7, "top_p": 0.9}, "max_tokens": 256, "repetition_penalty": 1.0}
TOOLS = [
    {
        "tool_name": "get_weather",
        "description": "Current weather",
        "parameters": {"city": {"param_type": "string", "description": "City", "required": True}},
    },
    {"tool_name": "brave_search"},
]
AGENT_CONFIG = {"model": "m", "instructions": "Be brief.", "enable_session_persistence": False}

SAMPLE_BODIES = [
    ("inference", "POST", "/v1/inference/chat-completion", {
        "model_id": "meta-llama/Llama-3.2-3B-Instruct",
        "messages": [{"role": "system", "content": "Be terse."}, USER, ASSISTANT_CALL, TOOL_REPLY],
        "sampling_params": SAMPLING,
        "tools": TOOLS,
        "tool_choice": "auto",
        "tool_prompt_format": "json",
        "response_format": {"type": "json_schema", "json_schema": {"type": "object", "properties": {"answer": {"type": "string"}}}},
        "stream": True,
        "logprobs": {"top_k": 2},
    }),
    ("inference", "POST", "/v1/inference/completion", {
        "model_id": "m", "content": "1+1=", "sampling_params": {"strategy": {"type": "greedy"}},
        "response_format": {"type": "grammar", "bnf": {"root": "[0-9]+"}}, "stream": False,
    }),
    ("inference", "POST", "/v1/inference/embeddings", {
        "model_id": "all-MiniLM-L6-v2", "contents": ["a", {"type": "text", "text": "b"}, [{"type": "text", "text": "c"}]],
    }),
    ("batch_inference", "POST", "/v1/batch-inference/chat-completion", {
        "model": "m", "messages_batch": [[USER], [USER, ASSISTANT_CALL, TOOL_REPLY]], "tools": TOOLS,
        "tool_choice": "required", "tool_prompt_format": "python_list", "logprobs": {"top_k": 1},
    }),
    ("batch_inference", "POST", "/v1/batch-inference/completion", {
        "model": "m", "content_batch": ["a", "b"], "sampling_params": {"strategy": {"type": "top_k", "top_k": 5}},
    }),
    ("safety", "POST", "/v1/safety/run-shield", {
        "shield_id": "llama-guard", "messages": [USER, ASSISTANT_CALL], "params": {},
    }),
    ("shields", "POST", "/v1/shields", {
        "shield_id": "llama-guard", "provider_shield_id": "meta-llama/Llama-Guard-3-1B",
        "provider_id": "llama-guard", "params": {"excluded_categories": []},
    }),
    ("agents", "POST", "/v1/agents", {"agent_config": AGENT_CONFIG}),
    ("agents", "POST", "/v1/agents/{agent_id}/session", {"session_name": "chat"}),
    ("agents", "POST", "/v1/agents/{agent_id}/session/{session_id}/turn", {
        "messages": [USER, TOOL_REPLY],
        "stream": True,
        "documents": [{"content": {"uri": "https://example.com/a.pdf"}, "mime_type": "application/pdf"}],
        "toolgroups": ["builtin::websearch", {"name": "builtin::rag", "args": {"vector_db_ids": ["docs"]}}],
    }),
    ("eval", "POST", "/v1/eval/tasks/{task_id}/jobs", {
        "task_config": {"type": "benchmark", "eval_candidate": {"type": "model", "model": "m", "sampling_params": SAMPLING}, "num_examples": 10},
    }),
    ("eval", "POST", "/v1/eval/tasks/{task_id}/evaluations", {
        "input_rows": [{"input_query": "1+1", "expected_answer": "2"}],
        "scoring_functions": ["basic::equality", "llm-as-judge::base"],
        "task_config": {
            "type": "app",
            "eval_candidate": {"type": "agent", "config": AGENT_CONFIG},
            "scoring_params": {"llm-as-judge::base": {"type": "llm_as_judge", "judge_model": "m"}},
        },
    }),
    ("synthetic_data_generation", "POST", "/v1/synthetic-data-generation/generate", {
        "dialogs": [USER], "filtering_function": "top_k", "model": "m",
    }),
]  # fmt: skip


@pytest.mark.parametrize("api, method, path, body", SAMPLE_BODIES, ids=lambda v: v if isinstance(v, str) and v.startswith("/") else "")
def test_sample_request_bodies_validate_and_round_trip(api, method, path, body):
    model = _request_model_for(api, method, path)
    parsed = model.model_validate(body)
    assert model.model_validate(parsed.model_dump(mode="json")) == parsed
    assert model.model_validate_json(parsed.model_dump_json()) == parsed


def test_every_post_operation_has_a_sample_body():
    posts = {(api, m, p) for api in FAMILIES for (m, p) in operations(api) if m == "POST"}
    assert posts == {(api, m, p) for api, m, p, _ in SAMPLE_BODIES}


@pytest.mark.parametrize(
    "api, path, body, where",
    [
        ("inference", "/v1/inference/chat-completion", {"messages": [USER]}, "model_id"),
        ("inference", "/v1/inference/chat-completion", {"model_id": "m", "messages": [{"role": "bot", "content": "x"}]}, "messages"),
        ("inference", "/v1/inference/chat-completion", {"model_id": "m", "messages": [USER], "sampling_params": {"strategy": {"type": "beam"}}}, "sampling_params"),
        ("inference", "/v1/inference/chat-completion", {"model_id": "m", "messages": [USER], "tool_choice": "none"}, "tool_choice"),
        ("inference", "/v1/inference/chat-completion", {"model_id": "m", "messages": [USER], "response_format": {"type": "xml"}}, "response_format"),
        ("agents", "/v1/agents/{agent_id}/session/{session_id}/turn", {"messages": [{"role": "system", "content": "x"}]}, "messages"),
        ("eval", "/v1/eval/tasks/{task_id}/jobs", {"task_config": {"type": "benchmark", "eval_candidate": {"type": "human"}}}, "task_config"),
        ("synthetic_data_generation", "/v1/synthetic-data-generation/generate", {"dialogs": [USER], "filtering_function": "top_n"}, "filtering_function"),
        ("safety", "/v1/safety/run-shield", {"shield_id": "s", "messages": [USER]}, "params"),
    ],
)  # fmt: skip
def test_bad_request_bodies_are_rejected_at_the_right_field(api, path, body, where):
    model = _request_model_for(api, "POST", path)
    with pytest.raises(ValidationError) as err:
        model.model_validate(body)
    assert err.value.errors()[0]["loc"][0] == where
