"""Routing tables (resource registries) and the routers that dispatch by them.

Each entry of ``ROUTINGS`` ties a routed API (inference) to the table API
that registers its resources (models), the run-config section listing them,
and the router that serves the routed API by looking resources up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ._table import ResourceTable
from .models import ModelsRoutingTable
from .routers import (
    DatasetIORouter,
    EvalRouter,
    InferenceRouter,
    SafetyRouter,
    ScoringRouter,
    ToolRuntimeRouter,
    VectorIORouter,
)
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
    routed_api: str
    table_api: str
    config_section: str
    table: type[ResourceTable]
    router: Callable[[ResourceTable], Any]


ROUTINGS: dict[str, Routing] = {
    r.table_api: r
    for r in [
        Routing("inference", "models", "models", ModelsRoutingTable, InferenceRouter),
        Routing("safety", "shields", "shields", ShieldsRoutingTable, SafetyRouter),
        Routing("vector_io", "vector_dbs", "vector_dbs", VectorDBsRoutingTable, VectorIORouter),
        Routing("datasetio", "datasets", "datasets", DatasetsRoutingTable, DatasetIORouter),
        Routing("scoring", "scoring_functions", "scoring_fns", ScoringFunctionsRoutingTable, ScoringRouter),
        Routing("eval", "eval_tasks", "eval_tasks", EvalTasksRoutingTable, EvalRouter),
        Routing("tool_runtime", "tool_groups", "tool_groups", ToolGroupsRoutingTable, ToolRuntimeRouter),
    ]
}

#: routed API -> its Routing
BY_ROUTED_API: dict[str, Routing] = {r.routed_api: r for r in ROUTINGS.values()}

__all__ = ["BY_ROUTED_API", "ROUTINGS", "ResourceTable", "Routing"]
