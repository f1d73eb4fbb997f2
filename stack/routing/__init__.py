"""Routing tables (resource registries) and the routers that dispatch by them.

Each entry of ``ROUTINGS`` ties a routed API (inference) to the table API
that registers its resources (models), the run-config section listing them,
and the router that serves the routed API by looking resources up.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._table import ResourceTable
from .models import ModelsRoutingTable
from .routers import InferenceRouter, Router, ScoringRouter, ToolRuntimeRouter
from .tables import (
    DatasetsRoutingTable,
    EvalTasksRoutingTable,
    ScoringFunctionsRoutingTable,
    ShieldsRoutingTable,
    ToolGroupsRoutingTable,
    VectorDBsRoutingTable,
)


@dataclass(frozen=True)
class Routing:
    """How a routed API finds its provider: the table API registering its
    resources, the run-config section listing them, and the request
    parameter naming one (``key``). ``router`` is ``Router`` unless the family
    needs its own; ``table_dependencies`` are tables this one looks into (a
    vector DB names an embedding model), set as attributes of the same name."""

    routed_api: str
    table_api: str
    #: the run config's list of these resources; None: registered through the API only
    config_section: str | None
    table: type[ResourceTable]
    key: str
    router: type[Router] = Router
    table_dependencies: tuple[str, ...] = ()

    def make_router(self, table: ResourceTable) -> Router:
        return self.router(table, api=self.routed_api, key=self.key)


ROUTINGS: dict[str, Routing] = {}
#: routed API -> its Routing
BY_ROUTED_API: dict[str, Routing] = {}


def add_routing(routing: Routing) -> None:
    """Declare a routed family (built-in or from a plugin's ``register_apis``)."""
    known = ROUTINGS.get(routing.table_api)
    if known is not None and known != routing:
        raise ValueError(f"table API {routing.table_api!r} is already routed for {known.routed_api!r}")
    ROUTINGS[routing.table_api] = BY_ROUTED_API[routing.routed_api] = routing


def remove_routing(table_api: str) -> None:
    """Forget a routed family (a plugin's, in tests)."""
    routing = ROUTINGS.pop(table_api, None)
    if routing is not None:
        BY_ROUTED_API.pop(routing.routed_api, None)


for _routing in [
    Routing("inference", "models", "models", ModelsRoutingTable, "model_id", InferenceRouter),
    Routing("safety", "shields", "shields", ShieldsRoutingTable, "shield_id"),
    Routing("vector_io", "vector_dbs", "vector_dbs", VectorDBsRoutingTable, "vector_db_id",
            table_dependencies=("models",)),
    Routing("datasetio", "datasets", "datasets", DatasetsRoutingTable, "dataset_id"),
    Routing("scoring", "scoring_functions", "scoring_fns", ScoringFunctionsRoutingTable, "scoring_fn_id", ScoringRouter),
    Routing("eval", "eval_tasks", "eval_tasks", EvalTasksRoutingTable, "task_id"),
    Routing("tool_runtime", "tool_groups", "tool_groups", ToolGroupsRoutingTable, "tool_group_id", ToolRuntimeRouter),
]:
    add_routing(_routing)

__all__ = ["BY_ROUTED_API", "ROUTINGS", "ResourceTable", "Router", "Routing", "add_routing", "remove_routing"]
