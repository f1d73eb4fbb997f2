"""inline::braintrust: autoevals scorers calling an OpenAI-compatible endpoint,
here FakeOpenAIUpstream (a test double on loopback) answering tool calls and
embeddings; the endpoint defaults to this server's own port."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from stack.errors import ConfigError
from tests.providers.remote.inference.doubles import FakeOpenAIUpstream, chat_completion

RUN_CONFIG = """\
    version: '2'
    image_name: scoring-braintrust
    apis: [scoring]
    providers:
      scoring:
      - provider_id: braintrust
        provider_type: inline::braintrust
        config: {{openai_base_url: "{url}", openai_api_key: key-1, judge_model: judge, embedding_model: embedder}}
    """

#: factuality choices the double picks by the submission in the prompt (A 0.4, B 0.6, C 1, D 0, E 1)
CHOICES = {"Paris": "C", "Lyon": "D", "the capital": "A"}
#: unit vectors the double embeds texts as
VECTORS = {"Paris": [1.0, 0.0], "Paris!": [0.6, 0.8], "Rome": [0.0, 1.0]}


async def judge(request: web.Request, sent: dict) -> web.Response:
    if request.path.endswith("/embeddings"):
        texts = sent["input"] if isinstance(sent["input"], list) else [sent["input"]]
        data = [{"object": "embedding", "index": i, "embedding": VECTORS[t]} for i, t in enumerate(texts)]
        return web.json_response({"object": "list", "data": data, "model": sent["model"],
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    prompt = sent["messages"][-1]["content"]
    submission = prompt.split("[Submission]: ", 1)[1].split("\n", 1)[0]
    body = chat_completion("I am not sure", model=sent["model"])
    if submission in CHOICES:
        arguments = json.dumps({"reasons": f"the submission says {submission}", "choice": CHOICES[submission]})
        body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "select_choice", "arguments": arguments}}]}
        body["choices"][0]["finish_reason"] = "tool_calls"
    return web.json_response(body)


@pytest.fixture
async def upstream():
    fake = FakeOpenAIUpstream()
    fake.default = judge
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(serve, upstream):
    async with serve(RUN_CONFIG.format(url=upstream.url)) as client:
        yield client


async def score(client, functions, rows):
    return await client.post("/v1/scoring/score", json={"input_rows": rows, "scoring_functions": functions})


def row(generated, expected="Paris", **more):
    return {"input_query": "What is the capital of France?", "expected_answer": expected, "generated_answer": generated,
            **more}


async def test_the_autoevals_scorers_are_listed_with_llama_stack_ids(client):
    listed = {f["identifier"]: f for f in (await client.get("/v1/scoring-functions")).json()["data"]}
    assert {"braintrust::factuality", "braintrust::answer-correctness", "braintrust::answer-similarity",
            "braintrust::faithfulness", "braintrust::context-recall"} <= set(listed)
    assert len(listed) == 9
    assert listed["braintrust::factuality"]["params"] == {"type": "basic", "aggregation_functions": ["average"]}


async def test_factuality_scores_come_from_the_judges_choice(client, upstream):
    response = await score(client, {"braintrust::factuality": None},
                           [row("Paris"), row("Lyon"), row("the capital"), row("who knows")])
    assert response.status_code == 200, response.text
    result = response.json()["results"]["braintrust::factuality"]

    assert [r["score"] for r in result["score_rows"]] == [1.0, 0.0, 0.4, None]
    assert result["score_rows"][0]["metadata"] == {"choice": "C", "rationale": "the submission says Paris"}
    assert result["score_rows"][3]["error"] == "ValueError: No tool call found in response"  # the judge did not choose
    assert result["aggregated_results"] == {"average": {"average": (1.0 + 0.0 + 0.4) / 3}}
    sent = upstream.requests[0]
    assert sent.path == "/v1/chat/completions" and sent.body["model"] == "judge"
    assert sent.body["tool_choice"] == {"type": "function", "function": {"name": "select_choice"}}
    assert sent.headers["Authorization"] == "Bearer key-1"


async def test_answer_similarity_embeds_with_the_configured_model(client, upstream):
    params = {"type": "basic", "aggregation_functions": ["median", "accuracy"]}
    response = await score(client, {"braintrust::answer-similarity": params},
                           [row("Paris"), row("Paris!"), row("Rome")])
    result = response.json()["results"]["braintrust::answer-similarity"]

    # cosine 1, 0.6 and 0; autoevals scales (cosine - 0.7) / 0.3 and clips at 0
    assert [r["score"] for r in result["score_rows"]] == [1.0, 0.0, 0.0]
    assert result["aggregated_results"] == {"median": {"median": 0.0},
                                            "accuracy": {"accuracy": 1 / 3, "num_correct": 1.0, "num_total": 3}}
    assert {r.body["model"] for r in upstream.requests if r.path.endswith("/embeddings")} == {"embedder"}


@pytest.mark.parametrize("functions, rows, field", [
    ({"braintrust::factuality": None}, [{"expected_answer": "a", "generated_answer": "b"}], "input_rows.0.input_query"),
    ({"braintrust::factuality": None}, [row(7)], "input_rows.0.generated_answer"),
    ({"braintrust::faithfulness": None}, [row("Paris")], "input_rows.0.context"),
    ({"braintrust::context-recall": None}, [row("Paris", context={"a": 1})], "input_rows.0.context"),
    ({"braintrust::factuality": {"type": "regex_parser"}}, [row("Paris")], "scoring_functions.braintrust::factuality.type"),
])
async def test_bad_input_is_a_400_naming_the_field(client, upstream, functions, rows, field):
    response = await score(client, functions, rows)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:")
    assert upstream.requests == []


async def test_the_endpoint_defaults_to_this_servers_port(serve, monkeypatch):
    config = RUN_CONFIG.format(url="-").replace('openai_base_url: "-", ', "")
    monkeypatch.setenv("POLYSTACK_PORT", "18321")
    async with serve(config) as client:
        provider = client.app.state.stack.impls["scoring"].table.providers["braintrust"]
        assert provider.base_url == "http://127.0.0.1:18321/v1"
    monkeypatch.delenv("POLYSTACK_PORT")
    with pytest.raises(ConfigError, match="set openai_base_url"):
        async with serve(config):
            pass
