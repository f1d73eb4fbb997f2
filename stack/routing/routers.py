"""Routers: serve a routed API by finding the provider that owns the resource.

``Router`` serves every operation of a routed API's Protocol that takes the
routing key (``vector_db_id``, ``shield_id``...): it looks the resource up in
the table and calls the owning provider with its own id for it
(``provider_resource_id``). A family whose operations need more (several
resources per call, model checks) subclasses it and defines those methods;
start-up checks that the router then serves the whole Protocol.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
from typing import Any, Callable

from ..apis import get_protocol, iter_webmethods

from ..apis.inference import EmbeddingsResponse
from ..apis.models import Model, ModelType
from ..apis.openai import check_supported_fields
from ..errors import BadRequestError, NotFoundError, NotSupportedError
from . import llama_to_openai, openai_to_llama
from ._table import ResourceTable
from .limits import (
    GenerationLimits,
    check_llama_stack,
    check_openai,
    default_converted,
    default_llama_stack,
    default_openai,
    fitted_default,
)
from .models import ModelsRoutingTable
from .tables import RAG_GROUP


def not_served(provider_type: str, api: str, operation: str) -> Callable[..., Any]:
    """An operation a provider does not declare: 501 naming it."""

    async def operation_not_served(*_args: Any, **_kwargs: Any) -> Any:
        raise NotSupportedError(f"{provider_type} does not serve {operation} of the {api} API")

    return operation_not_served


def operation_of(provider: Any, name: str, api: str, owner: str) -> Callable[..., Any]:
    """``provider``'s method ``name``, or a 501 naming ``owner`` when it has none."""
    method = getattr(provider, name, None)
    if method is None:
        raise NotSupportedError(f"{owner} does not serve {name} of the {api} API")
    return method


class Router:
    """Serves ``api`` by forwarding each operation that names a resource by
    ``key`` to the provider that registered the resource."""

    def __init__(self, table: ResourceTable, *, api: str, key: str) -> None:
        self.table, self.api, self.key = table, api, key
        for name, _wm, fn in iter_webmethods(get_protocol(api)):
            if hasattr(type(self), name):
                continue  # served by a method of the family's own router
            if key in inspect.signature(fn).parameters:
                setattr(self, name, self._forwarder(name, fn))

    def _forwarder(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        key = self.key

        @functools.wraps(fn)
        async def forward(*args: Any, **kwargs: Any) -> Any:
            call = signature.bind(None, *args, **kwargs)  # None: the Protocol's self
            arguments = dict(list(call.arguments.items())[1:])
            resource, provider = await self.table.lookup(arguments[key])
            arguments[key] = resource.provider_resource_id
            owner = f"provider {resource.provider_id!r} of {self.table.kind} {resource.identifier!r}"
            return await operation_of(provider, name, self.api, owner)(**arguments)

        return forward


class InferenceRouter(Router):
    """Inference API: route by ``model_id`` to the provider that registered it.

    The provider receives its own model name (``provider_resource_id``).
    Generation requests are checked against ``limits`` (``server.limits``)
    and the model's context length first; one that sets no max_tokens gets
    the model's ``default_max_tokens`` (see ``limits``).

    One chat path: the OpenAI request models are the internal shape of every
    request. A Llama Stack call is converted to one here, once, then checked
    and forwarded exactly like a request of the OpenAI-compatible routes
    (``_forward``), and the answer is converted back. A provider that only
    implements the Llama Stack operations (a plugin written against them)
    gets the call as it came.
    """

    def __init__(self, table: ModelsRoutingTable, *, api: str = "inference", key: str = "model_id",
                 limits: GenerationLimits | None = None) -> None:
        super().__init__(table, api=api, key=key)
        self.table: ModelsRoutingTable = table
        self.limits = limits or GenerationLimits()

    async def _route(self, model_id: str, want: ModelType, field: str = "model_id") -> tuple[Model, Any]:
        model, provider = await self.table.lookup(model_id)
        if model.model_type != want:
            raise BadRequestError(
                f"model {model_id!r} is an {model.model_type.value} model; this route needs an {want.value} model",
                field=field,
            )
        return model, provider

    # -- the Llama Stack routes: converted to the OpenAI shape once --------------------

    async def chat_completion(self, model_id: str, **kwargs: Any) -> Any:
        model, provider = await self._route(model_id, ModelType.llm)
        default = self._checked_llama_stack(model, provider, kwargs)
        if not hasattr(provider, "openai_chat_completion"):
            return await provider.chat_completion(model_id=model.provider_resource_id, **default_llama_stack(kwargs, default))
        request = default_converted(llama_to_openai.chat_request(model.provider_resource_id, **kwargs), default)
        result = await self._forward(provider, "openai_chat_completion", request)
        if isinstance(result, collections.abc.AsyncIterator):
            return openai_to_llama.chat_stream(result)
        return openai_to_llama.chat_response(result)

    async def completion(self, model_id: str, **kwargs: Any) -> Any:
        model, provider = await self._route(model_id, ModelType.llm)
        default = self._checked_llama_stack(model, provider, kwargs)
        if not hasattr(provider, "openai_completion"):
            return await provider.completion(model_id=model.provider_resource_id, **default_llama_stack(kwargs, default))
        request = default_converted(llama_to_openai.completion_request(model.provider_resource_id, **kwargs), default)
        result = await self._forward(provider, "openai_completion", request)
        if isinstance(result, collections.abc.AsyncIterator):
            return openai_to_llama.completion_stream(result)
        return openai_to_llama.completion_response(result)

    async def embeddings(self, model_id: str, contents: list[Any]) -> Any:
        model, provider = await self._route(model_id, ModelType.embedding)
        if not hasattr(provider, "openai_embeddings"):
            return await provider.embeddings(model_id=model.provider_resource_id, contents=contents)
        request = llama_to_openai.embeddings_request(model.provider_resource_id, contents)
        response = await self._forward(provider, "openai_embeddings", request)
        return EmbeddingsResponse(embeddings=[d.embedding for d in sorted(response.data, key=lambda d: d.index)])

    def _checked_llama_stack(self, model: Model, provider: Any, kwargs: dict[str, Any]) -> int | None:
        """Check a Llama Stack generation request's bounds (errors name its own
        fields); the max_tokens it gets when it sets none."""
        context = context_length(model, provider)
        check_llama_stack(model.identifier, kwargs, context, self.limits)
        return fitted_default(default_max_tokens(model, provider), context, self.limits)

    # -- the OpenAI-compatible routes ---------------------------------------------------

    async def _openai(self, request: Any, want: ModelType, method: str) -> Any:
        model, provider = await self._route(request.model, want, field="model")
        if not hasattr(provider, method):
            raise NotSupportedError(
                f"provider {model.provider_id!r} of model {model.identifier!r} does not serve OpenAI-compatible requests"
            )
        if want == ModelType.llm:
            context = context_length(model, provider)
            check_openai(request, context, self.limits)
            request = default_openai(request, fitted_default(default_max_tokens(model, provider), context, self.limits))
        if request.model != model.provider_resource_id:  # the provider's own name for the model
            request = request.model_copy(update={"model": model.provider_resource_id})
        return await self._forward(provider, method, request)

    async def openai_chat_completion(self, request: Any) -> Any:
        return await self._openai(request, ModelType.llm, "openai_chat_completion")

    async def openai_completion(self, request: Any) -> Any:
        return await self._openai(request, ModelType.llm, "openai_completion")

    async def openai_embeddings(self, request: Any) -> Any:
        return await self._openai(request, ModelType.embedding, "openai_embeddings")

    @staticmethod
    async def _forward(provider: Any, method: str, request: Any) -> Any:
        """The one place a request reaches an inference provider: fields the
        provider does not honour (its ``openai_params``) are a 400 first."""
        check_supported_fields(request, supported_fields(provider, method))
        return await getattr(provider, method)(request)


def supported_fields(provider: Any, method: str) -> frozenset[str] | None:
    """The request fields ``provider`` honours in ``method``: its ``openai_params``,
    a set for all its operations or a mapping of operation to set; None: all."""
    declared = getattr(provider, "openai_params", None)
    if isinstance(declared, collections.abc.Mapping):
        return declared.get(method)
    return declared


def context_length(model: Model, provider: Any) -> int | None:
    """Tokens of the model's context: its ``context_length`` metadata, else
    what the provider knows of it (local models), else None (unknown)."""
    return _declared_or_probed(model, provider, "context_length")


def default_max_tokens(model: Model, provider: Any) -> int | None:
    """Most tokens a request that sets none generates: the model's ``default_max_tokens``
    metadata, else the provider's default for it (embedded models), else None (no limit)."""
    return _declared_or_probed(model, provider, "default_max_tokens")


def _declared_or_probed(model: Model, provider: Any, name: str) -> int | None:
    """A positive integer from the model's metadata ``name``, else from the provider's method ``name``."""
    declared = model.metadata.get(name)
    if isinstance(declared, int) and declared > 0:
        return declared
    probe = getattr(provider, name, None)
    return probe(model.provider_resource_id) if callable(probe) else None


class ScoringRouter(Router):
    """Scoring API: each scoring function goes to the provider that registered it;
    the results of all providers are merged."""

    async def _by_provider(self, scoring_functions: dict[str, Any]) -> list[tuple[Any, dict[str, Any], dict[str, str]]]:
        """Per provider: (provider, {provider's fn id: params}, {provider's fn id: requested id}).
        A function called without params gets those it was registered with."""
        if not scoring_functions:
            raise BadRequestError("name at least one scoring function", field="scoring_functions")
        groups: dict[str, tuple[Any, dict[str, Any], dict[str, str]]] = {}
        for fn_id, params in scoring_functions.items():
            try:
                fn, provider = await self.table.lookup(fn_id)
            except NotFoundError as exc:
                raise BadRequestError(exc.message, field="scoring_functions") from None
            _, fns, names = groups.setdefault(fn.provider_id, (provider, {}, {}))
            if fn.provider_resource_id in fns:
                raise BadRequestError(
                    f"{fn_id!r} and {names[fn.provider_resource_id]!r} are the same scoring function", field="scoring_functions"
                )
            fns[fn.provider_resource_id] = params if params is not None else fn.params
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


class ToolRuntimeRouter(Router):
    """ToolRuntime API: a tool goes to the provider of its tool group; the
    rag-tool routes go to the provider of the ``builtin::rag`` group."""

    RAG_GROUP = RAG_GROUP

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

    async def _rag(self, operation: str) -> Any:
        group, provider = await self.table.lookup(self.RAG_GROUP)
        return operation_of(provider, operation, self.api, f"provider {group.provider_id!r} of {self.RAG_GROUP}")

    async def rag_tool_insert(self, **kwargs: Any) -> Any:
        return await (await self._rag("rag_tool_insert"))(**kwargs)

    async def rag_tool_query(self, **kwargs: Any) -> Any:
        return await (await self._rag("rag_tool_query"))(**kwargs)
