"""Routers: serve a routed API by finding the provider that owns the resource."""

from __future__ import annotations

from typing import Any

from ..apis.models import Model, ModelType
from ..errors import BadRequestError, NotSupportedError
from ._table import ResourceTable
from .limits import GenerationLimits, bound_llama_stack, bound_openai, check_llama_stack, check_openai
from .models import ModelsRoutingTable


class InferenceRouter:
    """Inference API: route by ``model_id`` to the provider that registered it.

    The provider receives its own model name (``provider_resource_id``).
    Generation requests are checked against ``limits`` (``server.limits``)
    and the model's context length first.
    """

    def __init__(self, table: ModelsRoutingTable, limits: GenerationLimits | None = None) -> None:
        self.table = table
        self.limits = limits or GenerationLimits()

    async def _route(self, model_id: str, want: ModelType) -> tuple[Model, Any]:
        model, provider = await self.table.lookup(model_id)
        if model.model_type != want:
            raise BadRequestError(
                f"model {model_id!r} is an {model.model_type.value} model; this route needs an {want.value} model",
                field="model_id",
            )
        return model, provider

    async def chat_completion(self, model_id: str, **kwargs: Any) -> Any:
        model, provider = await self._route(model_id, ModelType.llm)
        context = context_length(model, provider)
        check_llama_stack(model_id, kwargs, context, self.limits)
        bound_llama_stack(kwargs, context, self.limits)
        return await provider.chat_completion(model_id=model.provider_resource_id, **kwargs)

    async def completion(self, model_id: str, **kwargs: Any) -> Any:
        model, provider = await self._route(model_id, ModelType.llm)
        context = context_length(model, provider)
        check_llama_stack(model_id, kwargs, context, self.limits)
        bound_llama_stack(kwargs, context, self.limits)
        return await provider.completion(model_id=model.provider_resource_id, **kwargs)

    async def embeddings(self, model_id: str, **kwargs: Any) -> Any:
        model, provider = await self._route(model_id, ModelType.embedding)
        return await provider.embeddings(model_id=model.provider_resource_id, **kwargs)

    # -- OpenAI-compatible routes: the whole request goes to the provider ------

    async def _openai(self, request: Any, want: ModelType, method: str) -> Any:
        model, provider = await self._route_field(request.model, want)
        operation = getattr(provider, method, None)
        if operation is None:
            raise NotSupportedError(
                f"provider {model.provider_id!r} of model {model.identifier!r} does not serve OpenAI-compatible requests"
            )
        check_supported_fields(request, getattr(provider, "openai_params", None))
        update = {"model": model.provider_resource_id}
        if want == ModelType.llm:
            context = context_length(model, provider)
            check_openai(request, context, self.limits)
            update.update(bound_openai(request, context, self.limits))
        forwarded = request.model_copy(update=update)
        return await operation(forwarded)

    async def _route_field(self, model_id: str, want: ModelType) -> tuple[Model, Any]:
        try:
            return await self._route(model_id, want)
        except BadRequestError as exc:
            raise BadRequestError(exc.message.split(": ", 1)[-1], field="model") from None

    async def openai_chat_completion(self, request: Any) -> Any:
        return await self._openai(request, ModelType.llm, "openai_chat_completion")

    async def openai_completion(self, request: Any) -> Any:
        return await self._openai(request, ModelType.llm, "openai_completion")

    async def openai_embeddings(self, request: Any) -> Any:
        return await self._openai(request, ModelType.embedding, "openai_embeddings")


def context_length(model: Model, provider: Any) -> int | None:
    """Tokens of the model's context: its ``context_length`` metadata, else
    what the provider knows of it (local models), else None (unknown)."""
    declared = model.metadata.get("context_length")
    if isinstance(declared, int) and declared > 0:
        return declared
    probe = getattr(provider, "context_length", None)
    return probe(model.provider_resource_id) if probe is not None else None


def check_supported_fields(request: Any, supported: frozenset[str] | None) -> None:
    """400 naming the first field the provider cannot honour that the request
    sets to something other than its default. ``None``: the provider takes all."""
    if supported is None:
        return
    fields = type(request).model_fields
    sent = request.model_fields_set
    # declared order, so `tools` is named before the `tool_choice` that needs it
    for name in [*(f for f in fields if f in sent), *sorted(request.model_extra or {})]:
        if name in supported:
            continue
        value = getattr(request, name)
        field = fields.get(name)
        if field is not None and value == field.get_default(call_default_factory=True):
            continue
        if value is None:
            continue
        raise BadRequestError(f"not supported by this model's provider (sent {value!r})", field=name)


class SafetyRouter:
    """Safety API: route by ``shield_id``."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    async def run_shield(self, shield_id: str, **kwargs: Any) -> Any:
        shield, provider = await self.table.lookup(shield_id)
        return await provider.run_shield(shield_id=shield.provider_resource_id, **kwargs)


class VectorIORouter:
    """VectorIO API: route by ``vector_db_id``."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    async def insert_chunks(self, vector_db_id: str, **kwargs: Any) -> Any:
        db, provider = await self.table.lookup(vector_db_id)
        return await provider.insert_chunks(vector_db_id=db.provider_resource_id, **kwargs)

    async def query_chunks(self, vector_db_id: str, **kwargs: Any) -> Any:
        db, provider = await self.table.lookup(vector_db_id)
        return await provider.query_chunks(vector_db_id=db.provider_resource_id, **kwargs)


class DatasetIORouter:
    """DatasetIO API: route by ``dataset_id``."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    async def get_rows_paginated(self, dataset_id: str, **kwargs: Any) -> Any:
        dataset, provider = await self.table.lookup(dataset_id)
        return await provider.get_rows_paginated(dataset_id=dataset.provider_resource_id, **kwargs)

    async def append_rows(self, dataset_id: str, **kwargs: Any) -> Any:
        dataset, provider = await self.table.lookup(dataset_id)
        return await provider.append_rows(dataset_id=dataset.provider_resource_id, **kwargs)


class ScoringRouter:
    """Scoring API: each scoring function goes to the provider that registered it;
    the results of all providers are merged."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    async def _by_provider(self, scoring_functions: dict[str, Any]) -> list[tuple[Any, dict[str, Any], dict[str, str]]]:
        """Per provider: (provider, {provider's fn id: params}, {provider's fn id: requested id})."""
        groups: dict[str, tuple[Any, dict[str, Any], dict[str, str]]] = {}
        for fn_id, params in scoring_functions.items():
            fn, provider = await self.table.lookup(fn_id)
            _, fns, names = groups.setdefault(fn.provider_id, (provider, {}, {}))
            if fn.provider_resource_id in fns:
                raise BadRequestError(
                    f"{fn_id!r} and {names[fn.provider_resource_id]!r} are the same scoring function", field="scoring_functions"
                )
            fns[fn.provider_resource_id] = params
            names[fn.provider_resource_id] = fn_id
        return list(groups.values())

    async def score(self, input_rows: list[dict[str, Any]], scoring_functions: dict[str, Any]) -> Any:
        from ..apis.scoring import ScoreResponse

        results: dict[str, Any] = {}
        for provider, fns, names in await self._by_provider(scoring_functions):
            response = await provider.score(input_rows=input_rows, scoring_functions=fns)
            results.update({names.get(k, k): v for k, v in response.results.items()})
        return ScoreResponse(results=results)

    async def score_batch(self, dataset_id: str, scoring_functions: dict[str, Any], save_results_dataset: bool = False) -> Any:
        from ..apis.scoring import ScoreBatchResponse

        results: dict[str, Any] = {}
        dataset_ids = []
        for provider, fns, names in await self._by_provider(scoring_functions):
            response = await provider.score_batch(
                dataset_id=dataset_id, scoring_functions=fns, save_results_dataset=save_results_dataset
            )
            results.update({names.get(k, k): v for k, v in response.results.items()})
            if response.dataset_id:
                dataset_ids.append(response.dataset_id)
        return ScoreBatchResponse(dataset_id=dataset_ids[0] if dataset_ids else None, results=results)


class EvalRouter:
    """Eval API: route by ``task_id``."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    async def _provider(self, task_id: str) -> tuple[str, Any]:
        task, provider = await self.table.lookup(task_id)
        return task.provider_resource_id, provider

    async def run_eval(self, task_id: str, **kwargs: Any) -> Any:
        task_id, provider = await self._provider(task_id)
        return await provider.run_eval(task_id=task_id, **kwargs)

    async def evaluate_rows(self, task_id: str, **kwargs: Any) -> Any:
        task_id, provider = await self._provider(task_id)
        return await provider.evaluate_rows(task_id=task_id, **kwargs)

    async def job_status(self, task_id: str, job_id: str) -> Any:
        task_id, provider = await self._provider(task_id)
        return await provider.job_status(task_id=task_id, job_id=job_id)

    async def job_cancel(self, task_id: str, job_id: str) -> Any:
        task_id, provider = await self._provider(task_id)
        return await provider.job_cancel(task_id=task_id, job_id=job_id)

    async def job_result(self, task_id: str, job_id: str) -> Any:
        task_id, provider = await self._provider(task_id)
        return await provider.job_result(task_id=task_id, job_id=job_id)


class ToolRuntimeRouter:
    """ToolRuntime API: a tool goes to the provider of its tool group; the
    rag-tool routes go to the provider of the ``builtin::rag`` group."""

    RAG_GROUP = "builtin::rag"

    def __init__(self, table: Any) -> None:
        self.table = table

    async def list_runtime_tools(self, tool_group_id: str | None = None, mcp_endpoint: Any = None) -> Any:
        if tool_group_id is None:
            raise BadRequestError("name the tool group whose tools to list", field="tool_group_id")
        group, provider = await self.table.lookup(tool_group_id)
        return await provider.list_runtime_tools(tool_group_id=group.identifier, mcp_endpoint=mcp_endpoint or group.mcp_endpoint)

    async def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> Any:
        """The tool group's ``args`` are defaults for every call of its tools
        (``vector_db_ids`` of builtin::rag, say); the call's own kwargs win."""
        tool = await self.table.get_tool(tool_name)
        group = await self.table.get(tool.toolgroup_id)
        merged = {**(group.args or {}), **kwargs}
        return await self.table.providers[tool.provider_id].invoke_tool(tool_name=tool.provider_resource_id, kwargs=merged)

    async def _rag_provider(self) -> Any:
        _group, provider = await self.table.lookup(self.RAG_GROUP)
        return provider

    async def rag_tool_insert(self, **kwargs: Any) -> Any:
        return await (await self._rag_provider()).rag_tool_insert(**kwargs)

    async def rag_tool_query(self, **kwargs: Any) -> Any:
        return await (await self._rag_provider()).rag_tool_query(**kwargs)
