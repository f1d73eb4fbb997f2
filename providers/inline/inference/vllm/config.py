"""Config of ``inline::vllm`` (llama-stack 0.1.0's VLLMConfig; pydantic only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class VLLMConfig(BaseModel):
    """``config:`` of ``inline::vllm``: one model run by vLLM on this machine's GPUs."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("Llama3.2-3B-Instruct", description="The Llama model served: a llama-models descriptor or its "
                       "Hugging Face id; its weights are looked for where inline::meta-reference looks")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is sharded over (vLLM's "
                                      "--tensor-parallel-size)")
    max_tokens: int = Field(4096, ge=1, description="max_tokens of requests that set none")
    max_model_len: int = Field(4096, ge=1, description="Context window served (vLLM's --max-model-len)")
    max_num_seqs: int = Field(4, ge=1, description="Sequences batched together at most (vLLM's --max-num-seqs)")
    enforce_eager: bool = Field(False, description="Eager mode instead of CUDA graphs (vLLM's --enforce-eager)")
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="Share of GPU memory vLLM may take, weights "
                                          "and KV cache included (vLLM's --gpu-memory-utilization)")
