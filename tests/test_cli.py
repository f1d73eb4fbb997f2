"""The polystack command as a user runs it."""

import os
import subprocess
import sys

import pytest

from tests.support import REPO, shared_path

REFERENCE_DIR = "llama-stack-0.1.0-run-configs"


def polystack(*args, env=None, check=False):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "stack", *args], capture_output=True, text=True, env=full_env, check=check)


def test_openapi_covers_the_whole_llama_stack_spec(tmp_path):
    doc = tmp_path / "openapi.json"
    polystack("openapi", "--output", str(doc), check=True)
    result = subprocess.run(
        [sys.executable, str(shared_path("checks", "spec_coverage.py")), str(doc)], capture_output=True, text=True
    )
    assert result.stdout.strip().splitlines()[-1] == "74 passed, 0 failed", result.stdout
    assert result.returncode == 0


def test_config_check_accepts_the_starter_distribution(tmp_path):
    result = polystack("config", "check", "starter", env={"POLYSTACK_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")
    assert "image 'starter'" in result.stdout


@pytest.mark.parametrize("name", ["meta-reference-gpu-run.yaml", "ollama-run-with-safety.yaml", "ollama-run.yaml",
                                  "remote-vllm-run.yaml", "together-run.yaml"])
def test_config_check_on_llama_stack_configs_passes_or_lists_missing_provider_types(name):
    path = shared_path("reference", REFERENCE_DIR, name)
    result = polystack("config", "check", str(path))
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        assert result.stdout.startswith("OK: ")
        return
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("error: ") == 1  # one error, listing everything
    if "provider types not available" in result.stderr:
        assert "available:" in result.stderr


def test_config_check_passes_llama_stacks_meta_reference_gpu_config(tmp_path):
    # inline::meta-reference (inference) is served: every provider type of this file exists
    path = shared_path("reference", REFERENCE_DIR, "meta-reference-gpu-run.yaml")
    result = polystack("config", "check", str(path),
                       env={"INFERENCE_MODEL": "meta-llama/Llama-3.2-3B-Instruct", "POLYSTACK_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ") and "image 'meta-reference-gpu'" in result.stdout


def test_config_check_names_file_line_and_field(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("version: '2'\nimage_name: t\nserver:\n  port: 0\n  colour: blue\n")
    result = polystack("config", "check", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4 at server.port" in result.stderr
    assert f"{bad}:5 at server.colour: unknown field" in result.stderr


def test_env_flag_sets_variables_for_the_config(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("version: '2'\nimage_name: ${env.NAME_FROM_FLAG}\n")
    result = polystack("config", "check", str(cfg), "--env", "NAME_FROM_FLAG=from-flag", env={"POLYSTACK_HOME": str(tmp_path)})
    assert "image 'from-flag'" in result.stdout, result.stderr
    result = polystack("config", "check", str(cfg), "--env", "no-equals-sign")
    assert result.returncode == 2
    assert "expected KEY=VALUE" in result.stderr


def test_unknown_distribution_lists_the_embedded_ones():
    result = polystack("run", "no-such-dist")
    assert result.returncode == 2
    assert "distributions: " in result.stderr and "starter" in result.stderr


EMBEDDED = sorted(p.parent.name for p in (REPO / "distributions").glob("*/run.yaml"))


def test_the_documented_distributions_are_embedded():
    assert {"starter", "remote-vllm", "ollama", "openai", "postgres"} <= set(EMBEDDED)


@pytest.mark.parametrize("name", EMBEDDED)
def test_every_embedded_distribution_passes_config_check(name, tmp_path):
    env = {"POLYSTACK_HOME": str(tmp_path), "INFERENCE_MODEL": "some-model", "VLLM_URL": "http://127.0.0.1:9/v1"}
    result = polystack("config", "check", name, env=env)
    assert result.returncode == 0, result.stderr
    assert f"image '{name}'" in result.stdout
