"""Keeping the span writer process off the CPU the server's event loop runs on.

Linux places a woken task near the task that woke it, and the server wakes the writer with every
group it sends: left alone, the writer runs on the server's CPU while another sits idle. Under
``SCHED_IDLE`` it should only take time nothing else wants, but kernels do let an idle-class task
run for milliseconds while a normal one waits (measured here: 5-12 ms stretches, the server
waiting as long; docs/performance.md). So before each group the writer narrows its CPUs to those
it may use (the mask it inherited: an operator's ``taskset`` or cpuset still holds) less the one
the server last ran on. With one CPU allowed there is nothing to narrow, and nothing is done.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

#: the "processor" field of /proc/PID/stat (the CPU the task last ran on), counted after the
#: closing parenthesis of the command name, whose text may hold spaces or parentheses
_PROCESSOR = 36


def last_cpu(pid: int) -> int | None:
    """The CPU ``pid``'s main thread last ran on; None where that cannot be read (no /proc, gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[_PROCESSOR])
    except (IndexError, ValueError):
        return None


class AwayFromServer:
    """Moves every thread of this process off the CPU the server (``server_pid``) last ran on."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        try:
            self.allowed = frozenset(os.sched_getaffinity(0))
        except AttributeError:  # no affinity calls (not Linux): nothing to do
            self.allowed = frozenset()
        self.current = self.allowed

    @property
    def active(self) -> bool:
        return len(self.allowed) > 1

    def step(self) -> frozenset[int]:
        """Narrow (or widen back) this process's CPUs for the server's CPU now; the CPUs it may use."""
        if not self.active:
            return self.current
        cpu = last_cpu(self.server_pid)
        wanted = self.allowed - {cpu} if cpu is not None else self.allowed
        if wanted != self.current:
            try:
                for_each_thread(lambda tid: os.sched_setaffinity(tid, wanted))
            except OSError:  # a CPU taken away since (the cpuset changed): stay where the kernel put us
                self.allowed = frozenset()
                return self.current
            self.current = wanted
        return self.current


def for_each_thread(apply: Callable[[int], object]) -> None:
    """``apply(tid)`` for every thread of this process (affinity, scheduling policy and nice are per
    thread on Linux); a thread that ends meanwhile is skipped."""
    try:
        tids = [int(tid) for tid in os.listdir("/proc/self/task")]
    except FileNotFoundError:  # no /proc: the calling thread
        tids = [0]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):
            apply(tid)
