"""Configs of ``inline::meta-reference`` and ``inline::meta-reference-quantized`` (llama-stack 0.1.0's
MetaReferenceInferenceConfig and its quantized variant), translated to an ``inline::transformers`` config.

Pydantic only: no torch at start-up.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["Bf16Quantization", "Fp8Quantization", "Int4Quantization", "MetaReferenceInferenceConfig",
           "MetaReferenceQuantizedInferenceConfig"]

# llama-stack's only int4 scheme (torchao's int4 weights with int8 dynamic activations)
INT4_SCHEME = "int4_weight_int8_dynamic_activation"


def _none_if_null(value: object) -> object:
    """llama-stack templates write ``${env.X:null}``: an unset variable leaves the string 'null'."""
    return None if isinstance(value, str) and value.strip() in ("", "null", "None") else value


class MetaReferenceInferenceConfig(BaseModel):
    """``config:`` of ``inline::meta-reference``: one Llama model from a local checkpoint, run by transformers."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None,
        description="The Llama model served: a llama-models descriptor (Llama3.2-3B-Instruct) or its Hugging Face "
        "id (meta-llama/Llama-3.2-3B-Instruct). Unset: the first LLM registered with this provider",
    )
    torch_seed: int | None = Field(None, description="Seeds torch once when the model loads: requests that send "
                                   "no seed then draw reproducible seeds, run after run")
    max_seq_len: int = Field(4096, ge=1, description="Context window served (prompt plus generated tokens), capped "
                             "by the model's own")
    max_batch_size: int = Field(1, ge=1, description="Accepted for llama-stack compatibility: requests run one at a "
                                "time in arrival order (the model's worker thread); this does not change that")
    create_distributed_process_group: bool = Field(
        True, description="Accepted for llama-stack compatibility: the model runs in this process (no torch.distributed "
        "group is made either way)")
    checkpoint_dir: str | None = Field(
        None, description="The model's checkpoint directory (Hugging Face or Meta format). Unset: "
        "~/.llama/checkpoints/<descriptor>, then the local Hugging Face cache")
    model_parallel_size: int | None = Field(
        None, ge=1, description="GPUs to shard the model over: 1 (or unset) only; larger is a config error")

    @field_validator("model", "checkpoint_dir", "torch_seed", "model_parallel_size", mode="before")
    @classmethod
    def _null_string_is_none(cls, value: object) -> object:
        return _none_if_null(value)

    @field_validator("model_parallel_size")
    @classmethod
    def _one_device(cls, value: int | None) -> int | None:
        if value is not None and value > 1:
            raise ValueError(f"{value} is not supported: polystack runs meta-reference models on one device "
                             "(transformers); use inline::vllm with tensor_parallel_size to shard over GPUs")
        return value


class Bf16Quantization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["bf16"] = "bf16"


class Fp8Quantization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["fp8"] = "fp8"


class Int4Quantization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["int4"] = "int4"
    scheme: str | None = Field(INT4_SCHEME, description=f"{INT4_SCHEME!r} (llama-stack's only scheme) or null")

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value not in (None, INT4_SCHEME):
            raise ValueError(f"unknown int4 scheme {value!r}; known: {INT4_SCHEME}")
        return value


QuantizationConfig = Annotated[Union[Bf16Quantization, Fp8Quantization, Int4Quantization], Field(discriminator="type")]


class MetaReferenceQuantizedInferenceConfig(MetaReferenceInferenceConfig):
    """``config:`` of ``inline::meta-reference-quantized``: the same, plus how the weights are quantized."""

    quantization: QuantizationConfig = Field(
        description="{type: bf16} bfloat16 weights; {type: fp8} float8 weights through torchao; {type: int4, scheme} "
        "4-bit weights through bitsandbytes. fp8 and int4 need a CUDA GPU")

    @model_validator(mode="before")
    @classmethod
    def _scheme_only_for_int4(cls, data: object) -> object:
        quant = data.get("quantization") if isinstance(data, dict) else None
        if isinstance(quant, dict) and quant.get("type") in ("bf16", "fp8") and quant.get("scheme") is not None:
            raise ValueError(f"quantization.scheme applies to int4 only, not {quant['type']}")
        if isinstance(quant, dict) and quant.get("type") in ("bf16", "fp8"):
            data = {**data, "quantization": {k: v for k, v in quant.items() if k != "scheme"}}
        return data
