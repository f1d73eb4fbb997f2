"""Device and dtype selection and model loading (imports torch: only ever imported in a worker thread)."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .load_lock import MODEL_LOAD_LOCK
from .transformers_models import LoadError, TransformersModelConfig

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# chat models end their turn with one of these even when the config names another eos token
TURN_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
SAMPLING_DEFAULTS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def resolve_device(setting: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; an explicit GPU that is not there is an error."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LoadError(f"device {setting!r}: torch {torch.__version__} sees no CUDA GPU")
        index = int(setting.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise LoadError(f"device {setting!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if setting == "mps" and not torch.backends.mps.is_available():
        raise LoadError("device 'mps': torch sees no Apple GPU")
    return setting


def resolve_dtype(setting: str, device: str) -> torch.dtype:
    """'auto' -> float32 on CPU; on a GPU bfloat16 where supported, else float16."""
    if setting != "auto":
        return DTYPES[setting]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


@dataclass(eq=False)
class LoadedModel:
    """A model on its device and what generation needs to know about it."""

    model: Any
    tokenizer: Any
    device: str
    dtype: torch.dtype
    chat_template: str | None
    context_length: int | None
    eos_ids: list[int]
    pad_id: int
    vocab_size: int
    defaults: dict[str, float] = field(default_factory=dict)
    #: draws the seeds of requests that send none (set when a provider seeds torch once, e.g. meta-reference)
    rng: torch.Generator | None = None

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


#: weight quantization -> the package that does it (on CUDA only)
QUANTIZERS = {"int4": "bitsandbytes", "int8": "bitsandbytes", "fp8": "torchao"}


def load_model(entry: TransformersModelConfig, device_setting: str, dtype_setting: str,
               quantization: str | None = None) -> LoadedModel:
    """Load ``entry`` from local files only (nothing is ever downloaded), its weights quantized to
    ``quantization`` (a key of QUANTIZERS) when given."""
    with MODEL_LOAD_LOCK:  # one load at a time in this process (load_lock.py says why)
        return _load(entry, device_setting, dtype_setting, quantization)


def quantization_config(quantization: str, device: str, dtype: torch.dtype) -> Any:
    """transformers' quantization_config for ``quantization`` on ``device``; LoadError naming what is missing."""
    package = QUANTIZERS[quantization]
    if not device.startswith("cuda"):
        raise LoadError(f"{quantization} quantization runs on a CUDA GPU only ({package}); this model's device is "
                        f"{device!r}: use bf16 on this machine")
    if importlib.util.find_spec(package) is None:
        raise LoadError(f"{quantization} quantization needs the {package!r} package, which is not installed "
                        f"(pip install {package})")
    if quantization == "fp8":
        from torchao.quantization import Float8WeightOnlyConfig
        from transformers import TorchAoConfig

        return TorchAoConfig(Float8WeightOnlyConfig())
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)


def _load(entry: TransformersModelConfig, device_setting: str, dtype_setting: str,
          quantization: str | None) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(entry.device or device_setting)
    dtype = resolve_dtype(entry.dtype or dtype_setting, device)
    quantized = quantization_config(quantization, device, dtype) if quantization else None
    if entry.path is not None:
        source, weights_kwargs = str(Path(entry.path).expanduser()), {}
    else:
        gguf = entry.gguf_path()
        source, weights_kwargs = str(gguf.parent), {"gguf_file": gguf.name}
    if entry.tokenizer is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(Path(entry.tokenizer).expanduser()), local_files_only=True)
    else:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, **weights_kwargs)
    if device != "cpu" and _have_accelerate():  # straight onto the GPU, not through host memory
        weights_kwargs["device_map"] = device
    if quantized is not None:  # quantized weights are placed by device_map and cannot be moved after
        weights_kwargs.update(quantization_config=quantized, device_map=device)
    model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=dtype, **weights_kwargs)
    model = merge_adapters(model, entry.adapters)
    if quantized is None:
        model.to(device)
    model.eval()
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)
    gen = model.generation_config
    defaults = {k: getattr(gen, k) for k in SAMPLING_DEFAULTS if getattr(gen, k, None) is not None}
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=str(model.device),
        dtype=dtype,
        chat_template=entry.chat_template or getattr(tokenizer, "chat_template", None),
        context_length=getattr(model.config, "max_position_embeddings", None),
        eos_ids=eos_ids,
        pad_id=int(pad_id),
        vocab_size=int(model.get_output_embeddings().weight.shape[0]),
        defaults=defaults,
    )


def merge_adapters(model: Any, adapters: list[str]) -> Any:
    """``model`` with each PEFT adapter directory merged into its weights, in order."""
    if adapters:
        from peft import PeftModel

        for adapter in adapters:
            model = PeftModel.from_pretrained(model, str(Path(adapter).expanduser())).merge_and_unload()
    return model


def _have_accelerate() -> bool:
    return importlib.util.find_spec("accelerate") is not None


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for value in (model.generation_config.eos_token_id, model.config.eos_token_id, tokenizer.eos_token_id):
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if token_id is not None and int(token_id) not in ids:
                ids.append(int(token_id))
    special = set(getattr(tokenizer, "all_special_tokens", ()))
    for token in TURN_END_TOKENS:
        if token in special:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id not in ids and token_id != tokenizer.unk_token_id:
                ids.append(token_id)
    return ids


def free(loaded: LoadedModel | None) -> None:
    """Drop a model's weights; on a GPU give the cached memory back too."""
    if loaded is None:
        return
    on_gpu = loaded.device.startswith("cuda")
    loaded.model = None
    loaded.tokenizer = None
    import gc

    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
