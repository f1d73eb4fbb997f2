"""Routing tables (resource registries), on SQLite and on PostgreSQL.

Every test runs once per metadata-store backend. Providers are small test
doubles defined here; a second table object on the same store stands in for
another replica or for the same server after a restart.
"""

from __future__ import annotations

import pytest

from stack.apis.datasets import DatasetInput
from stack.apis.eval_tasks import EvalTaskInput
from stack.apis.models import ModelInput, ModelType
from stack.apis.scoring_functions import ScoringFnInput
from stack.apis.shields import ShieldInput
from stack.apis.tool_groups import ToolDef, ToolGroupInput, ToolHost, ToolParameter
from stack.apis.vector_dbs import VectorDBInput
from stack.errors import BadRequestError, ConflictError, NotFoundError
from stack.routing.models import ModelsRoutingTable
from stack.routing.tables import (
    DatasetsRoutingTable,
    EvalTasksRoutingTable,
    ScoringFunctionsRoutingTable,
    ShieldsRoutingTable,
    ToolGroupsRoutingTable,
    VectorDBsRoutingTable,
)
from stack.storage import SqliteStoreConfig, kvstore_from_config


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request, tmp_path):
    if request.param == "sqlite":
        return SqliteStoreConfig(db_path=str(tmp_path / "registry.db"))
    return request.getfixturevalue("postgres_config")


@pytest.fixture
async def open_store(store_config):
    """Opens stores on the test's one database (each call: one more connection)."""
    stores = []

    async def open_():
        stores.append(await kvstore_from_config(store_config))
        return stores[-1]

    yield open_
    for store in stores:
        await store.close()


@pytest.fixture
async def store(open_store):
    return await open_store()


# -- test doubles --------------------------------------------------------------


class FakeInference:
    """Test double of an inference provider: records what the table asks of it.

    ``register_model`` rejects provider model names starting with "forbidden"
    and, when ``context_length`` is set, fills it into the model's metadata.
    """

    def __init__(self, context_length: int | None = None) -> None:
        self.context_length = context_length
        self.registered: list[str] = []
        self.unregistered: list[str] = []

    async def register_model(self, model):
        if model.provider_resource_id.startswith("forbidden"):
            raise BadRequestError("this provider does not serve forbidden models", field="provider_model_id")
        self.registered.append(model.identifier)
        if self.context_length is None:
            return None  # None means: keep the model as it is
        return model.model_copy(update={"metadata": {**model.metadata, "context_length": self.context_length}})

    async def unregister_model(self, model) -> None:
        self.unregistered.append(model.identifier)


class FakeProvider:
    """Test double of a provider without registration hooks."""


class FakeToolRuntime:
    """Test double of a tool runtime provider: a fixed list of tool names per group."""

    def __init__(self, tools_by_group: dict[str, list[str]]) -> None:
        self.tools_by_group = tools_by_group
        self.listed: list[str] = []

    async def list_runtime_tools(self, tool_group_id=None, mcp_endpoint=None) -> list[ToolDef]:
        self.listed.append(tool_group_id)
        return [
            ToolDef(
                name=name,
                description=f"the {name} tool",
                parameters=[ToolParameter(name="query", parameter_type="string", description="what to look up")],
            )
            for name in self.tools_by_group.get(tool_group_id, [])
        ]


def models_table(store, **providers) -> ModelsRoutingTable:
    return ModelsRoutingTable(store, providers, routed_api="inference")


async def started(table):
    await table.initialize()
    return table


# -- register / list / get / unregister ------------------------------------------------


async def test_register_list_get_unregister_model(store):
    provider = FakeInference()
    table = await started(models_table(store, acme=provider))

    model = await table.register_model("org/chat", provider_model_id="upstream-chat")

    assert (model.identifier, model.provider_resource_id, model.provider_id) == ("org/chat", "upstream-chat", "acme")
    assert model.model_type == ModelType.llm
    assert [m.identifier for m in (await table.list_models()).data] == ["org/chat"]
    assert await table.get_model("org/chat") == model
    assert provider.registered == ["org/chat"]

    await table.unregister_model("org/chat")

    assert provider.unregistered == ["org/chat"]
    assert (await table.list_models()).data == []
    with pytest.raises(NotFoundError):
        await table.get_model("org/chat")


async def test_provider_model_id_defaults_to_the_model_id(store):
    table = await started(models_table(store, acme=FakeInference()))
    model = await table.register_model("plain")
    assert model.provider_resource_id == "plain"


async def test_unknown_id_is_404_naming_it_and_listing_registered_ids(store):
    table = await started(models_table(store, acme=FakeInference()))
    await table.register_model("b-model")
    await table.register_model("a-model")

    with pytest.raises(NotFoundError) as info:
        await table.get_model("no/such")

    assert info.value.message == "Model 'no/such' not found; registered: 'a-model', 'b-model'"


async def test_404_on_an_empty_registry_says_none(store):
    table = await started(models_table(store, acme=FakeInference()))
    with pytest.raises(NotFoundError, match=r"'ghost' not found; registered: none"):
        await table.get_model("ghost")


async def test_unregister_unknown_id_is_404(store):
    provider = FakeInference()
    table = await started(models_table(store, acme=provider))
    with pytest.raises(NotFoundError, match="'ghost' not found"):
        await table.unregister_model("ghost")
    assert provider.unregistered == []


async def test_same_id_same_settings_is_idempotent(store):
    table = await started(models_table(store, acme=FakeInference()))
    first = await table.register_model("m", provider_model_id="up", metadata={"k": 1})
    again = await table.register_model("m", provider_model_id="up", metadata={"k": 1})
    assert again == first
    assert [m.identifier for m in (await table.list_models()).data] == ["m"]


async def test_same_id_same_settings_is_idempotent_when_the_provider_filled_in_metadata(store):
    # A client retrying the very same request must not get a 409 because the
    # provider added metadata (context length, say) the first time.
    table = await started(models_table(store, acme=FakeInference(context_length=4096)))
    first = await table.register_model("m", provider_model_id="up")
    assert first.metadata == {"context_length": 4096}

    again = await table.register_model("m", provider_model_id="up")

    assert again == first


async def test_same_id_other_provider_is_409_naming_the_current_provider(store):
    table = await started(models_table(store, alpha=FakeInference(), beta=FakeInference()))
    await table.register_model("m", provider_id="alpha")

    with pytest.raises(ConflictError) as info:
        await table.register_model("m", provider_id="beta")

    assert "'m' is already registered with provider 'alpha'" in info.value.message
    assert (await table.get_model("m")).provider_id == "alpha"


async def test_same_id_other_settings_is_409(store):
    table = await started(models_table(store, acme=FakeInference()))
    await table.register_model("m", provider_model_id="one")

    with pytest.raises(ConflictError, match="'m' is already registered with other settings"):
        await table.register_model("m", provider_model_id="two")

    assert (await table.get_model("m")).provider_resource_id == "one"


async def test_provider_is_picked_when_only_one_is_configured(store):
    table = await started(models_table(store, only=FakeInference()))
    assert (await table.register_model("m")).provider_id == "only"


async def test_provider_id_is_required_with_several_providers(store):
    table = await started(models_table(store, alpha=FakeInference(), beta=FakeInference()))

    with pytest.raises(BadRequestError) as info:
        await table.register_model("m")

    assert info.value.field == "provider_id"
    assert "alpha, beta" in info.value.message
    assert (await table.list_models()).data == []


async def test_unknown_provider_id_is_a_bad_request_listing_the_configured_ones(store):
    table = await started(models_table(store, acme=FakeInference()))

    with pytest.raises(BadRequestError) as info:
        await table.register_model("m", provider_id="nope")

    assert info.value.field == "provider_id"
    assert "'nope'" in info.value.message and "configured: acme" in info.value.message


async def test_provider_hook_can_reject_a_registration(store):
    table = await started(models_table(store, acme=FakeInference()))

    with pytest.raises(BadRequestError) as info:
        await table.register_model("m", provider_model_id="forbidden-model")

    assert info.value.field == "provider_model_id"
    with pytest.raises(NotFoundError):
        await table.get_model("m")
    # nothing half-registered reached the store either
    assert await models_table(store, acme=FakeInference()).list() == []


async def test_provider_hook_can_alter_what_is_registered(store, open_store):
    table = await started(models_table(store, acme=FakeInference(context_length=8192)))

    model = await table.register_model("m")

    assert model.metadata == {"context_length": 8192}
    assert (await table.get_model("m")).metadata == {"context_length": 8192}
    replica = await started(models_table(await open_store(), acme=FakeInference()))
    assert (await replica.get_model("m")).metadata == {"context_length": 8192}


async def test_provider_without_hooks_is_fine(store):
    table = await started(models_table(store, plain=FakeProvider()))
    await table.register_model("m")
    await table.unregister_model("m")
    assert (await table.list_models()).data == []


async def test_embedding_model_needs_its_dimension(store):
    table = await started(models_table(store, acme=FakeInference()))
    with pytest.raises(BadRequestError) as info:
        await table.register_model("emb", model_type=ModelType.embedding)
    assert info.value.field == "metadata.embedding_dimension"


# -- persistence: replicas and restarts ------------------------------------------------


async def test_second_table_on_the_same_store_sees_registrations(store, open_store):
    first = await started(models_table(store, acme=FakeInference()))
    replica = await started(models_table(await open_store(), acme=FakeInference()))

    await first.register_model("m", provider_model_id="up")

    # found without a list() first: a cache miss re-reads the store
    assert (await replica.get_model("m")).provider_resource_id == "up"
    assert [m.identifier for m in (await replica.list_models()).data] == ["m"]


async def test_a_replica_tells_its_provider_of_a_resource_registered_elsewhere(store, open_store, monkeypatch):
    # providers keep state per process (an opened index, a loaded model): the replica's
    # provider must hear of the resource once before it serves it, and again when it changed
    from stack.routing import _table

    monkeypatch.setattr(_table, "CACHE_TTL_SECONDS", 0.0)
    first = await started(models_table(store, acme=FakeInference()))
    replica_provider = FakeInference()
    replica = await started(models_table(await open_store(), acme=replica_provider))
    await first.register_model("m", provider_model_id="one")

    for _ in range(3):
        await replica.get_model("m")
    assert replica_provider.registered == ["m"]

    await first.unregister_model("m")
    await first.register_model("m", provider_model_id="two")
    assert (await replica.get_model("m")).provider_resource_id == "two"
    assert replica_provider.registered == ["m", "m"]


async def test_a_replica_answers_its_providers_refusal_of_a_resource_registered_elsewhere(store, open_store):
    first = await started(models_table(store, acme=FakeInference()))
    replica = await started(models_table(await open_store(), acme=FakeInference()))
    await first.register_model("m", provider_model_id="ok")
    # this replica's provider refuses what the other accepted (another version, another config)
    replica.providers["acme"].register_model = _refuse

    with pytest.raises(BadRequestError, match="not on this replica"):
        await replica.get_model("m")


async def _refuse(model):
    raise BadRequestError("not on this replica", field="provider_model_id")


async def test_registrations_survive_a_restart(store_config):
    store = await kvstore_from_config(store_config)
    try:
        table = await started(models_table(store, acme=FakeInference()))
        await table.register_model("m", provider_model_id="up")
    finally:
        await store.close()

    store = await kvstore_from_config(store_config)
    try:
        table = await started(models_table(store, acme=FakeInference()))
        assert (await table.get_model("m")).provider_resource_id == "up"
    finally:
        await store.close()


async def test_second_table_sees_an_unregistration(store, open_store, monkeypatch):
    # a replica trusts its cache for CACHE_TTL_SECONDS; past that it re-reads
    from stack.routing import _table

    monkeypatch.setattr(_table, "CACHE_TTL_SECONDS", 0.0)
    first = await started(models_table(store, acme=FakeInference()))
    replica = await started(models_table(await open_store(), acme=FakeInference()))
    await first.register_model("m")
    assert (await replica.get_model("m")).identifier == "m"  # now in the replica's cache

    await first.unregister_model("m")

    with pytest.raises(NotFoundError):
        await replica.get_model("m")


async def test_conflict_is_detected_across_replicas(store, open_store):
    first = await started(models_table(store, acme=FakeInference()))
    replica = await started(models_table(await open_store(), acme=FakeInference()))
    await first.register_model("m", provider_model_id="one")

    with pytest.raises(ConflictError):
        await replica.register_model("m", provider_model_id="two")


# -- resources of providers that are no longer configured ----------------------------


async def test_resources_of_a_removed_provider_are_hidden(store, open_store):
    before = await started(models_table(store, old=FakeInference(), new=FakeInference()))
    await before.register_model("gone", provider_id="old")
    await before.register_model("kept", provider_id="new")

    after = await started(models_table(await open_store(), new=FakeInference()))

    assert [m.identifier for m in (await after.list_models()).data] == ["kept"]
    with pytest.raises(NotFoundError) as info:
        await after.get_model("gone")
    assert "registered: 'kept'" in info.value.message


async def test_a_hidden_resource_does_not_block_registering_its_id_again(store, open_store):
    before = await started(models_table(store, old=FakeInference(), new=FakeInference()))
    await before.register_model("m", provider_id="old")
    after = await started(models_table(await open_store(), new=FakeInference()))
    with pytest.raises(NotFoundError):
        await after.get_model("m")

    # GET says 404, so registering the id must not answer 409
    model = await after.register_model("m")

    assert model.provider_id == "new"
    assert (await after.get_model("m")).provider_id == "new"


# -- reconcile (run-config resources at start-up) ----------------------------------------


def run_config_models(table, *items: dict):
    return [table.from_input(ModelInput(**item)) for item in items]


async def test_reconcile_registers_run_config_resources(store):
    provider = FakeInference()
    table = await started(models_table(store, acme=provider))

    await table.reconcile(run_config_models(table, {"model_id": "a"}, {"model_id": "b", "provider_model_id": "up-b"}))

    assert [m.identifier for m in (await table.list_models()).data] == ["a", "b"]
    assert (await table.get_model("b")).provider_resource_id == "up-b"
    assert provider.registered == ["a", "b"]


async def test_reconcile_updates_changed_drops_removed_and_keeps_api_resources(store, open_store):
    table = await started(models_table(store, acme=FakeInference()))
    await table.reconcile(run_config_models(
        table, {"model_id": "changed", "provider_model_id": "v1"}, {"model_id": "removed"}, {"model_id": "same"}
    ))
    await table.register_model("from-api", provider_model_id="api-up")

    # the server restarts with an edited run config
    restarted = await started(models_table(await open_store(), acme=FakeInference()))
    await restarted.reconcile(run_config_models(
        restarted,
        {"model_id": "changed", "provider_model_id": "v2"},
        {"model_id": "same"},
        {"model_id": "added"},
    ))

    assert [m.identifier for m in (await restarted.list_models()).data] == ["added", "changed", "from-api", "same"]
    assert (await restarted.get_model("changed")).provider_resource_id == "v2"  # updated, no 409
    assert (await restarted.get_model("from-api")).provider_resource_id == "api-up"
    with pytest.raises(NotFoundError):
        await restarted.get_model("removed")
    # and the first table object, a replica still running, agrees after a fresh list
    assert "removed" not in [m.identifier for m in (await table.list_models()).data]


async def test_reconcile_with_an_empty_list_drops_every_run_config_resource(store):
    table = await started(models_table(store, acme=FakeInference()))
    await table.reconcile(run_config_models(table, {"model_id": "a"}))
    await table.register_model("api-one")

    await table.reconcile([])

    assert [m.identifier for m in (await table.list_models()).data] == ["api-one"]


async def test_reconcile_does_not_overwrite_an_api_registered_resource(store):
    table = await started(models_table(store, acme=FakeInference()))
    await table.register_model("m", provider_model_id="from-api")

    # the same id in the run config with other settings is logged and skipped
    await table.reconcile(run_config_models(table, {"model_id": "m", "provider_model_id": "from-file"}))

    assert (await table.get_model("m")).provider_resource_id == "from-api"


async def test_reconcile_skips_a_rejected_resource_and_registers_the_others(store):
    table = await started(models_table(store, acme=FakeInference()))

    await table.reconcile(run_config_models(
        table, {"model_id": "bad", "provider_model_id": "forbidden-x"}, {"model_id": "good"}
    ))

    assert [m.identifier for m in (await table.list_models()).data] == ["good"]


async def test_api_registration_of_a_run_config_id_with_other_settings_is_409(store):
    table = await started(models_table(store, acme=FakeInference()))
    await table.reconcile(run_config_models(table, {"model_id": "m", "provider_model_id": "file"}))

    with pytest.raises(ConflictError):
        await table.register_model("m", provider_model_id="other")


# -- the other resource kinds share the machinery ---------------------------------------------


@pytest.mark.parametrize(
    "table_cls, item, list_method, get_method",
    [
        (ShieldsRoutingTable, ShieldInput(shield_id="guard", provider_shield_id="up-guard"), "list_shields", "get_shield"),
        (
            DatasetsRoutingTable,
            DatasetInput(dataset_id="ds", provider_dataset_id="up-ds", url={"uri": "file:///rows.jsonl"},
                         dataset_schema={"question": {"type": "string"}}),
            "list_datasets",
            "get_dataset",
        ),
        (
            ScoringFunctionsRoutingTable,
            ScoringFnInput(scoring_fn_id="exact", provider_scoring_fn_id="up-exact", description="exact match",
                           return_type={"type": "number"}),
            "list_scoring_functions",
            "get_scoring_function",
        ),
        (
            EvalTasksRoutingTable,
            EvalTaskInput(eval_task_id="task", provider_eval_task_id="up-task", dataset_id="ds",
                          scoring_functions=["exact"]),
            "list_eval_tasks",
            "get_eval_task",
        ),
    ],
    ids=["shields", "datasets", "scoring_functions", "eval_tasks"],
)
async def test_other_kinds_register_list_get_and_persist(store, open_store, table_cls, item, list_method, get_method):
    table = await started(table_cls(store, {"p": FakeProvider()}, routed_api="whatever"))
    resource = await table.register(table.from_input(item))

    assert resource.provider_id == "p"
    assert resource.provider_resource_id.startswith("up-")
    assert [r.identifier for r in (await getattr(table, list_method)()).data] == [resource.identifier]
    replica = await started(table_cls(await open_store(), {"p": FakeProvider()}, routed_api="whatever"))
    assert await getattr(replica, get_method)(resource.identifier) == resource
    with pytest.raises(NotFoundError):
        await getattr(table, get_method)("nope")


async def test_registry_kinds_do_not_mix(store):
    models = await started(models_table(store, acme=FakeInference()))
    shields = await started(ShieldsRoutingTable(store, {"acme": FakeProvider()}, routed_api="safety"))
    await models.register_model("same-id")

    assert (await shields.list_shields()).data == []
    with pytest.raises(NotFoundError):
        await shields.get_shield("same-id")
    # and the same id can name a shield without a conflict
    assert (await shields.register_shield("same-id")).type == "shield"


# -- scoring functions: the built-ins each provider lists -------------------------------------------


class FakeScoring:
    """Test double of a scoring provider listing built-in functions."""

    def __init__(self, *ids: str) -> None:
        self.ids = ids

    async def list_scoring_functions(self):
        return [ScoringFnInput(scoring_fn_id=i, description=f"built-in {i}", return_type={"type": "number"})
                for i in self.ids]


async def test_the_built_ins_of_each_provider_are_registered_as_theirs(store):
    table = await started(ScoringFunctionsRoutingTable(
        store, {"basic": FakeScoring("basic::equality", "shared"), "judge": FakeScoring("shared", "judge::base"),
                "plain": FakeProvider()}, routed_api="scoring"))
    mine = table.from_input(ScoringFnInput(scoring_fn_id="basic::equality", description="mine", provider_id="judge",
                                           return_type={"type": "number"}))
    await table.reconcile([mine])

    owners = {f.identifier: (f.provider_id, f.description) for f in (await table.list_scoring_functions()).data}
    assert owners == {"basic::equality": ("judge", "mine"),  # the run config's wins
                      "shared": ("basic", "built-in shared"),  # the first provider listing an id keeps it
                      "judge::base": ("judge", "built-in judge::base")}


async def test_built_ins_leave_with_their_provider(store, open_store):
    table = await started(ScoringFunctionsRoutingTable(
        store, {"basic": FakeScoring("basic::equality"), "judge": FakeScoring("judge::base")}, routed_api="scoring"))
    await table.reconcile([])
    restarted = await started(ScoringFunctionsRoutingTable(
        await open_store(), {"judge": FakeScoring("judge::base")}, routed_api="scoring"))
    await restarted.reconcile([])

    assert [f.identifier for f in (await restarted.list_scoring_functions()).data] == ["judge::base"]
    restarted.providers["basic"] = FakeScoring("basic::equality")  # configured again: it is not lingering
    assert [f.identifier for f in (await restarted.list_scoring_functions()).data] == ["judge::base"]


# -- vector DBs -------------------------------------------------------------------------------------


@pytest.fixture
async def vector_dbs(store):
    models = await started(models_table(store, acme=FakeInference()))
    await models.register_model("minilm", model_type=ModelType.embedding, metadata={"embedding_dimension": 384})
    await models.register_model("chat")
    table = VectorDBsRoutingTable(store, {"faiss": FakeProvider()}, routed_api="vector_io")
    table.models = models
    return await started(table)


async def test_vector_db_with_an_unknown_embedding_model_is_a_bad_request(vector_dbs):
    with pytest.raises(BadRequestError) as info:
        await vector_dbs.register_vector_db("docs", embedding_model="no-such-model")
    assert info.value.field == "embedding_model"
    assert "'no-such-model' not found" in info.value.message
    assert "'minilm'" in info.value.message
    assert (await vector_dbs.list_vector_dbs()).data == []


async def test_vector_db_with_an_llm_as_embedding_model_is_a_bad_request(vector_dbs):
    with pytest.raises(BadRequestError) as info:
        await vector_dbs.register_vector_db("docs", embedding_model="chat")
    assert info.value.field == "embedding_model"
    assert "'chat' is not an embedding model" in info.value.message


async def test_vector_db_with_the_wrong_dimension_is_a_bad_request(vector_dbs):
    with pytest.raises(BadRequestError) as info:
        await vector_dbs.register_vector_db("docs", embedding_model="minilm", embedding_dimension=768)
    assert info.value.field == "embedding_dimension"
    assert "768" in info.value.message and "384" in info.value.message
    assert (await vector_dbs.list_vector_dbs()).data == []


async def test_vector_db_with_a_matching_embedding_model_registers(vector_dbs):
    db = await vector_dbs.register_vector_db("docs", embedding_model="minilm", embedding_dimension=384,
                                             provider_vector_db_id="faiss-docs")

    assert (db.identifier, db.provider_id, db.provider_resource_id) == ("docs", "faiss", "faiss-docs")
    assert (db.embedding_model, db.embedding_dimension) == ("minilm", 384)
    assert await vector_dbs.get_vector_db("docs") == db
    await vector_dbs.unregister_vector_db("docs")
    assert (await vector_dbs.list_vector_dbs()).data == []


async def test_run_config_vector_db_is_checked_too(vector_dbs):
    wanted = [
        vector_dbs.from_input(VectorDBInput(vector_db_id="bad", embedding_model="chat")),
        vector_dbs.from_input(VectorDBInput(vector_db_id="good", embedding_model="minilm")),
    ]
    await vector_dbs.reconcile(wanted)
    assert [d.identifier for d in (await vector_dbs.list_vector_dbs()).data] == ["good"]


# -- tool groups and their tools -------------------------------------------------------------------


def tool_groups_table(store, runtime) -> ToolGroupsRoutingTable:
    return ToolGroupsRoutingTable(store, {"tools": runtime}, routed_api="tool_runtime")


async def test_registering_a_tool_group_registers_the_tools_its_provider_lists(store):
    runtime = FakeToolRuntime({"builtin::websearch": ["web_search"], "builtin::math": ["add", "multiply"]})
    table = await started(tool_groups_table(store, runtime))

    await table.register_tool_group("builtin::websearch", provider_id="tools")
    await table.register_tool_group("builtin::math", provider_id="tools")

    assert runtime.listed == ["builtin::websearch", "builtin::math"]
    assert [g.identifier for g in (await table.list_tool_groups()).data] == ["builtin::math", "builtin::websearch"]
    assert sorted(t.identifier for t in (await table.list_tools()).data) == ["add", "multiply", "web_search"]
    assert [t.identifier for t in (await table.list_tools(toolgroup_id="builtin::math")).data] == ["add", "multiply"]
    tool = await table.get_tool("web_search")
    assert (tool.toolgroup_id, tool.provider_id, tool.tool_host) == ("builtin::websearch", "tools", ToolHost.distribution)
    assert tool.description == "the web_search tool"
    assert [p.name for p in tool.parameters] == ["query"]


async def test_tools_of_an_mcp_group_are_hosted_by_mcp(store):
    table = await started(tool_groups_table(store, FakeToolRuntime({"mcp::files": ["read_file"]})))
    await table.register_tool_group("mcp::files", provider_id="tools", mcp_endpoint={"uri": "http://localhost:9/sse"})
    assert (await table.get_tool("read_file")).tool_host == ToolHost.model_context_protocol


async def test_tools_of_an_unknown_group_is_404_not_an_empty_list(store):
    table = await started(tool_groups_table(store, FakeToolRuntime({"g": ["t"]})))
    await table.register_tool_group("g", provider_id="tools")

    with pytest.raises(NotFoundError) as info:
        await table.list_tools(toolgroup_id="nope")

    assert "'nope' not found" in info.value.message and "'g'" in info.value.message


async def test_unknown_tool_is_404(store):
    table = await started(tool_groups_table(store, FakeToolRuntime({"g": ["t"]})))
    await table.register_tool_group("g", provider_id="tools")
    with pytest.raises(NotFoundError, match=r"Tool 'nope' not found; registered: 't'"):
        await table.get_tool("nope")


async def test_unregistering_a_tool_group_removes_its_tools(store, open_store):
    table = await started(tool_groups_table(store, FakeToolRuntime({"a": ["a1", "a2"], "b": ["b1"]})))
    await table.register_tool_group("a", provider_id="tools")
    await table.register_tool_group("b", provider_id="tools")

    await table.unregister_tool_group("a")

    assert [t.identifier for t in (await table.list_tools()).data] == ["b1"]
    with pytest.raises(NotFoundError):
        await table.get_tool("a1")
    replica = await started(tool_groups_table(await open_store(), FakeToolRuntime({})))
    assert [t.identifier for t in (await replica.list_tools()).data] == ["b1"]


async def test_tool_groups_are_seen_by_a_second_table(store, open_store):
    table = await started(tool_groups_table(store, FakeToolRuntime({"g": ["t"]})))
    await table.register_tool_group("g", provider_id="tools")

    replica = await started(tool_groups_table(await open_store(), FakeToolRuntime({})))

    assert (await replica.get_tool_group("g")).provider_id == "tools"
    assert (await replica.get_tool("t")).toolgroup_id == "g"


async def test_reconcile_removing_a_tool_group_removes_its_tools(store, open_store):
    runtime = FakeToolRuntime({"kept": ["k"], "dropped": ["d1", "d2"]})
    table = await started(tool_groups_table(store, runtime))
    await table.reconcile([
        table.from_input(ToolGroupInput(toolgroup_id="kept", provider_id="tools")),
        table.from_input(ToolGroupInput(toolgroup_id="dropped", provider_id="tools")),
    ])
    assert sorted(t.identifier for t in (await table.list_tools()).data) == ["d1", "d2", "k"]

    restarted = await started(tool_groups_table(await open_store(), runtime))
    await restarted.reconcile([restarted.from_input(ToolGroupInput(toolgroup_id="kept", provider_id="tools"))])

    assert [g.identifier for g in (await restarted.list_tool_groups()).data] == ["kept"]
    assert [t.identifier for t in (await restarted.list_tools()).data] == ["k"]
    with pytest.raises(NotFoundError):
        await restarted.get_tool("d1")


async def test_reconcile_refreshes_the_tools_of_a_kept_group(store, open_store):
    table = await started(tool_groups_table(store, FakeToolRuntime({"g": ["old_tool"]})))
    await table.reconcile([table.from_input(ToolGroupInput(toolgroup_id="g", provider_id="tools"))])

    # after an upgrade the provider lists other tools for the same group
    restarted = await started(tool_groups_table(await open_store(), FakeToolRuntime({"g": ["new_tool"]})))
    await restarted.reconcile([restarted.from_input(ToolGroupInput(toolgroup_id="g", provider_id="tools"))])

    assert [t.identifier for t in (await restarted.list_tools(toolgroup_id="g")).data] == ["new_tool"]


async def test_a_tool_group_whose_tool_name_is_taken_is_refused_whole(store):
    table = ToolGroupsRoutingTable(store, {
        "first": FakeToolRuntime({"mcp::a": ["search"]}),
        "second": FakeToolRuntime({"mcp::b": ["fetch", "search"]}),
    }, routed_api="tool_runtime")
    await table.initialize()
    await table.register_tool_group("mcp::a", provider_id="first")

    with pytest.raises(ConflictError, match="tool 'search' of group 'mcp::b' is already provided by group 'mcp::a'"):
        await table.register_tool_group("mcp::b", provider_id="second")

    # a refused registration leaves nothing behind: no group, no partial tools
    assert [g.identifier for g in (await table.list_tool_groups()).data] == ["mcp::a"]
    assert [(t.identifier, t.toolgroup_id) for t in (await table.list_tools()).data] == [("search", "mcp::a")]


async def test_providers_hear_of_api_registered_resources_again_after_a_restart(store, open_store):
    table = await started(models_table(store, acme=FakeInference()))
    await table.register_model("from-api")
    restarted_provider = FakeInference()
    await started(models_table(await open_store(), acme=restarted_provider))
    assert restarted_provider.registered == ["from-api"]


async def test_reconcile_tells_the_provider_when_a_run_config_resource_leaves(store):
    provider = FakeInference()
    table = await started(models_table(store, acme=provider))
    await table.reconcile([table.from_input(ModelInput(model_id="kept")), table.from_input(ModelInput(model_id="gone"))])
    await table.reconcile([table.from_input(ModelInput(model_id="kept"))])
    assert provider.unregistered == ["gone"]
