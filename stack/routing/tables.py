"""Routing tables of shields, vector DBs, datasets, scoring functions, eval tasks
and tool groups. Each serves its registry API on top of ResourceTable."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..apis._content import URL
from ..apis._types import ParamType
from ..apis.datasets import Dataset, DatasetInput, ListDatasetsResponse
from ..apis.eval_tasks import EvalTask, EvalTaskInput, ListEvalTasksResponse
from ..apis.models import ModelType
from ..apis.scoring_functions import ListScoringFunctionsResponse, ScoringFn, ScoringFnInput, ScoringFnParams
from ..apis.shields import ListShieldsResponse, Shield, ShieldInput
from ..apis.tool_groups import ListToolGroupsResponse, ListToolsResponse, Tool, ToolGroup, ToolGroupInput, ToolHost
from ..apis.vector_dbs import ListVectorDBsResponse, VectorDB, VectorDBInput
from ..errors import BadRequestError, ConflictError, NotFoundError
from ._table import ResourceTable, _Entry

log = logging.getLogger(__name__)

class ShieldsRoutingTable(ResourceTable[Shield]):
    kind = "shield"
    resource_cls = Shield

    def from_input(self, item: ShieldInput) -> Shield:
        return self._build(item.shield_id, item.provider_shield_id, item.provider_id, item.params)

    def _build(self, shield_id, provider_shield_id, provider_id, params) -> Shield:
        return Shield(identifier=shield_id, provider_resource_id=provider_shield_id or shield_id,
                      provider_id=self.pick_provider(provider_id), params=params)

    async def list_shields(self) -> ListShieldsResponse:
        return ListShieldsResponse(data=await self.list())

    async def get_shield(self, identifier: str) -> Shield:
        return await self.get(identifier)

    async def register_shield(self, shield_id: str, provider_shield_id: str | None = None,
                              provider_id: str | None = None, params: dict[str, Any] | None = None) -> Shield:
        return await self.register(self._build(shield_id, provider_shield_id, provider_id, params))


class VectorDBsRoutingTable(ResourceTable[VectorDB]):
    """Vector DBs; each names a registered embedding model of matching dimension."""

    kind = "vector_db"
    resource_cls = VectorDB
    #: set by the stack: the models table, to check embedding models
    models: ResourceTable | None = None

    def from_input(self, item: VectorDBInput) -> VectorDB:
        return VectorDB(identifier=item.vector_db_id, provider_resource_id=item.provider_vector_db_id or item.vector_db_id,
                        provider_id=self.pick_provider(item.provider_id), embedding_model=item.embedding_model,
                        embedding_dimension=item.embedding_dimension)

    async def _check_embedding_model(self, vector_db: VectorDB) -> None:
        if self.models is None:
            return
        try:
            model = await self.models.get(vector_db.embedding_model)
        except NotFoundError as exc:
            raise BadRequestError(exc.message, field="embedding_model") from None
        if model.model_type != ModelType.embedding:
            raise BadRequestError(f"{model.identifier!r} is not an embedding model", field="embedding_model")
        dimension = model.metadata.get("embedding_dimension")
        if dimension != vector_db.embedding_dimension:
            raise BadRequestError(
                f"{vector_db.embedding_dimension} does not match {model.identifier!r}, which makes vectors of {dimension}",
                field="embedding_dimension",
            )

    async def _check_before_save(self, resource: VectorDB) -> None:
        await self._check_embedding_model(resource)

    async def list_vector_dbs(self) -> ListVectorDBsResponse:
        return ListVectorDBsResponse(data=await self.list())

    async def get_vector_db(self, vector_db_id: str) -> VectorDB:
        return await self.get(vector_db_id)

    async def register_vector_db(self, vector_db_id: str, embedding_model: str, embedding_dimension: int | None = 384,
                                 provider_id: str | None = None, provider_vector_db_id: str | None = None) -> VectorDB:
        return await self.register(self.from_input(VectorDBInput(
            vector_db_id=vector_db_id, embedding_model=embedding_model, embedding_dimension=embedding_dimension or 384,
            provider_id=provider_id, provider_vector_db_id=provider_vector_db_id)))

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        await self.unregister(vector_db_id)


class DatasetsRoutingTable(ResourceTable[Dataset]):
    kind = "dataset"
    resource_cls = Dataset

    def from_input(self, item: DatasetInput) -> Dataset:
        return Dataset(identifier=item.dataset_id, provider_resource_id=item.provider_dataset_id or item.dataset_id,
                       provider_id=self.pick_provider(item.provider_id), dataset_schema=item.dataset_schema,
                       url=item.url, metadata=item.metadata)

    async def register_dataset(self, dataset_id: str, dataset_schema: dict[str, ParamType], url: URL,
                               provider_dataset_id: str | None = None, provider_id: str | None = None,
                               metadata: dict[str, Any] | None = None) -> None:
        await self.register(self.from_input(DatasetInput(
            dataset_id=dataset_id, dataset_schema=dataset_schema, url=url, provider_dataset_id=provider_dataset_id,
            provider_id=provider_id, metadata=metadata or {})))

    async def get_dataset(self, dataset_id: str) -> Dataset:
        return await self.get(dataset_id)

    async def list_datasets(self) -> ListDatasetsResponse:
        return ListDatasetsResponse(data=await self.list())

    async def unregister_dataset(self, dataset_id: str) -> None:
        await self.unregister(dataset_id)


class ScoringFunctionsRoutingTable(ResourceTable[ScoringFn]):
    """Scoring functions: those of the run config and the API, and the built-ins
    each provider lists with ``async list_scoring_functions() -> list[ScoringFnInput]``.

    Built-ins are registered at start-up like run-config functions (so they
    leave with their provider); a run-config function of the same id wins, and
    of two providers listing one id the first configured keeps it.
    """

    kind = "scoring_function"
    resource_cls = ScoringFn

    async def reconcile(self, wanted: list[ScoringFn]) -> None:
        await super().reconcile([*await self._builtins({f.identifier for f in wanted}), *wanted])

    async def _builtins(self, taken: set[str]) -> list[ScoringFn]:
        found = []
        for provider_id, provider in self.providers.items():
            lister = getattr(provider, "list_scoring_functions", None)
            for item in await lister() if lister is not None else ():
                if item.scoring_fn_id in taken:
                    log.info("scoring function %r of provider %r is already taken; not listed for it",
                             item.scoring_fn_id, provider_id)
                    continue
                taken.add(item.scoring_fn_id)
                found.append(self.from_input(item.model_copy(update={"provider_id": provider_id})))
        return found

    def from_input(self, item: ScoringFnInput) -> ScoringFn:
        return ScoringFn(identifier=item.scoring_fn_id, provider_resource_id=item.provider_scoring_fn_id or item.scoring_fn_id,
                         provider_id=self.pick_provider(item.provider_id), description=item.description,
                         metadata=item.metadata, return_type=item.return_type, params=item.params)

    async def list_scoring_functions(self) -> ListScoringFunctionsResponse:
        return ListScoringFunctionsResponse(data=await self.list())

    async def get_scoring_function(self, scoring_fn_id: str) -> ScoringFn:
        return await self.get(scoring_fn_id)

    async def register_scoring_function(self, scoring_fn_id: str, description: str, return_type: ParamType,
                                        provider_scoring_fn_id: str | None = None, provider_id: str | None = None,
                                        params: ScoringFnParams | None = None) -> None:
        await self.register(self.from_input(ScoringFnInput(
            scoring_fn_id=scoring_fn_id, description=description, return_type=return_type,
            provider_scoring_fn_id=provider_scoring_fn_id, provider_id=provider_id, params=params)))


class EvalTasksRoutingTable(ResourceTable[EvalTask]):
    kind = "eval_task"
    resource_cls = EvalTask

    def from_input(self, item: EvalTaskInput) -> EvalTask:
        return EvalTask(identifier=item.eval_task_id, provider_resource_id=item.provider_eval_task_id or item.eval_task_id,
                        provider_id=self.pick_provider(item.provider_id), dataset_id=item.dataset_id,
                        scoring_functions=item.scoring_functions, metadata=item.metadata)

    async def list_eval_tasks(self) -> ListEvalTasksResponse:
        return ListEvalTasksResponse(data=await self.list())

    async def get_eval_task(self, eval_task_id: str) -> EvalTask:
        return await self.get(eval_task_id)

    async def register_eval_task(self, eval_task_id: str, dataset_id: str, scoring_functions: list[str],
                                 provider_eval_task_id: str | None = None, provider_id: str | None = None,
                                 metadata: dict[str, Any] | None = None) -> None:
        await self.register(self.from_input(EvalTaskInput(
            eval_task_id=eval_task_id, dataset_id=dataset_id, scoring_functions=scoring_functions,
            provider_eval_task_id=provider_eval_task_id, provider_id=provider_id, metadata=metadata or {})))


class _ToolsTable(ResourceTable[Tool]):
    kind = "tool"
    resource_cls = Tool


RAG_GROUP = "builtin::rag"  # the rag-tool routes go to this group's provider


class ToolGroupsRoutingTable(ResourceTable[ToolGroup]):
    """Tool groups, and the tools each group's provider lists when it is registered."""

    kind = "tool_group"
    resource_cls = ToolGroup

    def __init__(self, store, providers, *, routed_api: str) -> None:
        super().__init__(store, providers, routed_api=routed_api)
        self.tools = _ToolsTable(store, providers, routed_api=routed_api)

    async def initialize(self) -> None:
        await super().initialize()
        await self.tools.initialize()

    def from_input(self, item: ToolGroupInput) -> ToolGroup:
        return ToolGroup(identifier=item.toolgroup_id, provider_resource_id=item.toolgroup_id,
                         provider_id=self.pick_provider(item.provider_id), mcp_endpoint=item.mcp_endpoint, args=item.args)

    async def register(self, resource: ToolGroup, *, source="api") -> ToolGroup:
        """Register the group and the tools its provider lists for it, or
        nothing at all when listing fails or a tool name is taken."""
        if resource.identifier == RAG_GROUP and not hasattr(self.providers[resource.provider_id], "rag_tool_query"):
            raise BadRequestError(f"provider {resource.provider_id!r} does not serve the rag-tool routes that "
                                  f"{RAG_GROUP} stands for", field="provider_id")
        tools = await self._tools_of(resource)
        for tool in tools:
            taken = await self.tools._read(tool.identifier)
            if self.tools._served(taken) and taken.resource.toolgroup_id != resource.identifier:
                raise ConflictError(
                    f"tool {tool.identifier!r} of group {resource.identifier!r} is already provided by "
                    f"group {taken.resource.toolgroup_id!r}"
                )
        group = await super().register(resource, source=source)
        for old in [t for t in await self.tools.list() if t.toolgroup_id == group.identifier]:
            await self.tools._drop(old.identifier)
        for tool in tools:
            await self.tools._save(_Entry(tool, source, tool, int(time.time())))
        return group

    async def _tools_of(self, group: ToolGroup) -> list[Tool]:
        provider = self.providers[group.provider_id]
        tool_defs = await provider.list_runtime_tools(tool_group_id=group.identifier, mcp_endpoint=group.mcp_endpoint)
        host = ToolHost.model_context_protocol if group.mcp_endpoint else ToolHost.distribution
        return [
            Tool(identifier=t.name, provider_resource_id=t.name, provider_id=group.provider_id,
                 toolgroup_id=group.identifier, tool_host=host, description=t.description or "",
                 parameters=t.parameters or [], metadata=t.metadata)
            for t in tool_defs
        ]

    async def _drop(self, identifier: str) -> None:
        await super()._drop(identifier)
        for tool in [t for t in await self.tools.list() if t.toolgroup_id == identifier]:
            await self.tools._drop(tool.identifier)

    async def register_tool_group(self, toolgroup_id: str, provider_id: str, mcp_endpoint: URL | None = None,
                                  args: dict[str, Any] | None = None) -> None:
        await self.register(self.from_input(ToolGroupInput(
            toolgroup_id=toolgroup_id, provider_id=provider_id, mcp_endpoint=mcp_endpoint, args=args)))

    async def get_tool_group(self, toolgroup_id: str) -> ToolGroup:
        return await self.get(toolgroup_id)

    async def list_tool_groups(self) -> ListToolGroupsResponse:
        return ListToolGroupsResponse(data=await self.list())

    async def unregister_tool_group(self, toolgroup_id: str) -> None:
        await self.unregister(toolgroup_id)

    async def list_tools(self, toolgroup_id: str | None = None) -> ListToolsResponse:
        if toolgroup_id is not None:
            await self.get(toolgroup_id)  # 404 for an unknown group, not an empty list
        tools = await self.tools.list()
        return ListToolsResponse(data=[t for t in tools if toolgroup_id is None or t.toolgroup_id == toolgroup_id])

    async def get_tool(self, tool_name: str) -> Tool:
        return await self.tools.get(tool_name)
