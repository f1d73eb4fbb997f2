"""A database that goes away under a running app: 503 + Retry-After, then recovery."""

import asyncio
import shutil
import time
import tempfile
import warnings

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.server.test_app import serve


@pytest.fixture
def own_pg_server():
    """A PostgreSQL server of this test's own, so it can stop and start it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        data_dir = tempfile.mkdtemp(prefix="polystack-pg-stop-")
        servers = [pgserver.get_server(data_dir, cleanup_mode="stop")]

    def restart():
        servers.append(pgserver.get_server(data_dir, cleanup_mode="stop"))

    yield servers[0], restart
    servers[-1].cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)


async def test_postgres_down_is_503_with_retry_after_and_recovers(tmp_path, monkeypatch, own_pg_server):
    server, restart = own_pg_server
    params = conninfo_to_dict(server.get_uri())
    store = (f"metadata_store:\n  type: postgres\n  host: {params['host']}\n  db: postgres\n"
             f"  user: {params['user']}\n  connect_timeout: 1\n")
    async with serve(tmp_path, monkeypatch, store) as client:
        assert (await client.get("/v1/models")).status_code == 200

        server.cleanup()  # PostgreSQL stops under the running app
        down = await client.get("/v1/models")
        assert down.status_code == 503, down.text
        assert down.headers["Retry-After"] == "5"
        body = down.json()
        assert body["error"] == {"message": body["detail"], "type": "StorageUnavailableError", "status": 503}
        assert "PostgreSQL" in body["detail"] and "unavailable" in body["detail"]
        assert "password" not in body["detail"]

        restart()  # back: the same app serves again, no restart, within a Retry-After or two
        deadline = time.monotonic() + 12
        while (up := await client.get("/v1/models")).status_code == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert up.status_code == 200, up.text
        assert up.json()["data"] == []


async def test_a_failed_statement_is_500_without_its_text(tmp_path, monkeypatch):
    from stack.storage import StorageError
    from tests.server.test_app import INSTANCES

    async with serve(tmp_path, monkeypatch) as client:
        async def broken(**kwargs):
            raise StorageError('SQLite error on /srv/secret.db: no such column "x"')

        monkeypatch.setattr(INSTANCES["telemetry"], "query_traces", broken, raising=False)
        response = await client.get("/v1/telemetry/traces", headers={"X-Request-ID": "req-88"})
        assert response.status_code == 500
        assert "secret" not in response.text
        assert response.json()["detail"] == "internal error; request id req-88"


async def test_every_family_of_the_postgres_distribution_answers_503_then_recovers(tmp_path, monkeypatch, own_pg_server):
    """Registry, dataset rows, prompt logs, pgvector, trajectory logs, agent turns, jobs and
    spans with PostgreSQL gone: 503 + Retry-After, nothing half-written; back without a restart."""
    import yaml

    from tests.e2e.acknowledged import AcknowledgedWrites
    from tests.e2e.upstream_double import on_double, upstream_double
    from tests.support import app_from_yaml, serve_app

    server, restart = own_pg_server
    params = conninfo_to_dict(server.get_uri())
    for name, value in (("POSTGRES_HOST", params["host"]), ("POSTGRES_DB", "postgres"),
                        ("POSTGRES_USER", params["user"]), ("POLYSTACK_HOME", str(tmp_path / "home")),
                        ("POLYSTACK_PORT", "8321")):  # braintrust's judge endpoint, as polystack run sets it; unused here
        monkeypatch.setenv(name, value)
    with upstream_double() as url:
        config = on_double("postgres", url)
        _connect_within_a_second(config)
        async with serve_app(app_from_yaml(tmp_path, yaml.safe_dump(config))) as client:
            writes = AcknowledgedWrites("down")
            await writes.prepare(client, job=False)
            await writes.write(client, 0)  # every family once, while the database is up
            assert all(writes.acknowledged.values()), writes.acknowledged

            server.cleanup()  # PostgreSQL stops under the running app
            for kind, _value, route, body in writes.requests("while-down"):
                response = await client.post(route, json=body)
                assert response.status_code == 503, f"{kind}: {response.status_code} {response.text}"
                assert response.headers["Retry-After"] == "5"
                assert "unavailable" in response.json()["detail"]
            for route in ("/v1/jobs", "/v1/telemetry/traces", "/v1/vector-dbs", f"/v1/preview/models/{writes.model_id}/metrics",
                          "/v1/datasetio/rows?dataset_id=down&rows_in_page=5", f"/v5/logs/{writes.acknowledged['logs'][0]}"):
                assert (await client.get(route)).status_code == 503, route

            restart()  # back: the same app serves every family again
            deadline = time.monotonic() + 20
            while (await client.get("/v1/vector-dbs")).status_code == 503 and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            for kind, _value, route, body in writes.requests("after"):
                for _ in range(20):  # each pool reconnects on its own
                    if (response := await client.post(route, json=body)).status_code != 503:
                        break
                    await asyncio.sleep(0.5)
                assert response.status_code == 200, f"{kind}: {response.text}"
            await writes.assert_absent(client, "while-down")
            await writes.check(client)


def _connect_within_a_second(config) -> None:
    """Every PostgreSQL connection of a run config waits at most a second (the default is 10)."""
    if isinstance(config, dict):
        if config.get("type") == "postgres":
            config["connect_timeout"] = 1
        if config.get("provider_type") == "remote::pgvector":
            config["config"]["connect_timeout"] = 1
        for value in config.values():
            _connect_within_a_second(value)
    elif isinstance(config, list):
        for value in config:
            _connect_within_a_second(value)


async def test_every_family_of_the_starter_answers_503_while_its_sqlite_files_are_locked(tmp_path, monkeypatch):
    """Another process holds the write lock of every SQLite file past the busy timeout:
    each family's write is a 503 + Retry-After and leaves nothing; once free, all work."""
    import sqlite3

    import yaml

    from stack.storage import _sqlite
    from tests.e2e.acknowledged import AcknowledgedWrites
    from tests.e2e.upstream_double import on_double, upstream_double
    from tests.support import app_from_yaml, serve_app

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 200)
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("POLYSTACK_PORT", "8321")  # braintrust's judge endpoint, as polystack run sets it; unused here
    with upstream_double() as url:
        async with serve_app(app_from_yaml(tmp_path, yaml.safe_dump(on_double("starter", url)))) as client:
            writes = AcknowledgedWrites("locked")
            await writes.prepare(client, job=False)
            await writes.write(client, 0)
            assert all(writes.acknowledged.values()), writes.acknowledged

            files = sorted((tmp_path / "home" / "starter").glob("*.db"))
            assert len(files) >= 6, files  # registry, agents, faiss, datasets, prompt logs, trajectories, ...
            holders = [sqlite3.connect(path, isolation_level=None) for path in files]
            try:
                for holder in holders:
                    holder.execute("BEGIN EXCLUSIVE")
                for kind, _value, route, body in writes.requests("while-locked"):
                    response = await client.post(route, json=body)
                    assert response.status_code == 503, f"{kind}: {response.status_code} {response.text}"
                    assert response.headers["Retry-After"] == "5" and "busy" in response.json()["detail"]
            finally:
                for holder in holders:
                    holder.execute("ROLLBACK")
                    holder.close()
            for kind, _value, route, body in writes.requests("after"):
                response = await client.post(route, json=body)
                assert response.status_code == 200, f"{kind}: {response.text}"
            await writes.assert_absent(client, "while-locked")
            await writes.check(client)
