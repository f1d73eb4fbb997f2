"""Run untrusted Python in a sandbox: bubblewrap when it works here, else a subprocess.

Both modes start the same launcher, which sets the resource limits (hard and
soft, so the code cannot raise them) and then execs the sandbox. The launcher
is a separate interpreter rather than a ``preexec_fn`` because a server has
threads, and ``preexec_fn`` can deadlock in a forked copy of a threaded process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stack.errors import ConfigError

from .config import CodeInterpreterConfig

log = logging.getLogger(__name__)

_LAUNCHER = """\
import os, resource, sys
cpu, mem, fsize = (int(v) for v in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
os.execvp(sys.argv[4], sys.argv[4:])
"""

# PID 1 of unshare's PID namespace: reports a child killed by signal N as exit code 128+N, as
# bwrap does (unshare's own re-raising of the signal fails in some util-linux versions)
_INIT = "import subprocess, sys; rc = subprocess.call(sys.argv[1:]); sys.exit(128 - rc if rc < 0 else rc)"

_PYTHON_INFO = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.executable]))"

# What a Python interpreter needs from the host, read-only; paths that do not exist are skipped.
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/alternatives",
                 "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")

_INSIDE = "/sandbox"  # the run's working directory as the code sees it under bwrap

# unshare: new user + network namespace (no network), new PID namespace so that
# killing it kills every process the code started
_UNSHARE = ("unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child")

_PROBE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float
    cpu_seconds: int
    memory_bytes: int
    file_bytes: int
    max_output_bytes: int

    @classmethod
    def from_config(cls, config: CodeInterpreterConfig) -> "Limits":
        return cls(config.timeout_seconds, config.cpu_seconds, config.memory_mb << 20, config.max_file_mb << 20,
                   config.max_output_bytes)


@dataclass
class RunResult:
    returncode: int | None  # negative: killed by that signal; None: could not be reaped
    stdout: str
    stderr: str
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Sandbox:
    """How runs are isolated on this machine, as found at start-up."""

    mode: Literal["bwrap", "subprocess"]
    python: str
    network_blocked: bool
    bwrap: str | None = None
    read_only_paths: tuple[str, ...] = ()
    wrapper: tuple[str, ...] = ()  # subprocess mode: the unshare command, when permitted

    def describe(self) -> dict[str, object]:
        return {"sandbox": self.mode, "network": "blocked" if self.network_blocked else "not blocked"}

    def argv(self, workdir: Path, limits: Limits, files: Path | None = None) -> tuple[list[str], dict[str, str]]:
        """Command line and environment that run ``main.py`` of ``workdir``; ``files`` is a folder the
        code may read at its own path (bwrap mounts it read-only; a subprocess sees the host anyway)."""
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER,
                    str(limits.cpu_seconds), str(limits.memory_bytes), str(limits.file_bytes)]
        if self.mode == "bwrap":
            cmd = [self.bwrap, "--unshare-all", "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
                   "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
            # the private /tmp first: mounted after the binds, it would hide a
            # Python that lives under /tmp (a virtualenv in a CI checkout, say)
            cmd += ["--size", str(limits.file_bytes), "--tmpfs", "/tmp"]
            for path in self.read_only_paths:
                cmd += ["--ro-bind-try", path, path]
            cmd += ["--proc", "/proc", "--dev", "/dev", "--bind", str(workdir), _INSIDE]
            if files is not None:
                cmd += ["--ro-bind", str(files), str(files)]
            cmd += ["--chdir", _INSIDE,
                    self.python, "-I", f"{_INSIDE}/main.py"]
            env = _minimal_env(home=_INSIDE, tmp="/tmp")
        else:
            init = [sys.executable, "-I", "-S", "-c", _INIT] if self.wrapper else []
            cmd = [*self.wrapper, *init, self.python, "-I", str(workdir / "main.py")]
            env = _minimal_env(home=str(workdir), tmp=str(workdir))
        return launcher + cmd, env


def _minimal_env(*, home: str, tmp: str) -> dict[str, str]:
    """The run's whole environment: nothing of the server's (API keys live there)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        # BLAS libraries reserve memory per thread; one thread keeps numpy within memory_mb
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


async def _capture(*argv: str, timeout: float = _PROBE_TIMEOUT) -> tuple[int | None, str]:
    """Exit status and output of a short probe command; (None, why) when it cannot start."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=_minimal_env(home="/", tmp=tempfile.gettempdir()),
            start_new_session=True,
        )
    except OSError as exc:
        return None, str(exc)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return None, f"no answer within {timeout}s"
    return proc.returncode, out.decode("utf-8", "replace").strip()


async def detect(config: CodeInterpreterConfig) -> Sandbox:
    """The sandbox ``config`` asks for, as far as this machine permits; ConfigError when it cannot."""
    python = (shutil.which(config.python) or config.python) if config.python else sys.executable
    rc, out = await _capture(python, "-I", "-c", _PYTHON_INFO)
    if rc != 0:
        raise ConfigError(f"inline::code-interpreter: python: cannot run {python!r}: {out or f'exit code {rc}'}")
    prefix, base_prefix, executable = json.loads(out.splitlines()[-1])
    python_paths = {prefix, base_prefix, os.path.dirname(os.path.realpath(executable)),
                    os.path.dirname(os.path.realpath(python))}
    limits = Limits.from_config(config)

    if config.sandbox in ("auto", "bwrap"):
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            why = "the `bwrap` executable is not on PATH (Debian/Ubuntu: apt-get install bubblewrap)"
        else:
            candidate = Sandbox("bwrap", python, network_blocked=True, bwrap=bwrap,
                                read_only_paths=tuple(dict.fromkeys([*_SYSTEM_PATHS, *sorted(python_paths)])))
            why = await _probe(candidate, limits)
            if why is None:
                return candidate
        if config.sandbox == "bwrap":
            raise ConfigError(f"inline::code-interpreter: sandbox: bwrap: bubblewrap cannot be used here: {why}")
        log.warning("code-interpreter: bubblewrap unavailable (%s); using a subprocess with resource limits", why)

    if shutil.which(_UNSHARE[0]):
        candidate = Sandbox("subprocess", python, network_blocked=True, wrapper=_UNSHARE)
        why = await _probe(candidate, limits)
        if why is None:
            return candidate
    else:
        why = "the `unshare` executable is not on PATH"
    log.warning(
        "code-interpreter: runs in a plain subprocess WITHOUT network isolation (unshare not permitted: %s); "
        "see docs/providers/code-interpreter.md", why,
    )
    return Sandbox("subprocess", python, network_blocked=False)


async def _probe(sandbox: Sandbox, limits: Limits) -> str | None:
    """None when ``sandbox`` runs Python here, else why not."""
    result = await run(sandbox, "print('ok')", limits)
    if result.returncode == 0 and result.stdout.strip() == "ok":
        return None
    said = (result.stderr or result.stdout).strip().splitlines()
    return said[-1] if said else f"exit code {result.returncode}"


class _Capped:
    """A stream's bytes up to ``cap``; the rest is read and dropped so the writer never blocks."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = self.cap - len(self.data)
            if len(chunk) > room:
                self.truncated = True
            if room > 0:
                self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run(sandbox: Sandbox, code: str, limits: Limits, files: Path | None = None) -> RunResult:
    """Run ``code`` as ``main.py`` in a fresh working directory that is removed afterwards;
    ``files``: a folder it may read (see ``Sandbox.argv``)."""
    workdir = Path(tempfile.mkdtemp(prefix="polystack-code-"))
    started = time.monotonic()
    try:
        (workdir / "main.py").write_text(code, encoding="utf-8")
        argv, env = sandbox.argv(workdir, limits, files)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=workdir, env=env, start_new_session=True,
        )
        out, err = _Capped(limits.max_output_bytes), _Capped(limits.max_output_bytes)
        readers = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
        timed_out = False
        deadline = time.monotonic() + limits.timeout_seconds
        try:
            try:
                await asyncio.wait_for(asyncio.shield(readers), limits.timeout_seconds)
                # the pipes closed; a process that closed them itself still runs until the deadline
                await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                timed_out = True
            _kill_group(proc.pid)  # also ends what the code left running in the background
            try:
                # a process that left the group (setsid) may hold the pipes open: stop waiting for them
                await asyncio.wait_for(asyncio.gather(readers, proc.wait()), 2.0)
            except asyncio.TimeoutError:
                pass
        finally:
            _kill_group(proc.pid)
            readers.cancel()
        returncode = proc.returncode
        if (sandbox.mode == "bwrap" or sandbox.wrapper) and returncode is not None and 128 < returncode < 128 + 65:
            returncode = 128 - returncode  # PID 1 exits 128+N for a child killed by signal N, as a shell does
        return RunResult(returncode, out.text(), err.text(), timed_out=timed_out,
                         stdout_truncated=out.truncated, stderr_truncated=err.truncated,
                         seconds=time.monotonic() - started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
