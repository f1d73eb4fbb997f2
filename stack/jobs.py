"""Long-running work as jobs: state in the SQL store, the work off the event loop.

Every replica that shares the database sees every job and can cancel it. The
process that runs a job owns it: it records itself in ``job_owners`` with a
heartbeat, and a job whose owner died (a dead pid on this host, or a heartbeat
older than ``stale_after``) is marked ``interrupted`` when a runner starts.

    store = JobStore(sql)
    runner = JobRunner(store)
    await runner.start()
    job_id = await runner.submit("eval", run_eval, params={"task": "mmlu"})
    job = await store.get(job_id)      # status, progress, timings, result
    await runner.cancel(job_id)        # from any replica: store.request_cancel

A job that did not complete (interrupted by a crash or a shutdown, failed,
cancelled) can be run again from its parameters when its family said how:
``runner.on_restart("eval", rerun)``, then ``await runner.restart(job_id)``
(``POST /v1/jobs/{job_id}/restart``) submits a new job whose params name the
old one in ``restart_of``. The work starts over; nothing is resumed midway.

``run_eval(ctx)`` gets a ``JobContext``: ``ctx.params``, ``ctx.report(progress,
message)`` (raises ``JobCancelled`` once a cancel was asked), ``ctx.log(line)``
(kept in ``job_logs``, read back with ``store.log_lines``) and ``ctx.cancelled``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import multiprocessing
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import BadRequestError, ConflictError, NotFoundError, StackError
from .storage import ColumnType, SqlStore

log = logging.getLogger(__name__)

JOBS, OWNERS, LOGS = "jobs", "job_owners", "job_logs"


class JobStatus(str, Enum):
    scheduled = "scheduled"
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"


#: statuses a job never leaves
FINAL = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted})
#: final statuses whose work can be submitted again
RESTARTABLE = frozenset({JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted})


class Job(BaseModel):
    """A job as every replica sees it."""

    job_id: str
    kind: str = Field(description="What the job does, e.g. 'eval' or 'post_training'.")
    status: JobStatus
    params: dict[str, Any] = Field(default_factory=dict, description="The JSON the job was submitted with.")
    progress: float = Field(0.0, ge=0.0, le=1.0)
    message: str | None = Field(None, description="The latest progress message.")
    result: Any = Field(None, description="The work's JSON result once completed.")
    error: str | None = Field(None, description="Why the job failed or was interrupted.")
    scheduled_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = Field(None, description="When it reached a final status.")
    owner_id: str | None = Field(None, description="The process that runs it.")
    cancel_requested: bool = False


class JobCancelled(Exception):
    """Raised by ``JobContext.report`` once the job's cancel was requested."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _check_progress(progress: float) -> float:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be a number from 0 to 1, got {progress!r}")
    return float(progress)


class JobStore:
    """Jobs in a SQL store; every method is one statement, safe across replicas."""

    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    async def initialize(self) -> None:
        await self.sql.create_table(JOBS, {
            "job_id": ColumnType.TEXT, "kind": ColumnType.TEXT, "status": ColumnType.TEXT,
            "params": ColumnType.JSON, "progress": ColumnType.REAL, "message": ColumnType.TEXT,
            "result": ColumnType.JSON, "error": ColumnType.TEXT, "scheduled_at": ColumnType.TIMESTAMP,
            "started_at": ColumnType.TIMESTAMP, "completed_at": ColumnType.TIMESTAMP,
            "owner_id": ColumnType.TEXT, "cancel_requested": ColumnType.BOOLEAN,
        }, "job_id")
        await self.sql.create_table(OWNERS, {
            "owner_id": ColumnType.TEXT, "host": ColumnType.TEXT, "pid": ColumnType.INTEGER,
            "started_at": ColumnType.TIMESTAMP, "heartbeat_at": ColumnType.TIMESTAMP,
        }, "owner_id")
        await self.sql.create_table(LOGS, {
            "job_id": ColumnType.TEXT, "seq": ColumnType.INTEGER, "line": ColumnType.TEXT,
            "created_at": ColumnType.TIMESTAMP,
        }, ("job_id", "seq"))

    async def create(self, kind: str, params: dict[str, Any] | None = None, *, owner_id: str | None = None) -> Job:
        """A new job in status ``scheduled``."""
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        job = Job(job_id=f"job-{uuid.uuid4().hex}", kind=kind, status=JobStatus.scheduled,
                  params=params or {}, scheduled_at=_now(), owner_id=owner_id)
        row = job.model_dump(exclude={"result"})
        row["params"] = json.loads(json.dumps(job.params))  # not JSON: a TypeError now, not later
        row["status"] = job.status.value
        await self.sql.insert(JOBS, row)
        return job

    async def get(self, job_id: str) -> Job:
        row = await self.sql.fetch_one(JOBS, {"job_id": job_id})
        if row is None:
            raise NotFoundError("job", job_id)
        return Job.model_validate(row)

    async def list(self, kind: str | None = None, status: JobStatus | None = None,
                   limit: int | None = None, offset: int = 0, *, with_results: bool = True) -> list[Job]:
        """Jobs, newest first, of one kind and status when given (``with_results=False``: results left out)."""
        where: dict[str, Any] = {}
        if kind is not None:
            where["kind"] = kind
        if status is not None:
            where["status"] = JobStatus(status).value
        # a list showing progress leaves the results in the table: one can be megabytes
        columns = [name for name in Job.model_fields if with_results or name != "result"]
        rows = await self.sql.select(JOBS, columns=columns, where=where, limit=limit, offset=offset,
                                     order_by=[("scheduled_at", "desc"), ("job_id", "asc")])
        return [Job.model_validate(row) for row in rows]

    async def start(self, job_id: str) -> bool:
        """scheduled -> in_progress; False when it is no longer scheduled (cancelled)."""
        return await self._move(job_id, JobStatus.scheduled, JobStatus.in_progress, started_at=_now())

    async def update_progress(self, job_id: str, progress: float, message: str | None = None) -> bool:
        """Record progress of a running job; False when it is not running."""
        values = {"progress": _check_progress(progress), "message": message}
        return await self.sql.update(JOBS, values, {"job_id": job_id, "status": JobStatus.in_progress.value}) == 1

    async def add_log_lines(self, job_id: str, first_seq: int, lines: list[str]) -> None:
        """Append the work's log lines, numbered from ``first_seq`` (a retried write replaces, never doubles)."""
        now = _now()
        rows = [{"job_id": job_id, "seq": first_seq + i, "line": line, "created_at": now} for i, line in enumerate(lines)]
        await self.sql.upsert_many(LOGS, rows, ("job_id", "seq"))

    async def log_lines(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[str]:
        """The job's log lines from the ``offset``-th (0-based), at most ``limit`` of them."""
        end = None if limit is None or offset + limit > 2**62 else offset + limit  # SQL's LIMIT is 64-bit
        rows = await self.sql.fetch_all(LOGS, {"job_id": job_id}, order_by=[("seq", "asc")], limit=end)
        return [row["line"] for row in rows[offset:]]

    async def finish(self, job_id: str, result: Any = None) -> bool:
        """in_progress -> completed with ``result`` (JSON)."""
        result = json.loads(json.dumps(result))
        return await self._end(job_id, JobStatus.completed, result=result, progress=1.0)

    async def fail(self, job_id: str, error: str) -> bool:
        """in_progress -> failed with ``error``."""
        return await self._end(job_id, JobStatus.failed, error=error)

    async def mark_interrupted(self, job_id: str, reason: str) -> bool:
        """A running (or scheduled) job whose work was stopped by its server's shutdown."""
        for source in (JobStatus.in_progress, JobStatus.scheduled):
            if await self._end(job_id, JobStatus.interrupted, source=source, error=reason):
                return True
        return False

    async def mark_cancelled(self, job_id: str) -> bool:
        """in_progress -> cancelled, once its work stopped."""
        return await self._end(job_id, JobStatus.cancelled)

    async def request_cancel(self, job_id: str) -> Job:
        """Cancel a job: a scheduled one at once; a running one is flagged and
        its runner stops the work. A finished job stays as it is."""
        if not await self._end(job_id, JobStatus.cancelled, source=JobStatus.scheduled):
            await self.sql.update(JOBS, {"cancel_requested": True},
                                  {"job_id": job_id, "status": JobStatus.in_progress.value})
        return await self.get(job_id)

    # -- owners ------------------------------------------------------------

    async def register_owner(self, owner_id: str, host: str, pid: int) -> None:
        now = _now()
        await self.sql.upsert(OWNERS, {"owner_id": owner_id, "host": host, "pid": pid,
                                       "started_at": now, "heartbeat_at": now}, ["owner_id"])

    async def heartbeat(self, owner_id: str) -> None:
        await self.sql.update(OWNERS, {"heartbeat_at": _now()}, {"owner_id": owner_id})

    async def interrupt_orphans(self, *, host: str, alive_owner: str, stale_after: float) -> list[str]:
        """Mark interrupted every unfinished job whose owner is gone: a dead pid
        on ``host``, no owner row, or a heartbeat older than ``stale_after`` s."""
        # jobs before owners: a replica that starts in between registered itself before its first job
        unfinished = [(status, row) for status in (JobStatus.scheduled, JobStatus.in_progress)
                      for row in await self.sql.fetch_all(JOBS, {"status": status.value})]
        owners = {row["owner_id"]: row for row in await self.sql.fetch_all(OWNERS)}
        cutoff = _now() - timedelta(seconds=stale_after)
        interrupted = []
        for status, row in unfinished:
            owner = owners.get(row["owner_id"])
            if row["owner_id"] == alive_owner:
                continue
            if owner is None:
                why = "its process is unknown"
            elif owner["host"] == host and not _pid_alive(owner["pid"]):
                why = f"its process (pid {owner['pid']} on {host}) died"
            elif owner["heartbeat_at"] < cutoff:
                why = f"its process (pid {owner['pid']} on {owner['host']}) stopped heartbeating"
            else:
                continue
            if await self._end(row["job_id"], JobStatus.interrupted, source=status, error=f"interrupted: {why}"):
                interrupted.append(row["job_id"])
        return interrupted

    async def note_restart(self, job_id: str, restart_of: str) -> None:
        """Record in a new job's params which job it runs again."""
        job = await self.get(job_id)
        await self.sql.update(JOBS, {"params": {**job.params, "restart_of": restart_of}}, {"job_id": job_id})

    async def running_owned_by(self, owner_id: str) -> list[Job]:
        rows = await self.sql.fetch_all(JOBS, {"owner_id": owner_id, "status": JobStatus.in_progress.value})
        return [Job.model_validate(row) for row in rows]

    async def _move(self, job_id: str, source: JobStatus, target: JobStatus, **values: Any) -> bool:
        values["status"] = target.value
        return await self.sql.update(JOBS, values, {"job_id": job_id, "status": source.value}) == 1

    async def _end(self, job_id: str, target: JobStatus, *, source: JobStatus = JobStatus.in_progress,
                   **values: Any) -> bool:
        return await self._move(job_id, source, target, completed_at=_now(), **values)


class JobContext:
    """What the work sees of its job; ``report`` and ``cancelled`` are safe from any thread."""

    def __init__(self, job_id: str, kind: str, params: dict[str, Any], cancel_event: Any) -> None:
        self.job_id, self.kind, self.params = job_id, kind, params
        self._cancel = cancel_event
        #: set when the runner shuts down: the work stops as if cancelled, and is recorded interrupted
        self.interrupted = False
        self._lock = threading.Lock()
        self._latest: tuple[float, str | None] | None = None
        self._lines: list[str] = []
        self._logged = 0  # lines already written to the store

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested; the work should stop soon."""
        return self._cancel.is_set()

    def report(self, progress: float, message: str | None = None) -> None:
        """Record progress (0..1) and a message; raises ``JobCancelled`` once cancelled."""
        latest = (_check_progress(progress), message)
        self._publish(latest)
        if self.cancelled:
            raise JobCancelled(self.job_id)

    def log(self, line: str) -> None:
        """Add a line to the job's log (e.g. a training step's loss); every replica can read it."""
        self._append_line(str(line))

    def _publish(self, latest: tuple[float, str | None]) -> None:
        with self._lock:
            self._latest = latest

    def _append_line(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def _take(self) -> tuple[float, str | None] | None:
        """The progress reported since the last take (written by the runner)."""
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    def _take_lines(self) -> tuple[int, list[str]]:
        """The log lines added since the last take and the number of the first."""
        with self._lock:
            lines, self._lines = self._lines, []
            first, self._logged = self._logged, self._logged + len(lines)
        return first, lines


class _ChildContext(JobContext):
    """The context inside a worker process: progress goes up a pipe."""

    def __init__(self, job_id, kind, params, cancel_event, conn) -> None:
        super().__init__(job_id, kind, params, cancel_event)
        self._conn = conn

    def _publish(self, latest: tuple[float, str | None]) -> None:
        self._conn.send(("progress", latest))

    def _append_line(self, line: str) -> None:
        self._conn.send(("log", line))


def _die_with_parent(parent_pid: int) -> None:
    """A worker outlives a server killed with SIGKILL, training on and writing
    files for a job that is by then marked interrupted: on Linux, ask the
    kernel to kill it when the thread that started it (in the server) dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: the broken pipe ends it at its next report
        return
    if os.getppid() != parent_pid:  # the server died before the request took effect
        os._exit(1)


def _child_main(fn, job_id, kind, params, cancel_event, conn, parent_pid=None) -> None:
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    ctx = _ChildContext(job_id, kind, params, cancel_event, conn)
    try:
        conn.send(("result", fn(ctx)))
    except JobCancelled:
        conn.send(("cancelled", None))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


Mode = Literal["thread", "process"]


class JobRunner:
    """Runs jobs of one process and keeps their rows current.

    ``mode="thread"`` (default) runs ``fn(ctx)`` on a worker thread: for I/O-bound
    work and fan-out. ``mode="process"`` runs it in a fresh worker process (``fn``
    must be a picklable module-level function): for CPU-heavy work such as
    training; a cancelled process that does not stop within ``cancel_grace``
    seconds is terminated. An ``async def`` fn runs on the event loop.
    """

    def __init__(self, store: JobStore, *, max_threads: int = 8, max_processes: int = 1,
                 poll_interval: float = 0.5, heartbeat_interval: float = 5.0, stale_after: float = 30.0,
                 cancel_grace: float = 5.0) -> None:
        self.store = store
        self.host = socket.gethostname()
        self.owner_id = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.poll_interval, self.heartbeat_interval = poll_interval, heartbeat_interval
        self.stale_after, self.cancel_grace = stale_after, cancel_grace
        self._threads = ThreadPoolExecutor(max_threads, thread_name_prefix="polystack-job")
        self._processes = asyncio.Semaphore(max_processes)
        self._running: dict[str, JobContext] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._monitor: asyncio.Task | None = None
        self._restarters: dict[str, Callable[[Job], Any]] = {}

    async def start(self) -> list[str]:
        """Register this process, mark orphaned jobs interrupted (their ids are
        returned) and begin heartbeats, progress writes and cancel polls."""
        await self.store.initialize()
        await self.store.register_owner(self.owner_id, self.host, os.getpid())
        interrupted = await self.store.interrupt_orphans(
            host=self.host, alive_owner=self.owner_id, stale_after=self.stale_after)
        for job_id in interrupted:
            log.warning("job %s was interrupted: its process is gone", job_id)
        self._monitor = asyncio.create_task(self._watch(), name="polystack-jobs-monitor")
        return interrupted

    async def submit(self, kind: str, fn: Callable[[JobContext], Any], *,
                     params: dict[str, Any] | None = None, mode: Mode = "thread") -> str:
        """Create a job and run ``fn(ctx)``; returns the job id at once."""
        if self._monitor is None:
            raise RuntimeError("JobRunner.start() was not awaited")
        if mode not in ("thread", "process"):
            raise ValueError(f"mode must be 'thread' or 'process', got {mode!r}")
        job = await self.store.create(kind, params, owner_id=self.owner_id)
        event = multiprocessing.get_context("spawn").Event() if mode == "process" else threading.Event()
        ctx = JobContext(job.job_id, kind, job.params, event)
        self._running[job.job_id] = ctx
        self._tasks[job.job_id] = asyncio.create_task(self._run(ctx, fn, mode), name=f"job-{job.job_id}")
        return job.job_id

    def on_restart(self, kind: str, restarter: Callable[[Job], Any]) -> None:
        """``await restarter(job)`` submits the work of a finished, not completed
        ``job`` of ``kind`` again (from ``job.params``) and returns the new job id."""
        self._restarters[kind] = restarter

    async def restart(self, job_id: str) -> Job:
        """Run an interrupted, failed or cancelled job again, as a new job, on this replica."""
        job = await self.store.get(job_id)
        if job.status not in RESTARTABLE:
            raise ConflictError(f"job {job_id!r} is {job.status.value}; only an interrupted, failed or "
                                "cancelled job can be restarted")
        restarter = self._restarters.get(job.kind)
        if restarter is None:
            known = ", ".join(sorted(self._restarters)) or "none"
            raise BadRequestError(f"jobs of kind {job.kind!r} cannot be restarted on this server "
                                  f"(restartable kinds: {known}); submit it again", field="job_id")
        new_id = await restarter(job)
        await self.store.note_restart(new_id, job_id)
        return await self.store.get(new_id)

    async def cancel(self, job_id: str) -> Job:
        """Request the cancel (visible to every replica) and tell local work now."""
        job = await self.store.request_cancel(job_id)
        if job_id in self._running:
            self._running[job_id]._cancel.set()
        return job

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is final (polls, so it works for other replicas' jobs)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := await self.store.get(job_id)).status not in FINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status.value} after {timeout} s")
            await asyncio.sleep(min(0.05, self.poll_interval))
        return job

    async def shutdown(self) -> None:
        """Stop this process's running jobs (they end ``interrupted``: nobody
        cancelled them, the server stopped), wait up to ``cancel_grace``, stop."""
        for ctx in list(self._running.values()):
            ctx.interrupted = True
            ctx._cancel.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=self.cancel_grace + 1)
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- internals ---------------------------------------------------------

    async def _run(self, ctx: JobContext, fn: Callable, mode: Mode) -> None:
        job_id = ctx.job_id
        try:
            if mode == "process":
                async with self._processes:  # queued jobs stay scheduled
                    if await self.store.start(job_id):
                        outcome = await asyncio.get_running_loop().run_in_executor(
                            self._threads, self._in_process, ctx, fn)
                        await self._record(ctx, *outcome)
            elif await self.store.start(job_id):
                await self._record(ctx, *await self._in_thread(ctx, fn))
        except Exception:
            log.exception("job %s: could not record its outcome", job_id)
        finally:
            self._running.pop(job_id, None)
            self._tasks.pop(job_id, None)

    async def _in_thread(self, ctx: JobContext, fn: Callable) -> tuple[str, Any]:
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(ctx)
            else:
                result = await asyncio.get_running_loop().run_in_executor(self._threads, fn, ctx)
        except JobCancelled:
            return "cancelled", None
        except StackError as exc:  # raised on purpose (a bad input, a failing upstream): its message says it all
            log.warning("job %s (%s) failed: %s: %s", ctx.job_id, ctx.kind, type(exc).__name__, exc.message)
            return "error", f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            log.exception("job %s (%s) failed", ctx.job_id, ctx.kind)
            return "error", f"{type(exc).__name__}: {exc}"
        return "result", result

    def _in_process(self, ctx: JobContext, fn: Callable) -> tuple[str, Any]:
        """Run ``fn`` in a worker process; relay its progress; terminate it when
        it ignores a cancel for ``cancel_grace`` seconds. Runs on a thread."""
        mp = multiprocessing.get_context("spawn")
        parent, child = mp.Pipe(duplex=False)
        proc = mp.Process(target=_child_main, args=(fn, ctx.job_id, ctx.kind, ctx.params, ctx._cancel, child, os.getpid()),
                          name=f"polystack-job-{ctx.job_id}", daemon=True)
        proc.start()
        child.close()
        cancelled_at = None
        try:
            while True:
                if parent.poll(0.05):
                    try:
                        what, value = parent.recv()
                    except EOFError:
                        proc.join()
                        if cancelled_at is not None:
                            return "cancelled", None
                        return "error", f"worker process exited with code {proc.exitcode}"
                    if what == "progress":
                        JobContext._publish(ctx, value)
                        continue
                    if what == "log":
                        JobContext._append_line(ctx, value)
                        continue
                    return what, value
                if ctx.cancelled:
                    cancelled_at = cancelled_at or time.monotonic()
                    if time.monotonic() - cancelled_at > self.cancel_grace and proc.is_alive():
                        log.warning("job %s ignored its cancel for %s s: terminating", ctx.job_id, self.cancel_grace)
                        proc.terminate()
                        proc.join(2)
                        if proc.is_alive():
                            proc.kill()
                        return "cancelled", None
                if not proc.is_alive() and not parent.poll():
                    return ("cancelled", None) if cancelled_at else (
                        "error", f"worker process exited with code {proc.exitcode}")
        finally:
            parent.close()
            proc.join(5)

    async def _record(self, ctx: JobContext, what: str, value: Any) -> None:
        await self._flush(ctx)
        if what == "result":
            try:
                await self.store.finish(ctx.job_id, value)
            except (TypeError, ValueError) as exc:
                await self.store.fail(ctx.job_id, f"the result is not JSON: {exc}")
        elif ctx.interrupted:
            await self.store.mark_interrupted(ctx.job_id, "interrupted: the server shut down while it ran")
        elif what == "cancelled" or ctx.cancelled:
            await self.store.mark_cancelled(ctx.job_id)
        else:
            await self.store.fail(ctx.job_id, value)

    async def _flush(self, ctx: JobContext) -> None:
        first, lines = ctx._take_lines()
        if lines:
            await self.store.add_log_lines(ctx.job_id, first, lines)
        latest = ctx._take()
        if latest is not None:
            await self.store.update_progress(ctx.job_id, *latest)

    async def _watch(self) -> None:
        last_beat = last_orphan_check = time.monotonic()
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                for ctx in list(self._running.values()):
                    await self._flush(ctx)
                if self._running:  # cancels asked on other replicas
                    for job in await self.store.running_owned_by(self.owner_id):
                        if job.cancel_requested and job.job_id in self._running:
                            self._running[job.job_id]._cancel.set()
                if time.monotonic() - last_beat >= self.heartbeat_interval:
                    await self.store.heartbeat(self.owner_id)
                    last_beat = time.monotonic()
                # a replica that died (kill -9, a lost machine) leaves its jobs running on paper:
                # the survivors mark them interrupted, not only a runner that starts
                if time.monotonic() - last_orphan_check >= self.heartbeat_interval:
                    last_orphan_check = time.monotonic()
                    for job_id in await self.store.interrupt_orphans(
                            host=self.host, alive_owner=self.owner_id, stale_after=self.stale_after):
                        log.warning("job %s was interrupted: its process is gone", job_id)
            except Exception:  # the database may be away for a while; keep watching
                log.exception("job monitor: could not update the job store")
