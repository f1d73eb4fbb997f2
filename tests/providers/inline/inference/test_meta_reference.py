"""inline::meta-reference and -quantized: Llama checkpoints where llama-stack keeps them, Meta's format
converted once (checked against Meta's own formulas), served by the inline::transformers machinery."""

from __future__ import annotations

import math
import re
from pathlib import Path

import httpx
import pytest
import torch
from pydantic import ValidationError

from providers.inline.inference.transformers import register_providers
from providers.inline.inference.transformers.meta_reference import MetaReferenceInference
from providers.inline.inference.transformers.meta_reference_config import (
    MetaReferenceInferenceConfig,
    MetaReferenceQuantizedInferenceConfig,
)
from providers.utils.inference.llama_checkpoints import descriptor_of, find_checkpoint, hf_repo_of
from providers.utils.inference.meta_llama_convert import LLAMA3_PATTERN, convert_meta_checkpoint
from stack.apis.models import Model, ModelType
from stack.apis.openai import OpenAIChatCompletionRequest
from stack.errors import BadRequestError, ConflictError, NotFoundError, StackError, status_code_for
from stack.registry import ProviderContext
from tests.support import REPO, ServerProcess, build_tiny_llama, build_tiny_meta_llama, shared_path

HELLO = [{"role": "user", "content": "the quick brown fox"}]


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    return build_tiny_meta_llama(tmp_path_factory.mktemp("Llama3.1-8B-Instruct"))


@pytest.fixture(scope="module")
def converted(meta, tmp_path_factory):
    return convert_meta_checkpoint(Path(meta.path), tmp_path_factory.mktemp("hf") / "Llama3.1-8B-Instruct",
                                   descriptor="Llama3.1-8B-Instruct")


# -- Meta's formulas, written out (llama-models' reference model) ----------------------------------------


def _rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _scaled_freqs(freqs, factor=8.0, low=1.0, high=4.0, old_context=8192):
    """Llama 3.1's use_scaled_rope: long wavelengths slowed by ``factor``, a smooth band in between."""
    out = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old_context / high:
            out.append(f)
        elif wavelen > old_context / low:
            out.append(f / factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out)


def reference_logits(w, p, tokens):
    dim, heads, kv_heads = p["dim"], p["n_heads"], p["n_kv_heads"]
    hd, n = dim // heads, len(tokens)
    freqs = 1.0 / (p["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    if p["use_scaled_rope"]:
        freqs = _scaled_freqs(freqs)
    cis = torch.polar(torch.ones(n, hd // 2), torch.outer(torch.arange(n).float(), freqs))

    def rotate(x):  # interleaved pairs (x0, x1), (x2, x3), ... as complex numbers
        return torch.view_as_real(torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2)) * cis[:, None, :]).flatten(2)

    h = w["tok_embeddings.weight"][tokens]
    mask = torch.full((n, n), float("-inf")).triu(1)
    for i in range(p["n_layers"]):
        x = _rms(h, w[f"layers.{i}.attention_norm.weight"], p["norm_eps"])
        q = rotate((x @ w[f"layers.{i}.attention.wq.weight"].T).view(n, heads, hd))
        k = rotate((x @ w[f"layers.{i}.attention.wk.weight"].T).view(n, kv_heads, hd))
        v = (x @ w[f"layers.{i}.attention.wv.weight"].T).view(n, kv_heads, hd)
        k, v = (t.repeat_interleave(heads // kv_heads, dim=1) for t in (k, v))
        scores = q.transpose(0, 1) @ k.transpose(0, 1).transpose(1, 2) / math.sqrt(hd) + mask
        attn = (scores.softmax(-1) @ v.transpose(0, 1)).transpose(0, 1).reshape(n, dim)
        h = h + attn @ w[f"layers.{i}.attention.wo.weight"].T
        x = _rms(h, w[f"layers.{i}.ffn_norm.weight"], p["norm_eps"])
        gated = torch.nn.functional.silu(x @ w[f"layers.{i}.feed_forward.w1.weight"].T) * (
            x @ w[f"layers.{i}.feed_forward.w3.weight"].T)
        h = h + gated @ w[f"layers.{i}.feed_forward.w2.weight"].T
    return _rms(h, w["norm.weight"], p["norm_eps"]) @ w["output.weight"].T


def _hf_logits(path, tokens):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0]


# -- conversion -------------------------------------------------------------------------------------------


def test_converted_weights_give_the_logits_of_metas_formulas(meta, converted):
    tokens = [5, 300, 17, 99, 260, 42, 7, 311, 0, 120]
    expected = reference_logits(meta.weights, meta.params, tokens)
    assert torch.allclose(_hf_logits(converted, tokens), expected, atol=1e-3, rtol=1e-3)


def test_llama_31_rope_scaling_is_carried_over_and_without_it_the_logits_differ(meta, converted, tmp_path):
    import json

    def rope(path):  # transformers 5 writes rope_parameters, older versions rope_scaling
        config = json.loads((path / "config.json").read_text())
        return config.get("rope_parameters") or config.get("rope_scaling") or {}

    assert rope(converted)["rope_type"] == "llama3" and rope(converted)["factor"] == 8.0
    plain = build_tiny_meta_llama(tmp_path / "plain", use_scaled_rope=False)
    out = convert_meta_checkpoint(Path(plain.path), tmp_path / "plain-hf", descriptor="Llama3-8B-Instruct")
    assert rope(out).get("rope_type", "default") == "default"
    tokens = list(range(40, 60))
    assert torch.allclose(_hf_logits(out, tokens), reference_logits(plain.weights, plain.params, tokens), atol=1e-3)
    assert not torch.allclose(_hf_logits(out, tokens), _hf_logits(converted, tokens), atol=1e-3)


def test_model_parallel_shards_are_joined(meta, converted, tmp_path):
    sharded = build_tiny_meta_llama(tmp_path / "sharded", shards=2)
    out = convert_meta_checkpoint(Path(sharded.path), tmp_path / "sharded-hf", descriptor="Llama3.1-8B-Instruct")
    tokens = [3, 1, 4, 1, 5, 9, 2, 6]
    assert torch.allclose(_hf_logits(out, tokens), _hf_logits(converted, tokens))


def test_the_tokenizer_splits_like_tiktoken_and_knows_llama3s_special_tokens(meta, converted):
    import tiktoken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted), local_files_only=True)
    encoding = tiktoken.Encoding("tiny", pat_str=LLAMA3_PATTERN, mergeable_ranks=meta.ranks, special_tokens={})
    for text in ("the quick brown fox jumps over the lazy dog", "Happy  river!\n\nmountain 123 tree's"):
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == encoding.encode(text)
        assert tokenizer.decode(encoding.encode(text)) == text
    base = len(meta.ranks)
    assert tokenizer.convert_tokens_to_ids(["<|begin_of_text|>", "<|eot_id|>", "<|reserved_special_token_246|>"]) == [
        base, base + 9, base + 255]
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_conversion_happens_once_and_again_when_the_checkpoint_changes(meta, tmp_path):
    target = tmp_path / "out"
    convert_meta_checkpoint(Path(meta.path), target, descriptor="Llama3.1-8B-Instruct")
    marker = (target / "config.json").stat().st_mtime_ns
    convert_meta_checkpoint(Path(meta.path), target, descriptor="Llama3.1-8B-Instruct")
    assert (target / "config.json").stat().st_mtime_ns == marker
    copy = build_tiny_meta_llama(tmp_path / "copy")
    convert_meta_checkpoint(Path(copy.path), target, descriptor="Llama3.1-8B-Instruct")
    assert (target / "config.json").stat().st_mtime_ns != marker


# -- where checkpoints are found ------------------------------------------------------------------------


def test_model_names_and_the_places_llama_stack_looks(tmp_path, monkeypatch):
    assert descriptor_of("meta-llama/Llama-3.2-3B-Instruct") == "Llama3.2-3B-Instruct"
    assert descriptor_of("meta-llama/Meta-Llama-3.1-8B-Instruct") == "Llama3.1-8B-Instruct"
    assert hf_repo_of("Llama3.2-1B-Instruct") == "meta-llama/Llama-3.2-1B-Instruct"
    assert hf_repo_of("Llama-Guard-3-1B") == "meta-llama/Llama-Guard-3-1B"
    monkeypatch.setenv("LLAMA_STACK_CONFIG_DIR", str(tmp_path / "llama"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    search = find_checkpoint("meta-llama/Llama-3.2-3B-Instruct", None)
    assert search.path is None
    assert search.tried == [str(tmp_path / "llama" / "checkpoints" / "Llama3.2-3B-Instruct"),
                            str(tmp_path / "hub" / "models--meta-llama--Llama-3.2-3B-Instruct" / "snapshots")]
    snapshot = tmp_path / "hub" / "models--meta-llama--Llama-3.2-3B-Instruct" / "snapshots" / "abc"
    build_tiny_llama(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    assert (find_checkpoint("Llama3.2-3B-Instruct", None).path, find_checkpoint("Llama3.2-3B-Instruct", None).format) == (
        snapshot, "huggingface")
    downloaded = build_tiny_meta_llama(tmp_path / "llama" / "checkpoints" / "Llama3.2-3B-Instruct")
    found = find_checkpoint("meta-llama/Llama-3.2-3B-Instruct", None)
    assert (found.path, found.format) == (Path(downloaded.path), "meta")
    assert find_checkpoint("Llama3.2-3B-Instruct", str(tmp_path / "elsewhere")).tried == [str(tmp_path / "elsewhere")]


# -- config --------------------------------------------------------------------------------------------


def test_config_takes_llama_stack_010s_fields_and_refuses_others():
    cfg = MetaReferenceInferenceConfig.model_validate({
        "model": "Llama3.2-3B-Instruct", "torch_seed": 3, "max_seq_len": 2048, "max_batch_size": 1,
        "create_distributed_process_group": False, "checkpoint_dir": "null", "model_parallel_size": 1})
    assert cfg.checkpoint_dir is None and cfg.torch_seed == 3
    with pytest.raises(ValidationError, match="(?s)model_parallel_size.*one device"):
        MetaReferenceInferenceConfig(model_parallel_size=2)
    with pytest.raises(ValidationError, match="extra"):
        MetaReferenceInferenceConfig.model_validate({"modle": "x"})
    q = MetaReferenceQuantizedInferenceConfig.model_validate({"model": "Llama3.2-3B-Instruct",
                                                             "quantization": {"type": "int4"}})
    assert q.quantization.scheme == "int4_weight_int8_dynamic_activation"
    assert MetaReferenceQuantizedInferenceConfig.model_validate({"quantization": {"type": "fp8", "scheme": None}})
    with pytest.raises(ValidationError, match="quantization"):
        MetaReferenceQuantizedInferenceConfig.model_validate({"quantization": {"type": "int8"}})
    with pytest.raises(ValidationError, match="scheme"):
        MetaReferenceQuantizedInferenceConfig.model_validate({"quantization": {"type": "int4", "scheme": "nf5"}})
    with pytest.raises(ValidationError, match="quantization"):
        MetaReferenceQuantizedInferenceConfig.model_validate({"model": "x"})


def test_both_types_are_registered_from_the_transformers_package():
    specs = []
    register_providers(specs.append)
    assert {s.provider_type: s.config.__name__ for s in specs} == {
        "inline::transformers": "TransformersConfig",
        "inline::meta-reference": "MetaReferenceInferenceConfig",
        "inline::meta-reference-quantized": "MetaReferenceQuantizedInferenceConfig"}


@pytest.mark.parametrize("doc, config", [("meta-reference.md", MetaReferenceInferenceConfig),
                                         ("meta-reference-quantized.md", MetaReferenceQuantizedInferenceConfig)])
def test_every_config_key_has_a_row_in_the_docs(doc, config):
    text = (REPO / "docs" / "providers" / doc).read_text()
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", text, re.MULTILINE))
    assert [k for k in config.model_fields if k not in rows] == []


# -- the provider ---------------------------------------------------------------------------------------


def _context(tmp_path) -> ProviderContext:
    return ProviderContext(provider_id="meta", spec=None, image_name="t", data_dir=tmp_path)


def _chat(model, **fields):
    return OpenAIChatCompletionRequest(model=model, messages=HELLO, **fields)


def _llm(model_id):
    return Model(identifier=model_id, provider_resource_id=model_id, provider_id="meta", model_type=ModelType.llm)


async def _serve(config, tmp_path):
    impl = MetaReferenceInference(config, _context(tmp_path))
    impl.start()
    return impl


async def test_a_meta_checkpoint_is_converted_into_the_data_dir_and_answers(meta, tmp_path):
    impl = await _serve(MetaReferenceInferenceConfig(model="Llama3.1-8B-Instruct", checkpoint_dir=meta.path,
                                                     max_seq_len=64, torch_seed=7), tmp_path)
    try:
        await impl.register_model(_llm("meta-llama/Llama-3.1-8B-Instruct"))  # the other spelling: same model
        answer = await impl.openai_chat_completion(_chat("meta-llama/Llama-3.1-8B-Instruct", max_tokens=5))
        assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage.completion_tokens <= 5
        assert (tmp_path / "meta-reference" / "Llama3.1-8B-Instruct" / "config.json").is_file()
        assert impl.context_length("Llama3.1-8B-Instruct") == 64  # max_seq_len caps the model's 131072
        assert (await impl.health()) == {"Llama3.1-8B-Instruct": "ready", "meta-llama/Llama-3.1-8B-Instruct": "ready"}
        with pytest.raises(BadRequestError, match="provider_model_id"):
            await impl.register_model(_llm("Llama3.2-1B-Instruct"))
    finally:
        await impl.shutdown()


async def test_torch_seed_makes_unseeded_sampling_repeat_run_after_run(meta, tmp_path):
    async def three_answers(seed):
        impl = await _serve(MetaReferenceInferenceConfig(model="m", checkpoint_dir=meta.path, torch_seed=seed),
                            tmp_path)
        try:
            return [(await impl.openai_chat_completion(_chat("m", max_tokens=6, temperature=1.0))).choices[0].message.content
                    for _ in range(3)]
        finally:
            await impl.shutdown()

    first = await three_answers(11)
    assert await three_answers(11) == first
    assert len(set(first)) > 1  # still sampling: each request draws its own seed


async def test_missing_weights_never_stop_start_up_and_name_the_places_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_STACK_CONFIG_DIR", str(tmp_path / "llama"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    impl = await _serve(MetaReferenceInferenceConfig(model="meta-llama/Llama-3.2-3B-Instruct"), tmp_path)
    try:
        with pytest.raises(NotFoundError) as missing:
            await impl.openai_chat_completion(_chat("meta-llama/Llama-3.2-3B-Instruct"))
        assert status_code_for(missing.value) == 404
        message = str(missing.value)
        assert "'meta-llama/Llama-3.2-3B-Instruct'" in message
        assert str(tmp_path / "llama" / "checkpoints" / "Llama3.2-3B-Instruct") in message and "hub" in message
        assert (await impl.health())["meta-llama/Llama-3.2-3B-Instruct"].startswith("error: no Llama checkpoint")
        # the weights appear later: the next request finds them
        build_tiny_meta_llama(tmp_path / "llama" / "checkpoints" / "Llama3.2-3B-Instruct")
        answer = await impl.openai_chat_completion(_chat("meta-llama/Llama-3.2-3B-Instruct", max_tokens=2))
        assert answer.usage.completion_tokens <= 2
    finally:
        await impl.shutdown()


async def test_without_a_model_in_the_config_the_first_llm_registered_is_served(meta, tmp_path):
    impl = await _serve(MetaReferenceInferenceConfig(checkpoint_dir=meta.path), tmp_path)
    try:
        assert await impl.health() == {}
        await impl.register_model(_llm("my-llama"))
        assert (await impl.openai_chat_completion(_chat("my-llama", max_tokens=2))).choices
        with pytest.raises(ConflictError, match="already serves 'my-llama'"):
            await impl.register_model(_llm("another-llama"))
    finally:
        await impl.shutdown()


@pytest.mark.parametrize("quantization, needs", [({"type": "fp8"}, "torchao"), ({"type": "int4"}, "bitsandbytes")])
async def test_fp8_and_int4_on_a_machine_without_cuda_are_load_errors_naming_what_is_needed(
        meta, tmp_path, quantization, needs):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    config = MetaReferenceQuantizedInferenceConfig(model="m", checkpoint_dir=meta.path, quantization=quantization)
    impl = await _serve(config, tmp_path)
    try:
        with pytest.raises(StackError) as failed:
            await impl.openai_chat_completion(_chat("m", max_tokens=2))
        assert f"{quantization['type']} quantization runs on a CUDA GPU only ({needs})" in str(failed.value)
        assert (await impl.health())["m"].startswith("error: ")
    finally:
        await impl.shutdown()


async def test_bf16_quantization_serves_bfloat16_weights(meta, tmp_path):
    config = MetaReferenceQuantizedInferenceConfig(model="m", checkpoint_dir=meta.path, quantization={"type": "bf16"})
    impl = await _serve(config, tmp_path)
    try:
        assert (await impl.openai_chat_completion(_chat("m", max_tokens=2))).choices
        assert impl.workers["m"].loaded.dtype == torch.bfloat16
    finally:
        await impl.shutdown()


# -- llama-stack 0.1.0's meta-reference-gpu run config, as is -------------------------------------------------


def test_the_meta_reference_gpu_reference_config_starts_and_chats(meta, tmp_path):
    from llama_stack_client import LlamaStackClient

    run_yaml = shared_path("reference", "llama-stack-0.1.0-run-configs", "meta-reference-gpu-run.yaml")
    env = {"INFERENCE_MODEL": "meta-llama/Llama-3.1-8B-Instruct", "INFERENCE_CHECKPOINT_DIR": meta.path,
           "SQLITE_STORE_DIR": str(tmp_path / "store"), "SQLITE_DB_PATH": str(tmp_path / "trace.db"),
           "LLAMA_STACK_CONFIG_DIR": str(tmp_path / "llama")}
    with ServerProcess(str(run_yaml), home=tmp_path / "home", env=env) as server:
        client = LlamaStackClient(base_url=server.base_url, timeout=120)
        answer = client.inference.chat_completion(
            model_id="meta-llama/Llama-3.1-8B-Instruct", messages=[{"role": "user", "content": "the cat"}],
            sampling_params={"max_tokens": 4})
        assert answer.completion_message.role == "assistant" and answer.completion_message.content
        health = httpx.get(server.base_url + "/v1/health").json()
        assert health["providers"]["meta-reference-inference"] == {"meta-llama/Llama-3.1-8B-Instruct": "ready"}


async def test_unregistering_frees_a_model_only_when_no_name_is_left(meta, tmp_path):
    impl = await _serve(MetaReferenceInferenceConfig(checkpoint_dir=meta.path), tmp_path)
    try:
        await impl.register_model(_llm("Llama3.1-8B-Instruct"))
        await impl.register_model(_llm("meta-llama/Llama-3.1-8B-Instruct"))
        worker = impl.workers["Llama3.1-8B-Instruct"]
        await impl.unregister_model(_llm("Llama3.1-8B-Instruct"))
        assert worker.state != "shut down"
        assert (await impl.openai_chat_completion(_chat("meta-llama/Llama-3.1-8B-Instruct", max_tokens=2))).choices
        await impl.unregister_model(_llm("meta-llama/Llama-3.1-8B-Instruct"))
        assert worker.state == "shut down" and impl.workers == {}
        await impl.register_model(_llm("another-llama"))  # the provider serves a new first model
        assert list(impl.workers) == ["another-llama"]
    finally:
        await impl.shutdown()
