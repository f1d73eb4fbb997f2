"""The span writer keeps its threads off the CPU the server last ran on, within the CPUs it inherited;
with one CPU allowed it stays. Affinity is changed in child processes only (never pytest's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from providers.inline.telemetry.meta_reference.placement import last_cpu

#: the repository root: the children import the package from there
ROOT = Path(__file__).resolve().parents[4]
needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to move between")


def _python(code: str, *, name: str | None = None, tmp_path=None) -> subprocess.Popen:
    executable = sys.executable
    if name is not None:  # a symlink: the kernel names the process after it (its "comm")
        executable = str(tmp_path / name)
        os.symlink(sys.executable, executable)
    return subprocess.Popen([executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)


def test_last_cpu_reads_the_cpu_of_a_process_whose_name_has_spaces_and_parentheses(tmp_path):
    proc = _python("""
        import os, time
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        print(max(os.sched_getaffinity(0)), flush=True)
        time.sleep(30)
    """, name="w) (x y", tmp_path=tmp_path)
    try:
        cpu = int(proc.stdout.readline())
        assert open(f"/proc/{proc.pid}/comm").read().strip() == "w) (x y"
        assert last_cpu(proc.pid) == cpu
    finally:
        proc.kill()
        proc.wait()


def test_last_cpu_of_a_process_that_is_gone_is_none():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert last_cpu(int(proc.stdout)) is None


_MOVER = """
    import json, os, threading, time
    from providers.inline.telemetry.meta_reference.placement import AwayFromServer
    allowed = sorted(os.sched_getaffinity(0))
    if {one_cpu}:
        os.sched_setaffinity(0, {{allowed[0]}})
    # a thread started before the move (the store's) moves too
    started = threading.Event()
    thread = threading.Thread(target=lambda: (started.set(), time.sleep(5)), daemon=True)
    thread.start()
    started.wait()
    away = AwayFromServer({server})
    cpus = away.step()
    masks = sorted({{tuple(sorted(os.sched_getaffinity(int(tid)))) for tid in os.listdir("/proc/self/task")}})
    print(json.dumps([away.active, sorted(cpus), masks]), flush=True)
"""


def _pinned_server(cpu: int) -> subprocess.Popen:
    """A stand-in for the server: a process that spins on ``cpu`` (so it last ran there)."""
    return _python(f"""
        import os
        os.sched_setaffinity(0, {{{cpu}}})
        print("ready", flush=True)
        while True:
            pass
    """)


def _step_beside_a_server(*, one_cpu: bool) -> tuple[bool, list[int], list[list[int]]]:
    """A server spinning on the first CPU; a child that steps once: (active, its CPUs, its threads' masks)."""
    server = _pinned_server(sorted(os.sched_getaffinity(0))[0])
    try:
        assert server.stdout.readline().strip() == "ready"
        out, _ = _python(_MOVER.format(one_cpu=one_cpu, server=server.pid)).communicate(timeout=30)
    finally:
        server.kill()
        server.wait()
    return tuple(json.loads(out))


@needs_two_cpus
def test_the_writer_leaves_the_servers_cpu_with_every_thread():
    cpus = sorted(os.sched_getaffinity(0))
    active, moved_to, masks = _step_beside_a_server(one_cpu=False)
    assert active is True
    assert moved_to == cpus[1:]
    assert masks == [cpus[1:]]  # the main thread and the one started before: one mask


@needs_two_cpus
def test_a_writer_allowed_one_cpu_stays_on_it_beside_the_server():
    cpus = sorted(os.sched_getaffinity(0))
    active, moved_to, masks = _step_beside_a_server(one_cpu=True)
    assert active is False
    assert moved_to == cpus[:1]
    assert masks == [cpus[:1]]
