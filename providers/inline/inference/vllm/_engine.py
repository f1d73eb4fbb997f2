"""vLLM's OpenAI-compatible server as a child process on a loopback port: started with the server,
watched, stopped with it. Finding the weights (and converting Meta's format) happens first, in a thread."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import httpx

from providers.utils.inference.llama_checkpoints import descriptor_of, find_checkpoint, hf_repo_of
from stack.errors import NotFoundError, ServiceUnavailableError, StackError

from .config import VLLMConfig

log = logging.getLogger(__name__)
ENGINE_MODULE = "vllm.entrypoints.openai.api_server"
_LOG_TAIL = 2000


class VLLMEngine:
    """One ``python -m vllm.entrypoints.openai.api_server`` for the config's model. ``state`` is its health."""

    def __init__(self, config: VLLMConfig, port: int, data_dir: Path) -> None:
        self.config, self.port, self.data_dir = config, port, data_dir
        self.state = "not started"
        self.names = list(dict.fromkeys([config.model, hf_repo_of(config.model) or config.model,
                                         descriptor_of(config.model)]))
        self.log_path = data_dir / "vllm" / f"engine-{port}.log"
        self._error: StackError | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self.state = "starting"
            self._task = asyncio.get_running_loop().create_task(self._run())

    def command(self, weights: Path) -> list[str]:
        c = self.config
        return [sys.executable, "-m", ENGINE_MODULE, "--model", str(weights), "--served-model-name", *self.names,
                "--host", "127.0.0.1", "--port", str(self.port), "--tensor-parallel-size", str(c.tensor_parallel_size),
                "--max-model-len", str(c.max_model_len), "--max-num-seqs", str(c.max_num_seqs),
                "--gpu-memory-utilization", str(c.gpu_memory_utilization), *(["--enforce-eager"] if c.enforce_eager else [])]

    async def _run(self) -> None:
        weights = await self._weights()
        if weights is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as out:
            # its own session: vLLM's worker processes are stopped with it as one group
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(weights), stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"})  # weights are local: vLLM must not download anything
        self.state = "loading"
        async with httpx.AsyncClient() as client:
            while self._proc.returncode is None:
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/health", timeout=2)).status_code == 200:
                        self.state = "ready"
                        log.info("vLLM serves %r on port %d", self.config.model, self.port)
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        code = await self._proc.wait()
        self._fail(StackError, f"vLLM exited with code {code}: {self._log_tail()}")

    async def _weights(self) -> Path | None:
        search = await asyncio.to_thread(find_checkpoint, self.config.model, None)
        if search.path is None:
            self._fail(NotFoundError, search.why_missing())
            return None
        if search.format == "huggingface":
            return search.path
        self.state = "converting"
        try:
            from providers.utils.inference.meta_llama_convert import convert_into_data_dir

            return await asyncio.to_thread(convert_into_data_dir, search.path, self.data_dir, self.config.model)
        except Exception as exc:  # noqa: BLE001 - reported through health and requests
            self._fail(StackError, f"Meta checkpoint {str(search.path)!r} could not be converted: "
                                   f"{type(exc).__name__}: {exc}")
            return None

    def _fail(self, cls: type[StackError], message: str) -> None:
        if cls is NotFoundError:
            self._error = NotFoundError("Model", self.config.model,
                                        message=f"model {self.config.model!r} is not available: {message}")
        else:
            self._error = cls(f"inline::vllm model {self.config.model!r}: {message}")
        self.state = f"error: {message}"
        log.error("inline::vllm: %s", message)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-_LOG_TAIL:].decode(errors="replace").strip() or "(no output)"
        except OSError:
            return "(no output)"

    def check_ready(self) -> None:
        """Nothing when vLLM answers; else the error a request gets: 404 (no weights), 503 (still starting),
        500 (vLLM failed, with the end of its output)."""
        if self.state == "ready":
            return
        if self._error is not None:
            raise self._error
        raise ServiceUnavailableError(f"inline::vllm is still starting model {self.config.model!r} ({self.state}); "
                                      "GET /v1/health shows when it is ready", retry_after=10)

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                await asyncio.wait_for(self._proc.wait(), 30)
            except (ProcessLookupError, TimeoutError):
                if self._proc.returncode is None:
                    os.killpg(self._proc.pid, signal.SIGKILL)
        if self._task is not None:
            self._task.cancel()
        self.state = "shut down"
