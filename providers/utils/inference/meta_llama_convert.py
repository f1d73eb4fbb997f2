"""Meta's Llama checkpoint format -> a Hugging Face checkpoint directory (torch and transformers are imported
by the conversion, in a worker thread, under the process's model-load lock).

``llama model download`` writes ``params.json``, ``consolidated.NN.pth`` (one
shard per model-parallel rank) and a tiktoken ``tokenizer.model``. transformers
cannot read that, so it is converted once into a directory that it can; the
directory records what it was made from and is reused while that is unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .load_lock import MODEL_LOAD_LOCK

if TYPE_CHECKING:
    import torch

__all__ = ["LLAMA3_CHAT_TEMPLATE", "LLAMA3_SPECIAL_TOKENS", "convert_into_data_dir", "convert_meta_checkpoint",
           "meta_to_hf_state_dict"]

# Llama 3's pre-tokenizer split (the regex of Meta's tokenizer.py)
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")
_NAMED = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
          "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
          "<|eot_id|>", "<|python_tag|>"]
# 256 special tokens follow the BPE ranks: the named ones, then reserved ones numbered on from 2
LLAMA3_SPECIAL_TOKENS = _NAMED + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(_NAMED))]
# Llama 3's chat format: a header per turn, each turn closed by <|eot_id|>
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + (message['content'] | trim) + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
_MARKER = "polystack-conversion.json"

# Meta's parameter names -> transformers' (per layer, after "layers.N.")
_LAYER_NAMES = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
# how model-parallel shards split each tensor (dim to concatenate on; None: replicated)
_SHARD_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1, "tok_embeddings": 1}


def _source_fingerprint(src: Path) -> dict[str, Any]:
    files = sorted([*src.glob("consolidated.*.pth"), src / "params.json", src / "tokenizer.model"])
    return {"source": str(src.resolve()),
            "files": {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()}}


def convert_into_data_dir(src: Path, data_dir: Path, model: str) -> Path:
    """The converted copy of ``model``'s Meta checkpoint ``src``: ``<data_dir>/meta-reference/<descriptor>``,
    shared by every provider of the stack that serves the model."""
    from .llama_checkpoints import descriptor_of

    descriptor = descriptor_of(model)
    target = data_dir / "meta-reference" / re.sub(r"[^A-Za-z0-9._-]", "_", descriptor)
    return convert_meta_checkpoint(src, target, descriptor=descriptor)


def convert_meta_checkpoint(src: Path, dst: Path, *, descriptor: str) -> Path:
    """``dst``: a Hugging Face checkpoint made from the Meta checkpoint ``src`` (made now unless it is there)."""
    fingerprint = _source_fingerprint(src)
    # also one conversion at a time: two providers serving one model convert it once
    with MODEL_LOAD_LOCK:
        marker = dst / _MARKER
        if marker.is_file() and json.loads(marker.read_text()) == fingerprint:
            return dst
        if not (src / "tokenizer.model").is_file():
            raise ValueError(f"{str(src)!r} has no tokenizer.model (Meta's checkpoints carry one)")
        params = json.loads((src / "params.json").read_text())
        staging = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            state = meta_to_hf_state_dict(_load_shards(src), params)
            config = _hf_config(params, state, descriptor)
            tokenizer = _tokenizer(src / "tokenizer.model")
            _save(staging, config, state, tokenizer)
            (staging / _MARKER).write_text(json.dumps(fingerprint))
            if dst.exists():
                shutil.rmtree(dst)
            staging.rename(dst)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dst


def _load_shards(src: Path) -> dict[str, torch.Tensor]:
    """One state dict from the model-parallel shards (concatenated the way Meta split them)."""
    import torch

    shards = [torch.load(p, map_location="cpu", mmap=True, weights_only=True)
              for p in sorted(src.glob("consolidated.*.pth"))]
    if len(shards) == 1:
        return shards[0]
    merged = {}
    for name, first in shards[0].items():
        dim = _SHARD_DIM.get(name.split(".")[-2])
        merged[name] = first if dim is None or first.dim() < 2 else torch.cat([s[name] for s in shards], dim=dim)
    return merged


def _unrotate(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Meta rotates interleaved pairs (x0,x1),(x2,x3)...; transformers rotates the two halves of each head:
    reorder each head's output rows from interleaved to half-split."""
    rows, cols = w.shape
    return w.view(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def meta_to_hf_state_dict(meta: dict[str, torch.Tensor], params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """transformers' LlamaForCausalLM state dict of a Meta-format one."""
    heads = params["n_heads"]
    kv_heads = params.get("n_kv_heads") or heads
    out: dict[str, torch.Tensor] = {"model.embed_tokens.weight": meta["tok_embeddings.weight"],
                                    "model.norm.weight": meta["norm.weight"]}
    if "output.weight" in meta:
        out["lm_head.weight"] = meta["output.weight"]
    for name, tensor in meta.items():
        if not name.startswith("layers."):
            continue
        _, index, rest = name.split(".", 2)
        if rest == "attention.wq.weight":
            tensor = _unrotate(tensor, heads)
        elif rest == "attention.wk.weight":
            tensor = _unrotate(tensor, kv_heads)
        if rest not in _LAYER_NAMES:  # e.g. rotary tables some exports store: recomputed by transformers
            continue
        out[f"model.layers.{index}.{_LAYER_NAMES[rest]}"] = tensor
    return {k: v.contiguous() for k, v in out.items()}


def _rope_scaling(params: dict[str, Any], descriptor: str) -> dict[str, Any] | None:
    """Llama 3.1+'s frequency scaling (``use_scaled_rope``): factor 8, and 32 for the 3.2 1B/3B models."""
    if not params.get("use_scaled_rope"):
        return None
    default_factor = 32.0 if descriptor.startswith("Llama3.2-") and "Vision" not in descriptor else 8.0
    return {"rope_type": "llama3", "factor": float(params.get("rope_scaling_factor") or default_factor),
            "low_freq_factor": 1.0, "high_freq_factor": float(params.get("high_freq_factor") or 4.0),
            "original_max_position_embeddings": 8192}


def _hf_config(params: dict[str, Any], state: dict[str, torch.Tensor], descriptor: str) -> Any:
    from transformers.models.llama.configuration_llama import LlamaConfig

    vocab, dim = state["model.embed_tokens.weight"].shape
    scaling = _rope_scaling(params, descriptor)
    begin, end = vocab - 256, vocab - 256 + 1  # <|begin_of_text|>, <|end_of_text|> follow the BPE ranks
    eom, eot = vocab - 256 + _NAMED.index("<|eom_id|>"), vocab - 256 + _NAMED.index("<|eot_id|>")
    return LlamaConfig(
        vocab_size=vocab, hidden_size=dim, num_hidden_layers=params["n_layers"],
        num_attention_heads=params["n_heads"], num_key_value_heads=params.get("n_kv_heads") or params["n_heads"],
        intermediate_size=state["model.layers.0.mlp.gate_proj.weight"].shape[0],
        rms_norm_eps=params.get("norm_eps", 1e-5), rope_theta=params.get("rope_theta", 10000.0),
        rope_scaling=scaling, max_position_embeddings=131072 if scaling else 8192,
        tie_word_embeddings="lm_head.weight" not in state,
        bos_token_id=begin, eos_token_id=[end, eom, eot],
    )


def _tokenizer(path: Path) -> Any:
    """A fast tokenizer from tiktoken's ``tokenizer.model`` (BPE ranks) plus Llama 3's 256 special tokens."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    try:
        from transformers.tokenization_utils_tokenizers import PreTrainedTokenizerFast
    except ImportError:  # transformers 4
        from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

    backend = TikTokenConverter(vocab_file=str(path), pattern=LLAMA3_PATTERN,
                                extra_special_tokens=LLAMA3_SPECIAL_TOKENS).converted()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>", chat_template=LLAMA3_CHAT_TEMPLATE,
        model_input_names=["input_ids", "attention_mask"], clean_up_tokenization_spaces=False,
    )


def _save(directory: Path, config: Any, state: dict[str, torch.Tensor], tokenizer: Any) -> None:
    import torch
    from transformers.generation.configuration_utils import GenerationConfig
    from transformers.models.llama.modeling_llama import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if missing:
        raise ValueError(f"the checkpoint lacks {', '.join(missing[:5])}")
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
