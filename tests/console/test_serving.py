"""The console's page and static files: served at / without a key, data still behind it."""

import re
import tomllib

import pytest

from stack.console import STATIC_DIR
from tests.support import REPO, app_from_yaml, serve_app

RUN_YAML = """\
    version: '2'
    image_name: console-test
    apis: [telemetry]
    providers:
      telemetry:
      - provider_id: meta-reference
        provider_type: inline::meta-reference
        config: {sinks: [sqlite]}
    server:
      auth: {api_keys: [console-key]}
    """


@pytest.fixture
async def client(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    async with serve_app(app_from_yaml(tmp_path, RUN_YAML)) as client:
        yield client


async def test_page_and_files_load_without_a_key(client):
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # every file the page names is served
    for path in re.findall(r'(?:href|src)="(/console/[^"]+)"', page.text):
        assert (await client.get(path)).status_code == 200, path
    script = await client.get("/console/js/app.js")
    assert "javascript" in script.headers["content-type"]


async def test_data_calls_need_the_key(client):
    assert (await client.get("/v1/telemetry/traces")).status_code == 401
    ok = await client.get("/v1/telemetry/traces", headers={"Authorization": "Bearer console-key"})
    assert ok.status_code == 200


async def test_unknown_files_and_escapes_are_404(client):
    assert (await client.get("/console/nothing.js")).status_code == 404
    assert (await client.get("/console/..%2f..%2fconfig.py")).status_code == 404


async def test_loading_the_console_leaves_no_trace(client):
    key = {"Authorization": "Bearer console-key"}
    await client.get("/")
    await client.get("/console/console.css")
    traces = (await client.get("/v1/telemetry/traces", headers=key)).json()["data"]
    assert traces == []


def test_every_page_module_and_the_chart_library_ship_as_package_data():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["stack"]
    shipped = {p for g in globs for p in (REPO / "stack").glob(g) if p.is_file()}
    files = {p for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert files <= shipped, sorted(map(str, files - shipped))
    nav = set(re.findall(r'data-page="(\w+)"', (STATIC_DIR / "index.html").read_text()))
    assert {p.stem for p in (STATIC_DIR / "js" / "pages").glob("*.js")} == nav
    assert (STATIC_DIR / "vendor" / "uplot" / "LICENSE").exists()
