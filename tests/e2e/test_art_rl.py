"""The serve -> log -> train -> serve loop with W&B Training's real client: ``openpipe-art``'s
``ServerlessBackend`` against ``polystack run`` (inline::transformers serving a tiny Llama built
here, inline::huggingface training, inline::sql trajectories).

The task is verifiable: an answer earns 1 when it contains the word ``quick``, which the random
base model says in about a fifth of its answers. Groups rolled out through
``model.openai_client()`` train two GRPO jobs (a checkpoint each); the served checkpoint then says the word
more often than the base on prompts it never trained on.
"""

from __future__ import annotations

import os
import textwrap

import pytest

from tests.support import ServerProcess, build_tiny_llama

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # art imports litellm, which would fetch prices
art = pytest.importorskip("art", reason="install the test extra (openpipe-art)")
# importing art patches transformers for the whole process (art/transformers/patches.py) with a
# mask hook that breaks the in-process models of other tests; the HTTP client needs none of it
_art_patches = pytest.importorskip("art.transformers.patches")
_art_patches.masking_utils._preprocess_mask_arguments = _art_patches._preprocess_mask_arguments
from art.serverless.backend import ServerlessBackend

KEY = "rl-test-key"
TARGET = "quick"
TRAIN_PROMPTS = ["the cat", "a dog runs", "blue river", "happy bird sings"]
HELD_OUT = ["small house", "red tree", "over the mountain"]
GROUP_SIZE = 8
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("art-rl-home")
    tiny = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    run_yaml = home / "run.yaml"
    run_yaml.write_text(textwrap.dedent(f"""\
        version: '2'
        image_name: art-rl
        apis: [inference, datasetio, post_training, trajectories]
        providers:
          inference:
          - {{provider_id: transformers, provider_type: inline::transformers, config: {{models: {{tiny: {{path: {tiny.path}}}}}}}}}
          datasetio:
          - {{provider_id: localfs, provider_type: inline::localfs, config: {{}}}}
          post_training:
          - {{provider_id: huggingface, provider_type: inline::huggingface, config: {{}}}}
          trajectories:
          - {{provider_id: traj, provider_type: inline::sql, config: {{}}}}
        models:
        - {{model_id: tiny, provider_id: transformers}}
        server:
          auth: {{api_keys: [{KEY}]}}
        """))
    with ServerProcess(str(run_yaml), home=home, env={"WANDB_API_KEY": ""}) as proc:
        yield proc


def reward(choice) -> float:
    return float(TARGET in (choice.message.content or ""))


async def sample(client, model_name: str, prompt: str, n: int, seed: int):
    completion = await client.chat.completions.create(
        model=model_name, messages=[{"role": "user", "content": prompt}], n=n, max_tokens=MAX_TOKENS,
        temperature=1.0, seed=seed, logprobs=True, extra_body={"return_token_ids": True})
    return completion.choices


async def reward_rate(client, model_name: str, prompts: list[str] = HELD_OUT, n: int = 16) -> float:
    """The share of ``n`` sampled answers (fixed seeds) a held-out prompt that earn the reward."""
    rewards = [reward(c) for i, prompt in enumerate(prompts) for c in await sample(client, model_name, prompt, n, 7 + i)]
    return sum(rewards) / len(rewards)


async def test_art_serverless_backend_trains_the_served_model_to_earn_more_reward(server, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # art would open a W&B run
    backend = ServerlessBackend(base_url=server.base_url + "/v1", api_key=KEY)
    model = art.TrainableModel(name="says-quick", project="rl", entity="acme", base_model="tiny",
                               base_path=str(tmp_path / "art"))  # art keeps its own history there
    await model.register(backend)
    client = model.openai_client()
    name = model.get_inference_name()
    assert name == "wandb-artifact:///acme/rl/says-quick"
    base_rate = await reward_rate(client, name)  # no checkpoint yet: the base model answers

    for step in (1, 2):
        groups = []
        for i, prompt in enumerate(TRAIN_PROMPTS):
            choices = await sample(client, name, prompt, GROUP_SIZE, seed=100 * step + i)
            # what the next round trains on: the tokens as sampled, with their log-probabilities
            assert all(c.model_extra["token_ids"] and len(c.logprobs.content) >= 1 for c in choices)
            groups.append(art.TrajectoryGroup(
                art.Trajectory(messages_and_choices=[{"role": "user", "content": prompt}, c], reward=reward(c))
                for c in choices))
        await model.log(groups, split="train")
        result = await backend.train(model, groups, learning_rate=0.05)
        assert result.step == step
        assert {"loss/train", "loss/grad_norm", "loss/learning_rate", "data/step_trainer_tokens"} <= result.metrics.keys()
        assert result.metrics["loss/learning_rate"] == pytest.approx(0.05)
        steps = [c.step async for c in backend._client.models.checkpoints.list(model_id=model.id, order="asc")]
        assert steps == list(range(1, step + 1))  # one checkpoint a job

    trained_rate = await reward_rate(client, name)  # the bare name: the latest checkpoint
    print(f"reward on held-out prompts: base {base_rate:.3f}, after two jobs {trained_rate:.3f}")
    # the same seeded samples: the same model answers; step 1 answers differently
    async def texts(model_name):
        return [c.message.content for c in await sample(client, model_name, HELD_OUT[0], 4, seed=1)]

    assert await texts(f"{name}:step2") == await texts(name) != await texts(f"{name}:step1")
    assert trained_rate > base_rate + 0.2, (base_rate, trained_rate)
    await backend.close()
