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
