"""inline::code-interpreter: real runs in each sandbox this machine offers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time

import pytest

from pathlib import Path

from providers.inline.tool_runtime.code_interpreter import _sandbox, create, register_providers
from providers.inline.tool_runtime.code_interpreter.config import CodeInterpreterConfig
from stack.errors import BadRequestError, ConfigError, NotFoundError
from stack.registry import ProviderContext
from stack.request_context import tool_files

MODES = [
    pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None,
                                                   reason="bubblewrap not installed (apt-get install bubblewrap)")),
    "subprocess",
]


def _context() -> ProviderContext:
    specs = []
    register_providers(specs.append)
    return ProviderContext(provider_id="code-interpreter", spec=specs[0], image_name="test", data_dir=Path("."))


async def make(mode: str, **config):
    runtime = await create(CodeInterpreterConfig(sandbox=mode, **config), _context())
    await runtime.ready()
    return runtime


@pytest.fixture(params=MODES)
async def runtime(request):
    return await make(request.param, timeout_seconds=5)


async def run(runtime, code: str):
    return await runtime.invoke_tool(tool_name="code_interpreter", kwargs={"code": code})


async def test_lists_one_tool_with_a_required_code_string(runtime):
    (tool,) = await runtime.list_runtime_tools(tool_group_id="builtin::code_interpreter")
    assert tool.name == "code_interpreter"
    assert [(p.name, p.parameter_type, p.required) for p in tool.parameters] == [("code", "string", True)]
    assert tool.metadata["sandbox"] == runtime.sandbox.mode


async def test_stdout(runtime):
    result = await run(runtime, "print('hello', 6 * 7)")
    assert result.content == "completed\n[stdout]\nhello 42\n[/stdout]"
    assert result.error_code is None and result.error_message is None


async def test_stderr_and_exception_traceback(runtime):
    result = await run(runtime, "import sys\nprint('warned', file=sys.stderr)\nprint('before')\n1 / 0\n")
    assert result.error_code == 1
    assert result.error_message == "exit code 1: ZeroDivisionError: division by zero"
    assert "[stdout]\nbefore\n[/stdout]" in result.content
    assert "[stderr]\nwarned\nTraceback (most recent call last):" in result.content
    assert 'main.py", line 4, in <module>' in result.content


async def test_exit_code(runtime):
    result = await run(runtime, "import sys; sys.exit(3)")
    assert result.error_code == 3
    assert result.error_message == "exit code 3"


async def test_timeout_kills_the_process_group():
    runtime = await make("auto", timeout_seconds=1)
    started = time.monotonic()
    # a background child too: it must die with the run, not outlive it
    result = await run(runtime, "import subprocess, time\n"
                                "subprocess.Popen(['sleep', '60'])\n"
                                "print('started', flush=True)\n"
                                "time.sleep(60)\n")
    assert time.monotonic() - started < 5
    assert result.error_code == 124
    assert result.error_message == "timed out after 1s (the run was killed)"
    assert "[stdout]\nstarted\n[/stdout]" in result.content


@pytest.mark.parametrize("mode", MODES)
async def test_cpu_time_limit(mode):
    runtime = await make(mode, cpu_seconds=1, timeout_seconds=20)
    started = time.monotonic()
    result = await run(runtime, "while True:\n    pass\n")
    assert time.monotonic() - started < 10
    assert result.error_message == "killed: CPU time limit of 1s exceeded"
    assert result.error_code == 128 + 24  # SIGXCPU


@pytest.mark.parametrize("mode", MODES)
async def test_memory_limit(mode):
    runtime = await make(mode, memory_mb=256)
    result = await run(runtime, "block = bytearray(1024 ** 3)\nprint('allocated')")
    assert result.error_code == 1
    assert "MemoryError" in result.error_message and "256 MiB" in result.error_message
    assert "allocated" not in result.content


async def test_no_network(runtime):
    if not runtime.sandbox.network_blocked:
        pytest.skip("neither bwrap nor unshare is permitted here: the subprocess fallback keeps the network")
    with socket.socket() as listener:  # a server the sandboxed code must not reach
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = await run(runtime, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                                    "print('connected')")
    assert result.error_code == 1
    assert "connected" not in result.content
    assert "ConnectionRefusedError" in result.error_message or "OSError" in result.error_message


async def test_working_directory_is_fresh_and_removed(runtime, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = await run(runtime, "import os\nprint(sorted(os.listdir('.')))\nopen('left.txt', 'w').write('x')")
    second = await run(runtime, "import os\nprint(sorted(os.listdir('.')))")
    assert "['main.py']" in first.content and "['main.py']" in second.content
    assert list(tmp_path.iterdir()) == []


async def test_a_session_folder_is_readable_only_when_given_and_only_for_reading(runtime, tmp_path):
    folder = tmp_path / "session-files"
    folder.mkdir()
    (folder / "data.csv").write_text("city,temp\nParis,21\n")
    (tmp_path / "other.txt").write_text("not yours")
    code = (f"print(open({str(folder / 'data.csv')!r}).read())\n"
            f"try:\n    open({str(folder / 'new.txt')!r}, 'w')\nexcept OSError as e:\n    print('write refused', type(e).__name__)\n")
    with tool_files(folder):
        given = await run(runtime, code)
    assert "Paris,21" in given.content
    if runtime.sandbox.mode == "bwrap":
        assert "write refused" in given.content and not (folder / "new.txt").exists()
        # only that folder: its neighbours stay out of the sandbox, and without it nothing is there
        with tool_files(folder):
            other = await run(runtime, f"print(open({str(tmp_path / 'other.txt')!r}).read())")
        assert "not yours" not in other.content and "FileNotFoundError" in other.content
        alone = await run(runtime, f"print(open({str(folder / 'data.csv')!r}).read())")
        assert "Paris,21" not in alone.content and "FileNotFoundError" in alone.content


async def test_environment_has_no_secrets(runtime, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    monkeypatch.setenv("POLYSTACK_SECRET", "hush")
    result = await run(runtime, "import os\nprint(sorted(os.environ))\nprint(repr(os.environ.get('OPENAI_API_KEY')))")
    assert "OPENAI_API_KEY" not in result.content and "POLYSTACK_SECRET" not in result.content
    assert "sk-do-not-leak" not in result.content
    assert "'PATH'" in result.content


async def test_output_is_capped(runtime):
    runtime = await make(runtime.sandbox.mode, max_output_bytes=1024)
    result = await run(runtime, "print('x' * 100_000)")
    assert result.error_code is None
    assert "x" * 1024 in result.content and "x" * 1025 not in result.content
    assert "(stdout truncated at 1024 bytes)" in result.content


async def test_concurrent_runs_do_not_block_the_event_loop(runtime):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    results = await asyncio.gather(*(run(runtime, f"import time\ntime.sleep(1)\nprint({i})") for i in range(4)))
    elapsed = time.monotonic() - started
    tick_task.cancel()
    assert [r.content for r in results] == [f"completed\n[stdout]\n{i}\n[/stdout]" for i in range(4)]
    assert elapsed < 3  # four 1 s runs side by side, not one after another
    assert ticks >= 10


async def test_unknown_tool_and_bad_arguments(runtime):
    with pytest.raises(NotFoundError, match="'web_search' not found"):
        await runtime.invoke_tool(tool_name="web_search", kwargs={"query": "x"})
    with pytest.raises(BadRequestError) as info:
        await runtime.invoke_tool(tool_name="code_interpreter", kwargs={"source": "print(1)"})
    assert info.value.field == "kwargs.code"


async def test_required_bwrap_missing_fails_at_start_up(monkeypatch):
    monkeypatch.setattr(_sandbox.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="bwrap.*apt-get install bubblewrap"):
        await make("bwrap")
    # auto falls back to a plain subprocess, which then cannot block the network
    runtime = await make("auto")
    assert runtime.sandbox.describe() == {"sandbox": "subprocess", "network": "not blocked"}
    assert (await run(runtime, "print('still runs')")).error_code is None


async def test_a_python_that_does_not_run_fails_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match="python: cannot run"):
        await make("subprocess", python=str(tmp_path / "no-such-python"))


async def test_auto_picks_bwrap_when_it_works():
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed")
    runtime = await make("auto")
    assert runtime.sandbox.describe() == {"sandbox": "bwrap", "network": "blocked"}
    # the host's files outside the interpreter's own folders are not visible
    result = await run(runtime, f"import os\nprint(os.path.exists({os.getcwd()!r} + '/pyproject.toml'))")
    assert "False" in result.content


async def test_auto_finds_its_sandbox_while_the_server_starts():
    runtime = await create(CodeInterpreterConfig(), _context())
    with pytest.raises(RuntimeError, match="still being found"):  # start-up did not wait for the probes
        runtime.sandbox
    [tool] = await runtime.list_runtime_tools()  # waits for them
    assert tool.metadata == runtime.sandbox.describe()
    assert (await run(runtime, "print(6 * 7)")).content == "completed\n[stdout]\n42\n[/stdout]"


async def test_shutdown_while_the_sandbox_is_being_found():
    runtime = await create(CodeInterpreterConfig(), _context())
    await runtime.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await runtime.ready()
