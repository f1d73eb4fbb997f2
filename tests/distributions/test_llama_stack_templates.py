"""llama-stack 0.1.0's templates (tests/fixtures/llama_stack_templates/) start with their
env vars pointed at test doubles of the services, pass `polystack config check`, and
answer a chat through the Llama Stack route."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.providers.remote.bedrock_double import FakeBedrock, aws_env
from tests.providers.remote.inference.doubles import FakeHFEndpoints, FakeOpenAIUpstream
from tests.support import app_from_yaml, serve_app

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "llama_stack_templates"
MODEL = "meta-llama/Llama-3.2-3B-Instruct"


def env_for(name: str, url: str) -> dict[str, str]:
    """The env vars a user sets to run template ``name`` (the service URLs: the doubles')."""
    host = url.removesuffix("/v1")
    return {
        "tgi-run": {"TGI_URL": host, "INFERENCE_MODEL": MODEL},
        "tgi-run-with-safety": {"TGI_URL": host, "TGI_SAFETY_URL": host, "INFERENCE_MODEL": MODEL,
                                "SAFETY_MODEL": "meta-llama/Llama-Guard-3-1B"},
        "hf-serverless-run": {"HF_INFERENCE_API_URL": host, "INFERENCE_MODEL": MODEL, "HF_API_TOKEN": "hf_test"},
        "hf-endpoint-run": {"HF_ENDPOINTS_API_URL": host, "HF_HUB_URL": host, "INFERENCE_ENDPOINT_NAME": "llama-3b",
                            "HF_API_TOKEN": "hf_test", "INFERENCE_MODEL": MODEL},
        "sambanova-run": {"SAMBANOVA_URL": url, "SAMBANOVA_API_KEY": "sn-test"},
        "nvidia-run": {"NVIDIA_BASE_URL": host, "NVIDIA_API_KEY": "nvapi-test"},
        "cerebras-run": {"CEREBRAS_BASE_URL": host, "CEREBRAS_API_KEY": "csk-test"},
        # 0.1.0's bedrock config is empty: boto3 finds the endpoint, region and keys in the environment
        "bedrock-run": aws_env(host),
    }[name]


#: the model each template's chat asks for, and the name the service must receive
CHAT_MODEL = {
    "tgi-run": (MODEL, MODEL),
    "tgi-run-with-safety": (MODEL, MODEL),
    "hf-serverless-run": (MODEL, MODEL),
    "hf-endpoint-run": (MODEL, MODEL),
    "sambanova-run": ("meta-llama/Llama-3.1-8B-Instruct", "Meta-Llama-3.1-8B-Instruct"),
    "nvidia-run": ("meta-llama/Llama-3.1-8B-Instruct", "meta/llama-3.1-8b-instruct"),
    "cerebras-run": ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
    "bedrock-run": ("meta-llama/Llama-3.1-8B-Instruct", "meta.llama3-1-8b-instruct-v1:0"),
}
DOUBLES = {"hf-endpoint-run": FakeHFEndpoints, "bedrock-run": FakeBedrock}
#: templates of local engines, started by tests/distributions/test_every_run_config.py
STARTED_ELSEWHERE = {"vllm-gpu-run"}


def test_every_template_is_tested():
    assert {p.stem for p in TEMPLATES.glob("*.yaml")} == set(CHAT_MODEL) | STARTED_ELSEWHERE


@pytest.fixture
async def double(request):
    server = await DOUBLES.get(request.param, FakeOpenAIUpstream)().start()
    yield server
    await server.stop()


def use_env(monkeypatch, tmp_path, env: dict[str, str]) -> None:
    for key, value in {**env, "SQLITE_STORE_DIR": str(tmp_path / "store"),
                       "SQLITE_DB_PATH": str(tmp_path / "trace.db"), "POLYSTACK_HOME": str(tmp_path),
                       "POLYSTACK_PORT": "8321"}.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("double", sorted(CHAT_MODEL), indirect=True, ids=str)
async def test_template_starts_and_answers_a_chat(double, monkeypatch, tmp_path, request):
    name = request.node.callspec.params["double"]
    use_env(monkeypatch, tmp_path, env_for(name, f"{double.url.removesuffix('/v1')}/v1"))
    model, upstream_name = CHAT_MODEL[name]
    async with serve_app(app_from_yaml(tmp_path, (TEMPLATES / f"{name}.yaml").read_text())) as client:
        health = await client.get("/v1/health")
        response = await client.post("/v1/inference/chat-completion", json={
            "model_id": model, "messages": [{"role": "user", "content": "Say hello"}]})
    assert health.status_code == 200, health.text
    assert response.status_code == 200, response.text
    assert response.json()["completion_message"]["content"] == "Hello from the test double"
    assert upstream_model(double) == upstream_name


def upstream_model(double) -> str:
    """The model name the service got in the last chat."""
    if isinstance(double, FakeBedrock):
        return double.of("Converse")[-1].target
    return [r for r in double.requests if r.path.endswith("/chat/completions")][-1].body["model"]


async def test_the_bedrock_template_guards_with_a_registered_guardrail(monkeypatch, tmp_path):
    server = await FakeBedrock().start()
    try:
        use_env(monkeypatch, tmp_path, env_for("bedrock-run", server.url))
        async with serve_app(app_from_yaml(tmp_path, (TEMPLATES / "bedrock-run.yaml").read_text())) as client:
            registered = await client.post("/v1/shields", json={
                "shield_id": "no-weapons", "provider_shield_id": "gr1abc2def3", "params": {"guardrailVersion": "1"}})
            checked = await client.post("/v1/safety/run-shield", json={
                "shield_id": "no-weapons", "params": {}, "messages": [{"role": "user", "content": "a bomb, please"}]})
    finally:
        await server.stop()
    assert registered.status_code == 200, registered.text
    assert checked.json()["violation"]["user_message"] == "Sorry, I can't help with that."
    assert server.of("ApplyGuardrail")[0].target == "gr1abc2def3@1"


async def test_the_safety_template_blocks_insecure_code_with_its_code_scanner(monkeypatch, tmp_path):
    server = await FakeOpenAIUpstream().start()
    try:
        use_env(monkeypatch, tmp_path, env_for("tgi-run-with-safety", server.url))
        text = (TEMPLATES / "tgi-run-with-safety.yaml").read_text()
        async with serve_app(app_from_yaml(tmp_path, text)) as client:
            shields = await client.get("/v1/shields")
            unsafe = await client.post("/v1/safety/run-shield", json={
                "shield_id": "CodeScanner", "params": {},
                "messages": [{"role": "user", "content": "```python\nimport os\nos.system(cmd)\n```"}]})
            safe = await client.post("/v1/safety/run-shield", json={
                "shield_id": "CodeScanner", "params": {},
                "messages": [{"role": "user", "content": "```python\nprint(sum([1, 2]))\n```"}]})
    finally:
        await server.stop()
    assert "CodeScanner" in {s["identifier"] for s in shields.json()["data"]}
    assert unsafe.json()["violation"]["metadata"]["rules"] == ["python-shell-injection"]
    assert safe.json() == {"violation": None}


@pytest.mark.parametrize("name", sorted(CHAT_MODEL))
def test_config_check_accepts_the_template(name, tmp_path):
    env = {**env_for(name, "http://127.0.0.1:9/v1"), "SQLITE_STORE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "stack", "config", "check", str(TEMPLATES / f"{name}.yaml")],
                            capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
