"""Routers: each call goes to the provider that owns the resource, under the
provider's own name for it. Providers are test doubles that record calls."""

from __future__ import annotations

import pytest

from stack.apis.inference import SamplingParams, TopPSamplingStrategy, UserMessage
from stack.apis.models import ModelType
from stack.apis.inference import ChatCompletionResponse, CompletionResponse, EmbeddingsResponse, StopReason
from stack.apis.openai import (
    OpenAIChatChoice,
    OpenAIChatCompletion,
    OpenAIChatCompletionRequest,
    OpenAIChatMessage,
    OpenAICompletion,
    OpenAICompletionChoice,
    OpenAICompletionRequest,
    OpenAIEmbedding,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIUsage,
)
from stack.apis.scoring import ScoreBatchResponse, ScoreResponse, ScoringResult
from stack.apis.tool_groups import ToolDef
from stack.errors import BadRequestError, NotFoundError
from stack.routing import BY_ROUTED_API, ROUTINGS
from stack.routing.limits import GenerationLimits
from stack.routing.models import ModelsRoutingTable
from stack.resolver import check_protocol
from stack.routing.routers import InferenceRouter, Router
from stack.routing.tables import (
    DatasetsRoutingTable,
    EvalTasksRoutingTable,
    ScoringFunctionsRoutingTable,
    ShieldsRoutingTable,
    ToolGroupsRoutingTable,
    VectorDBsRoutingTable,
)
from stack.storage import SqliteStoreConfig, kvstore_from_config


def router_for(api: str, table):
    """The router the stack builds for ``api`` over ``table``, checked as at start-up."""
    router = BY_ROUTED_API[api].make_router(table)
    check_protocol(router, api, f"the {api} router")
    return router


@pytest.fixture
async def store(tmp_path):
    store = await kvstore_from_config(SqliteStoreConfig(db_path=str(tmp_path / "registry.db")))
    yield store
    await store.close()


class RecordingProvider:
    """Test double for any routed API: every call is recorded as
    (provider name, method, kwargs) and answered with a tag naming the provider."""

    def __init__(self, name: str, calls: list) -> None:
        self.name = name
        self.calls = calls

    def __getattr__(self, method: str):
        if method.startswith(("register_", "unregister_", "_", "openai_")) or method in ("context_length", "default_max_tokens"):
            # no registration hooks, no known context, no default length; as an inference
            # provider it serves the Llama Stack operations itself (no OpenAI-shaped ones)
            raise AttributeError(method)

        async def record(**kwargs):
            self.calls.append((self.name, method, kwargs))
            return f"answer from {self.name}"

        return record


@pytest.fixture
def calls() -> list:
    return []


async def table_with(table_cls, store, calls, *names, routed_api="routed"):
    table = table_cls(store, {n: RecordingProvider(n, calls) for n in names}, routed_api=routed_api)
    await table.initialize()
    return table


# -- inference -------------------------------------------------------------------------------------


@pytest.fixture
async def inference(store, calls):
    table = await table_with(ModelsRoutingTable, store, calls, "alpha", "beta", routed_api="inference")
    await table.register_model("chat-a", provider_model_id="upstream-a", provider_id="alpha")
    await table.register_model("chat-b", provider_model_id="upstream-b", provider_id="beta")
    await table.register_model("emb", provider_model_id="upstream-emb", provider_id="beta",
                               model_type=ModelType.embedding, metadata={"embedding_dimension": 8})
    return router_for("inference", table)


async def test_chat_completion_goes_to_the_owning_provider_under_its_name(inference, calls):
    messages = [{"role": "user", "content": "hi"}]

    answer = await inference.chat_completion(model_id="chat-b", messages=messages, stream=False)

    assert answer == "answer from beta"
    assert calls == [("beta", "chat_completion", {"model_id": "upstream-b", "messages": messages, "stream": False})]


class KnownLengths:
    """A test-double provider's knowledge of its models' context and default length,
    and the requests it was sent."""

    def __init__(self, context: int | None = 2048, default: int | None = 300) -> None:
        self.context, self.default = context, default
        self.sent: list = []

    def context_length(self, model_id: str) -> int | None:
        return self.context

    def default_max_tokens(self, model_id: str) -> int | None:
        return self.default


class LengthsProvider(KnownLengths):
    """Test double of an OpenAI-shaped inference provider: records every request and answers "ok"."""

    async def openai_chat_completion(self, request):
        self.sent.append(request)
        return OpenAIChatCompletion(id="c", created=0, model=request.model, choices=[
            OpenAIChatChoice(index=0, message=OpenAIChatMessage(role="assistant", content="ok"), finish_reason="stop")],
            usage=OpenAIUsage())

    async def openai_completion(self, request):
        self.sent.append(request)
        return OpenAICompletion(id="c", created=0, model=request.model,
                                choices=[OpenAICompletionChoice(index=0, text="ok", finish_reason="stop")], usage=OpenAIUsage())


class LlamaShapedLengthsProvider(KnownLengths):
    """Test double of a provider serving the Llama Stack operations itself (as a plugin may)."""

    async def chat_completion(self, **kwargs):
        self.sent.append(kwargs)
        return "ok"

    completion = chat_completion


async def lengths_router(store, provider: LengthsProvider, limits: GenerationLimits | None = None, **metadata):
    table = ModelsRoutingTable(store, {"local": provider}, routed_api="inference")
    await table.initialize()
    await table.register_model("m", metadata=metadata)
    return InferenceRouter(table, limits=limits)


HI = [{"role": "user", "content": "hi"}]  # OpenAI-shaped
HI_LLAMA = [UserMessage(content="hi")]  # as the route layer hands Llama Stack messages to the router


SAMPLINGS = [None, SamplingParams(), SamplingParams(max_tokens=None), SamplingParams(strategy=TopPSamplingStrategy(temperature=0.7))]


@pytest.mark.parametrize("sampling", SAMPLINGS)
async def test_a_llama_stack_request_without_max_tokens_gets_the_default(store, sampling):
    provider = LengthsProvider()
    router = await lengths_router(store, provider)
    await router.chat_completion(model_id="m", messages=HI_LLAMA, **({} if sampling is None else {"sampling_params": sampling}))
    await router.completion(model_id="m", content="once", sampling_params=sampling)
    for sent in provider.sent:  # converted to the OpenAI shape, the default filled in there
        assert (sent.model, sent.max_tokens, sent._max_tokens_is_default) == ("m", 300, True)
        if sampling is not None and sampling.strategy.type == "top_p":
            assert sent.temperature == 0.7


@pytest.mark.parametrize("sampling", SAMPLINGS)
async def test_a_llama_shaped_provider_gets_the_default_in_its_sampling_params(store, sampling):
    provider = LlamaShapedLengthsProvider()
    router = await lengths_router(store, provider)
    await router.chat_completion(model_id="m", messages=HI_LLAMA, **({} if sampling is None else {"sampling_params": sampling}))
    await router.completion(model_id="m", content="once", sampling_params=sampling)
    for sent in provider.sent:
        assert sent["sampling_params"].max_tokens == 300
        assert sent["sampling_params"]._max_tokens_is_default
        if sampling is not None:
            assert sent["sampling_params"].strategy == sampling.strategy


async def test_a_client_max_tokens_is_kept_and_not_marked(store):
    provider = LengthsProvider()
    router = await lengths_router(store, provider)
    await router.chat_completion(model_id="m", messages=HI_LLAMA, sampling_params=SamplingParams(max_tokens=50))
    await router.openai_chat_completion(OpenAIChatCompletionRequest(model="m", messages=HI, max_completion_tokens=7))
    await router.openai_completion(OpenAICompletionRequest(model="m", prompt="once"))  # OpenAI's default: 16
    llama_stack, chat, legacy = provider.sent
    assert (llama_stack.max_tokens, chat.max_tokens, chat.max_completion_tokens, legacy.max_tokens) == (50, None, 7, 16)
    assert not (llama_stack._max_tokens_is_default or chat._max_tokens_is_default or legacy._max_tokens_is_default)


async def test_an_openai_request_without_max_tokens_gets_the_default(store):
    provider = LengthsProvider()
    router = await lengths_router(store, provider)
    await router.openai_chat_completion(OpenAIChatCompletionRequest(model="m", messages=HI))
    await router.openai_completion(OpenAICompletionRequest(model="m", prompt="once", max_tokens=None))
    for sent in provider.sent:
        assert (sent.model, sent.max_tokens, sent._max_tokens_is_default) == ("m", 300, True)


@pytest.mark.parametrize("metadata, provider, limits, expected", [
    ({"default_max_tokens": 40}, LengthsProvider(), None, 40),  # the model's metadata wins over the provider
    ({"default_max_tokens": 10**6}, LengthsProvider(context=2048), None, 2048),  # cut to the context
    ({"default_max_tokens": 10**6, "context_length": 1000}, LengthsProvider(), None, 1000),
    ({}, LengthsProvider(context=None), GenerationLimits(max_tokens=100), 100),  # and to server.limits
    ({}, LengthsProvider(default=None), None, 0),  # no default anywhere: none is sent
])
async def test_where_the_default_comes_from_and_how_it_is_cut(store, metadata, provider, limits, expected):
    router = await lengths_router(store, provider, limits, **metadata)
    await router.chat_completion(model_id="m", messages=HI_LLAMA)
    assert (provider.sent[0].max_tokens or 0) == expected


@pytest.mark.parametrize("value", [0, -5, "512", 1.5, True])
async def test_bad_token_metadata_is_a_400_naming_it(store, value):
    table = ModelsRoutingTable(store, {"local": LengthsProvider()}, routed_api="inference")
    await table.initialize()
    for name in ("default_max_tokens", "context_length"):
        with pytest.raises(BadRequestError) as info:
            await table.register_model("m", metadata={name: value})
        assert info.value.field == f"metadata.{name}"


class OpenAIShapedProvider(LengthsProvider):
    """Test double of an OpenAI-shaped provider that honours only some request fields
    (per operation) and embeds every text as [its length, index]."""

    openai_params = {
        "openai_chat_completion": frozenset({"model", "messages", "stream", "stream_options", "max_tokens", "temperature",
                                             "stop"}),
        "openai_completion": frozenset({"model", "prompt", "stream", "max_tokens", "temperature"}),
        "openai_embeddings": frozenset({"model", "input"}),
    }

    async def openai_embeddings(self, request):
        self.sent.append(request)
        vectors = [OpenAIEmbedding(index=i, embedding=[float(len(t)), float(i)]) for i, t in enumerate(request.input)]
        return OpenAIEmbeddingsResponse(data=list(reversed(vectors)), model=request.model, usage=OpenAIUsage())


async def openai_shaped_router(store):
    provider = OpenAIShapedProvider()
    table = ModelsRoutingTable(store, {"local": provider}, routed_api="inference")
    await table.initialize()
    await table.register_model("m", provider_model_id="upstream-m")
    await table.register_model("e", provider_model_id="upstream-e", model_type=ModelType.embedding,
                               metadata={"embedding_dimension": 2})
    return InferenceRouter(table), provider


async def test_a_llama_stack_call_is_converted_once_and_answered_in_its_own_shape(store):
    router, provider = await openai_shaped_router(store)

    chat = await router.chat_completion(model_id="m", messages=HI_LLAMA, sampling_params=SamplingParams(max_tokens=5))
    text = await router.completion(model_id="m", content="once")
    embedded = await router.embeddings(model_id="e", contents=["ab", "abcd"])

    assert isinstance(chat, ChatCompletionResponse) and chat.completion_message.content == "ok"
    assert chat.completion_message.stop_reason == StopReason.end_of_turn
    assert isinstance(text, CompletionResponse) and text.content == "ok"
    assert isinstance(embedded, EmbeddingsResponse) and embedded.embeddings == [[2.0, 0.0], [4.0, 1.0]]
    sent_chat, sent_completion, sent_embeddings = provider.sent
    assert isinstance(sent_chat, OpenAIChatCompletionRequest)
    assert (sent_chat.model, sent_chat.max_tokens, sent_chat.messages[0].content) == ("upstream-m", 5, "hi")
    assert isinstance(sent_completion, OpenAICompletionRequest) and sent_completion.prompt == "once"
    assert isinstance(sent_embeddings, OpenAIEmbeddingsRequest) and sent_embeddings.input == ["ab", "abcd"]


async def test_fields_a_provider_does_not_honour_are_a_400_on_both_route_families(store):
    router, provider = await openai_shaped_router(store)

    with pytest.raises(BadRequestError) as llama_stack:  # top_p: honoured by no operation of this provider
        await router.chat_completion(model_id="m", messages=HI_LLAMA,
                                     sampling_params=SamplingParams(strategy=TopPSamplingStrategy(top_p=0.5)))
    with pytest.raises(BadRequestError) as openai:
        await router.openai_chat_completion(OpenAIChatCompletionRequest(model="m", messages=HI, top_p=0.5))
    with pytest.raises(BadRequestError) as per_operation:  # stop: honoured in chat, not in completions
        await router.openai_completion(OpenAICompletionRequest(model="m", prompt="x", stop=["."]))

    assert (llama_stack.value.field, openai.value.field, per_operation.value.field) == ("top_p", "top_p", "stop")
    assert "not supported by this model's provider" in llama_stack.value.message
    assert provider.sent == []
    await router.openai_chat_completion(OpenAIChatCompletionRequest(model="m", messages=HI, stop=["."]))
    assert len(provider.sent) == 1


async def test_a_llama_stack_chat_the_openai_shape_cannot_hold_is_a_400_naming_the_field(store):
    router, provider = await openai_shaped_router(store)
    with pytest.raises(BadRequestError) as info:
        await router.chat_completion(model_id="m", messages=[])
    assert info.value.field == "messages"
    assert provider.sent == []


async def test_completion_and_embeddings_route_by_model(inference, calls):
    await inference.completion(model_id="chat-a", content="once upon")
    await inference.embeddings(model_id="emb", contents=["a", "b"])

    assert calls == [
        ("alpha", "completion", {"model_id": "upstream-a", "content": "once upon"}),
        ("beta", "embeddings", {"model_id": "upstream-emb", "contents": ["a", "b"]}),
    ]


async def test_embedding_model_used_for_chat_is_a_bad_request(inference, calls):
    with pytest.raises(BadRequestError) as info:
        await inference.chat_completion(model_id="emb", messages=[])
    assert info.value.field == "model_id"
    assert "'emb'" in info.value.message
    assert "embedding model" in info.value.message and "needs an llm model" in info.value.message
    with pytest.raises(BadRequestError, match="model_id: model 'emb'"):
        await inference.completion(model_id="emb", content="x")
    assert calls == []


async def test_chat_model_used_for_embeddings_is_a_bad_request(inference, calls):
    with pytest.raises(BadRequestError) as info:
        await inference.embeddings(model_id="chat-a", contents=["x"])
    assert info.value.field == "model_id"
    assert "'chat-a' is an llm model" in info.value.message and "embedding model" in info.value.message
    assert calls == []


async def test_unknown_model_is_404_listing_the_registered_ones(inference, calls):
    with pytest.raises(NotFoundError) as info:
        await inference.chat_completion(model_id="nope", messages=[])
    assert "'nope' not found; registered: 'chat-a', 'chat-b', 'emb'" in info.value.message
    assert calls == []


# -- safety, vector io, datasetio, eval --------------------------------------------------------------


async def test_run_shield_goes_to_the_shields_provider(store, calls):
    table = await table_with(ShieldsRoutingTable, store, calls, "guard", "other", routed_api="safety")
    await table.register_shield("safe", provider_shield_id="llama-guard-3", provider_id="guard")

    await router_for("safety", table).run_shield(shield_id="safe", messages=[], params={})

    assert calls == [("guard", "run_shield", {"shield_id": "llama-guard-3", "messages": [], "params": {}})]


async def test_vector_io_routes_by_vector_db(store, calls):
    table = await table_with(VectorDBsRoutingTable, store, calls, "faiss", "pgvector", routed_api="vector_io")
    await table.register_vector_db("docs", embedding_model="emb", provider_id="pgvector",
                                   provider_vector_db_id="pg-docs")
    router = router_for("vector_io", table)

    await router.insert_chunks(vector_db_id="docs", chunks=[])
    await router.query_chunks(vector_db_id="docs", query="q")

    assert calls == [
        ("pgvector", "insert_chunks", {"vector_db_id": "pg-docs", "chunks": []}),
        ("pgvector", "query_chunks", {"vector_db_id": "pg-docs", "query": "q"}),
    ]
    with pytest.raises(NotFoundError, match="Vector db 'other' not found"):
        await router.query_chunks(vector_db_id="other", query="q")


async def test_datasetio_routes_by_dataset(store, calls):
    table = await table_with(DatasetsRoutingTable, store, calls, "local", "hf", routed_api="datasetio")
    await table.register_dataset("qa", dataset_schema={}, url={"uri": "hf://qa"}, provider_dataset_id="hf-qa",
                                 provider_id="hf")

    await router_for("datasetio", table).get_rows_paginated(dataset_id="qa", rows_in_page=5)

    assert calls == [("hf", "get_rows_paginated", {"dataset_id": "hf-qa", "rows_in_page": 5})]


async def test_eval_routes_by_task(store, calls):
    table = await table_with(EvalTasksRoutingTable, store, calls, "meta", "other", routed_api="eval")
    await table.register_eval_task("mmlu", dataset_id="ds", scoring_functions=[], provider_eval_task_id="meta-mmlu",
                                   provider_id="meta")
    router = router_for("eval", table)

    await router.run_eval(task_id="mmlu", task_config={})
    await router.job_status(task_id="mmlu", job_id="j1")

    assert calls == [
        ("meta", "run_eval", {"task_id": "meta-mmlu", "task_config": {}}),
        ("meta", "job_status", {"task_id": "meta-mmlu", "job_id": "j1"}),
    ]


# -- scoring ----------------------------------------------------------------------------------------


class FakeScoring:
    """Test double of a scoring provider: scores every row 1.0 for each function it is given."""

    def __init__(self, name: str, calls: list) -> None:
        self.name = name
        self.calls = calls

    def _results(self, scoring_functions) -> dict[str, ScoringResult]:
        return {fn: ScoringResult(score_rows=[{"score": 1.0, "by": self.name}], aggregated_results={"n": 1})
                for fn in scoring_functions}

    async def score(self, input_rows, scoring_functions):
        self.calls.append((self.name, "score", dict(scoring_functions)))
        return ScoreResponse(results=self._results(scoring_functions))

    async def score_batch(self, dataset_id, scoring_functions, save_results_dataset=False):
        self.calls.append((self.name, "score_batch", dict(scoring_functions)))
        return ScoreBatchResponse(dataset_id=f"{self.name}-results" if save_results_dataset else None,
                                  results=self._results(scoring_functions))


@pytest.fixture
async def scoring_table(store, calls):
    table = ScoringFunctionsRoutingTable(
        store, {"basic": FakeScoring("basic", calls), "judge": FakeScoring("judge", calls)}, routed_api="scoring"
    )
    await table.initialize()
    await table.register_scoring_function("exact", description="exact match", return_type={"type": "number"},
                                          provider_id="basic")
    await table.register_scoring_function("judge-fn", description="llm judge", return_type={"type": "number"},
                                          provider_id="judge")
    return table


async def test_score_merges_the_results_of_two_providers(scoring_table, calls):
    response = await router_for("scoring", scoring_table).score(
        input_rows=[{"q": "1+1", "a": "2"}], scoring_functions={"exact": None, "judge-fn": None}
    )

    assert sorted(calls) == [("basic", "score", {"exact": None}), ("judge", "score", {"judge-fn": None})]
    assert set(response.results) == {"exact", "judge-fn"}
    assert response.results["exact"].score_rows[0]["by"] == "basic"
    assert response.results["judge-fn"].score_rows[0]["by"] == "judge"


async def test_score_batch_merges_results_and_keeps_a_results_dataset(scoring_table, calls):
    response = await router_for("scoring", scoring_table).score_batch(
        dataset_id="ds", scoring_functions={"exact": None, "judge-fn": None}, save_results_dataset=True
    )

    assert set(response.results) == {"exact", "judge-fn"}
    assert response.dataset_id in {"basic-results", "judge-results"}


async def test_score_with_an_unknown_function_is_a_400_and_scores_nothing(scoring_table, calls):
    with pytest.raises(BadRequestError, match="scoring_functions: Scoring function 'nope' not found"):
        await router_for("scoring", scoring_table).score(input_rows=[], scoring_functions={"exact": None, "nope": None})
    assert calls == []


async def test_score_results_are_keyed_by_the_requested_function_ids(scoring_table, calls):
    # the provider knows the function by another name; the client asked for "accuracy"
    await scoring_table.register_scoring_function("accuracy", description="exact", return_type={"type": "number"},
                                                  provider_scoring_fn_id="basic::equality", provider_id="basic")

    response = await router_for("scoring", scoring_table).score(input_rows=[{}], scoring_functions={"accuracy": None})

    assert calls == [("basic", "score", {"basic::equality": None})]  # the provider's own name goes out
    assert set(response.results) == {"accuracy"}  # and the client's name comes back


async def test_a_function_called_without_params_gets_its_registered_params(scoring_table, calls):
    params = {"type": "regex_parser", "parsing_regexes": ["-> (.)"], "aggregation_functions": None}
    await scoring_table.register_scoring_function("arrow", description="-> X", return_type={"type": "number"},
                                                  provider_id="basic", params=params)

    await router_for("scoring", scoring_table).score(input_rows=[{}], scoring_functions={"arrow": None})

    assert [(name, op, {k: v.model_dump() for k, v in fns.items()}) for name, op, fns in calls] == [
        ("basic", "score", {"arrow": params})]


# -- tool runtime -----------------------------------------------------------------------------------


class FakeToolRuntime:
    """Test double of a tool runtime provider: lists fixed tools, records invocations."""

    def __init__(self, name: str, tools: dict[str, list[str]], calls: list) -> None:
        self.name = name
        self.tools = tools
        self.calls = calls

    async def list_runtime_tools(self, tool_group_id=None, mcp_endpoint=None):
        return [ToolDef(name=n) for n in self.tools.get(tool_group_id, [])]

    async def invoke_tool(self, tool_name, kwargs):
        self.calls.append((self.name, "invoke_tool", {"tool_name": tool_name, "kwargs": kwargs}))
        return f"{tool_name} by {self.name}"

    async def rag_tool_insert(self, **kwargs):
        self.calls.append((self.name, "rag_tool_insert", kwargs))

    async def rag_tool_query(self, **kwargs):
        self.calls.append((self.name, "rag_tool_query", kwargs))
        return f"rag by {self.name}"


@pytest.fixture
async def tool_groups(store, calls):
    table = ToolGroupsRoutingTable(store, {
        "search": FakeToolRuntime("search", {"builtin::websearch": ["web_search"]}, calls),
        "math": FakeToolRuntime("math", {"builtin::math": ["add"]}, calls),
        "rag": FakeToolRuntime("rag", {"builtin::rag": ["knowledge_search"]}, calls),
    }, routed_api="tool_runtime")
    await table.initialize()
    await table.register_tool_group("builtin::websearch", provider_id="search")
    await table.register_tool_group("builtin::math", provider_id="math")
    return table


async def test_invoke_tool_goes_to_the_provider_of_its_group(tool_groups, calls):
    router = router_for("tool_runtime", tool_groups)

    assert await router.invoke_tool(tool_name="add", kwargs={"a": 1, "b": 2}) == "add by math"
    assert await router.invoke_tool(tool_name="web_search", kwargs={"query": "x"}) == "web_search by search"

    assert calls == [
        ("math", "invoke_tool", {"tool_name": "add", "kwargs": {"a": 1, "b": 2}}),
        ("search", "invoke_tool", {"tool_name": "web_search", "kwargs": {"query": "x"}}),
    ]


async def test_invoking_an_unknown_tool_is_404(tool_groups, calls):
    with pytest.raises(NotFoundError, match="Tool 'nope' not found"):
        await router_for("tool_runtime", tool_groups).invoke_tool(tool_name="nope", kwargs={})
    assert calls == []


async def test_list_runtime_tools_needs_a_known_group(tool_groups):
    router = router_for("tool_runtime", tool_groups)
    with pytest.raises(BadRequestError) as info:
        await router.list_runtime_tools()
    assert info.value.field == "tool_group_id"
    with pytest.raises(NotFoundError, match="'builtin::nope' not found"):
        await router.list_runtime_tools(tool_group_id="builtin::nope")
    assert [t.name for t in await router.list_runtime_tools(tool_group_id="builtin::math")] == ["add"]


async def test_rag_tool_routes_need_the_builtin_rag_group(tool_groups, calls):
    router = router_for("tool_runtime", tool_groups)

    with pytest.raises(NotFoundError, match="'builtin::rag' not found"):
        await router.rag_tool_query(content="q", vector_db_ids=["docs"])
    with pytest.raises(NotFoundError, match="'builtin::rag' not found"):
        await router.rag_tool_insert(documents=[], vector_db_id="docs", chunk_size_in_tokens=512)
    assert calls == []

    await tool_groups.register_tool_group("builtin::rag", provider_id="rag")

    assert await router.rag_tool_query(content="q", vector_db_ids=["docs"]) == "rag by rag"
    await router.rag_tool_insert(documents=[], vector_db_id="docs", chunk_size_in_tokens=512)
    assert calls == [
        ("rag", "rag_tool_query", {"content": "q", "vector_db_ids": ["docs"]}),
        ("rag", "rag_tool_insert", {"documents": [], "vector_db_id": "docs", "chunk_size_in_tokens": 512}),
    ]


async def test_builtin_rag_needs_a_provider_that_serves_the_rag_tool_routes(store, calls):
    class CodeOnly:  # a tool runtime without the rag-tool routes (code-interpreter, say)
        async def list_runtime_tools(self, tool_group_id=None, mcp_endpoint=None):
            return [ToolDef(name="code_interpreter")]

    table = ToolGroupsRoutingTable(store, {"code": CodeOnly()}, routed_api="tool_runtime")
    await table.initialize()
    with pytest.raises(BadRequestError, match="^provider_id: provider 'code' does not serve the rag-tool routes"):
        await table.register_tool_group("builtin::rag", provider_id="code")
    assert await table.list() == []


# -- the routing map -----------------------------------------------------------------------------------


def test_every_routed_api_has_one_table_and_router():
    assert {r.routed_api: r.table_api for r in ROUTINGS.values()} == {
        "inference": "models", "safety": "shields", "vector_io": "vector_dbs", "datasetio": "datasets",
        "scoring": "scoring_functions", "eval": "eval_tasks", "tool_runtime": "tool_groups",
    }
    assert BY_ROUTED_API["inference"].router is InferenceRouter
    assert BY_ROUTED_API["vector_io"].router is Router  # generic: every operation takes vector_db_id
    assert BY_ROUTED_API["tool_runtime"].config_section == "tool_groups"
    assert BY_ROUTED_API["scoring"].config_section == "scoring_fns"


async def test_tool_group_args_are_defaults_for_its_tools(tool_groups, calls):
    await tool_groups.register_tool_group("builtin::rag", provider_id="rag", args={"vector_db_ids": ["kb"], "top": 3})
    router = router_for("tool_runtime", tool_groups)

    await router.invoke_tool(tool_name="knowledge_search", kwargs={"query": "q", "top": 5})

    assert calls[-1] == ("rag", "invoke_tool", {"tool_name": "knowledge_search",
                                                "kwargs": {"vector_db_ids": ["kb"], "top": 5, "query": "q"}})
