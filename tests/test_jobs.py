"""Jobs on both SQL backends: lifecycle, replicas, cancel, interrupted processes."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from stack.errors import NotFoundError
from stack.jobs import FINAL, JobCancelled, JobRunner, JobStatus, JobStore
from stack.storage import sqlstore_from_config

FAST = dict(poll_interval=0.05, heartbeat_interval=0.2, cancel_grace=0.5)


@pytest.fixture
async def open_runner(store_config):
    """Opens runners (each its own store connection, like replicas); stops them after."""
    runners, stores = [], []

    async def open_(**options):
        stores.append(await sqlstore_from_config(store_config))
        runners.append(JobRunner(JobStore(stores[-1]), **{**FAST, **options}))
        await runners[-1].start()
        return runners[-1]

    yield open_
    for runner in runners:
        await runner.shutdown()
    for store in stores:
        await store.close()


async def until(predicate, timeout=10.0):
    """Poll an async predicate until it is truthy; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := await predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
    return value


def reports_until_cancelled(ctx):
    """Worker-process work that cooperates: reports every 50 ms."""
    step = 0
    while True:
        ctx.report(min(step / 1000, 1.0), f"step {step}")
        step += 1
        time.sleep(0.05)


def ignores_cancel(ctx):
    """Worker-process work that never looks at its cancel flag."""
    ctx.report(0.1, "sleeping")
    time.sleep(120)


def squares(ctx):
    ctx.report(0.5, "half")
    return {"squares": [n * n for n in range(ctx.params["n"])]}


def logs_lines(ctx):
    for n in range(ctx.params["n"]):
        ctx.log(f"line {n}")
    return None


async def test_progress_is_visible_while_running_then_result(open_runner):
    runner = await open_runner()
    release = threading.Event()

    def work(ctx):
        ctx.report(0.5, f"half of {ctx.params['n']}")
        release.wait(10)
        return {"n": ctx.params["n"]}

    job_id = await runner.submit("eval", work, params={"n": 4})
    running = await until(lambda: _progress_seen(runner.store, job_id))
    assert (running.status, running.progress, running.message) == (JobStatus.in_progress, 0.5, "half of 4")
    assert running.started_at is not None and running.completed_at is None
    release.set()
    done = await runner.wait(job_id, timeout=10)
    assert done.status is JobStatus.completed and done.result == {"n": 4} and done.progress == 1.0
    assert done.scheduled_at <= done.started_at <= done.completed_at
    assert [j.job_id for j in await runner.store.list(kind="eval")] == [job_id]
    assert await runner.store.list(kind="post_training") == []


async def _progress_seen(store, job_id):
    job = await store.get(job_id)
    return job if job.progress == 0.5 else None


async def test_failed_work_records_the_error(open_runner):
    runner = await open_runner()

    def work(ctx):
        raise RuntimeError("dataset is empty")

    job = await runner.wait(await runner.submit("eval", work), timeout=10)
    assert job.status is JobStatus.failed
    assert job.error == "RuntimeError: dataset is empty"
    assert job.completed_at is not None


async def test_async_work_runs_on_the_loop(open_runner):
    runner = await open_runner()

    async def work(ctx):
        ctx.report(0.3, "fan-out")
        await asyncio.sleep(0.01)
        return [1, 2]

    job = await runner.wait(await runner.submit("batch_inference", work), timeout=10)
    assert (job.status, job.result) == (JobStatus.completed, [1, 2])


async def test_a_replica_sees_and_cancels_a_thread_job(open_runner):
    a, b = await open_runner(), await open_runner()

    def work(ctx):
        while True:
            ctx.report(0.2, "working")  # raises JobCancelled once cancelled
            time.sleep(0.02)

    job_id = await a.submit("synthetic_data", work, params={"rows": 10})
    [listed] = await b.store.list(kind="synthetic_data")
    assert listed.job_id == job_id and listed.params == {"rows": 10} and listed.owner_id == a.owner_id
    await until(lambda: _progress_is(b.store, job_id, 0.2))
    started = time.monotonic()
    assert (await b.cancel(job_id)).cancel_requested  # b does not run it: only the flag
    job = await a.wait(job_id, timeout=5)
    assert job.status is JobStatus.cancelled and time.monotonic() - started < 3
    assert (await b.store.get(job_id)).status is JobStatus.cancelled


async def _progress_is(store, job_id, progress):
    return (await store.get(job_id)).progress == progress


@pytest.mark.parametrize("work", [reports_until_cancelled, ignores_cancel])
async def test_cancel_reaches_a_worker_process(open_runner, work):
    runner = await open_runner()
    job_id = await runner.submit("post_training", work, mode="process")
    running = await until(lambda: _progress_is_positive(runner.store, job_id), timeout=30)
    assert running.status is JobStatus.in_progress
    started = time.monotonic()
    await runner.cancel(job_id)
    job = await runner.wait(job_id, timeout=10)
    assert job.status is JobStatus.cancelled
    assert time.monotonic() - started < 5  # cooperative at once; ignored: terminated after the grace


async def _progress_is_positive(store, job_id):
    job = await store.get(job_id)
    return job if job.progress > 0 else None


async def test_process_job_result(open_runner):
    runner = await open_runner()
    job = await runner.wait(await runner.submit("eval", squares, params={"n": 4}, mode="process"), timeout=30)
    assert (job.status, job.result, job.message) == (JobStatus.completed, {"squares": [0, 1, 4, 9]}, "half")


@pytest.mark.parametrize("mode", ["thread", "process"])
async def test_log_lines_are_kept_in_order_and_paged(open_runner, mode):
    runner = await open_runner()
    job = await runner.wait(await runner.submit("eval", logs_lines, params={"n": 5}, mode=mode), timeout=30)
    assert job.status == JobStatus.completed
    assert await runner.store.log_lines(job.job_id) == [f"line {n}" for n in range(5)]
    assert await runner.store.log_lines(job.job_id, offset=3, limit=1) == ["line 3"]
    assert await runner.store.log_lines(job.job_id, offset=5) == []


KILLED_SERVER = """
import asyncio, json, sys, time
from stack.jobs import JobRunner, JobStore
from stack.storage import StoreConfig, sqlstore_from_config
from pydantic import TypeAdapter

def forever(ctx):
    ctx.report(0.25, "started")
    time.sleep(600)

async def main():
    config = TypeAdapter(StoreConfig).validate_python(json.loads(sys.argv[1]))
    runner = JobRunner(JobStore(await sqlstore_from_config(config)), poll_interval=0.05)
    await runner.start()
    if len(sys.argv) > 2:  # a worker process, which writes its pid to the file named
        from tests.test_jobs import sleeps_in_a_worker
        job_id = await runner.submit("post_training", sleeps_in_a_worker, params={"pid_file": sys.argv[2]}, mode="process")
    else:
        job_id = await runner.submit("post_training", forever)
    print(job_id, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_a_killed_process_leaves_its_job_interrupted(open_runner, store_config):
    config = json.dumps(store_config.model_dump(mode="json"))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SERVER, config], stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    try:
        job_id = (await asyncio.to_thread(proc.stdout.readline)).strip()
        assert job_id.startswith("job-"), job_id
        observer = await open_runner()
        await until(lambda: _progress_is(observer.store, job_id, 0.25), timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the replica still running notices (no restart needed): its monitor looks for orphans
    job = await until(lambda: _final(observer.store, job_id), timeout=10)
    assert job.status is JobStatus.interrupted
    assert f"pid {proc.pid}" in job.error and job.completed_at is not None


def sleeps_in_a_worker(ctx):
    with open(ctx.params["pid_file"], "w") as out:
        out.write(str(os.getpid()))
    ctx.report(0.25, "started")
    time.sleep(600)


async def test_a_killed_servers_worker_process_dies_with_it(open_runner, store_config, tmp_path):
    config = json.dumps(store_config.model_dump(mode="json"))
    pid_file = tmp_path / "worker.pid"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SERVER, config, str(pid_file)], stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    try:
        job_id = (await asyncio.to_thread(proc.stdout.readline)).strip()
        observer = await open_runner()
        await until(lambda: _progress_is(observer.store, job_id, 0.25), timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    worker = int(pid_file.read_text())
    # the worker would otherwise train on for a job its server no longer records
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived its killed server"
        await asyncio.sleep(0.05)
    assert (await until(lambda: _final(observer.store, job_id), timeout=10)).status is JobStatus.interrupted


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


async def _final(store, job_id):
    job = await store.get(job_id)
    return job if job.status in FINAL else None


def adds(ctx):
    return ctx.params["a"] + ctx.params["b"]


async def test_an_interrupted_job_is_restarted_with_its_params(open_runner):
    runner = await open_runner()
    old = await runner.store.create("sum", {"a": 2, "b": 3}, owner_id="gone-host:1:x")  # a dead replica's job
    await runner.store.start(old.job_id)
    await runner.store.mark_interrupted(old.job_id, "interrupted: its process died")

    async def rerun(job):
        return await runner.submit("sum", adds, params=job.params)

    runner.on_restart("sum", rerun)
    new = await runner.restart(old.job_id)
    assert new.job_id != old.job_id and new.params == {"a": 2, "b": 3, "restart_of": old.job_id}
    assert (await runner.wait(new.job_id, timeout=10)).result == 5
    assert (await runner.store.get(old.job_id)).status is JobStatus.interrupted  # history stays


async def test_restart_refuses_a_running_or_completed_job_and_an_unknown_kind(open_runner):
    from stack.errors import BadRequestError, ConflictError

    runner = await open_runner()
    runner.on_restart("sum", lambda job: runner.submit("sum", adds, params=job.params))
    done = await runner.wait(await runner.submit("sum", adds, params={"a": 1, "b": 1}), timeout=10)
    with pytest.raises(ConflictError, match="is completed; only an interrupted, failed or cancelled job"):
        await runner.restart(done.job_id)
    other = await runner.store.create("export")
    await runner.store.request_cancel(other.job_id)
    with pytest.raises(BadRequestError, match="job_id: jobs of kind 'export' cannot be restarted.*kinds: sum"):
        await runner.restart(other.job_id)
    with pytest.raises(NotFoundError):
        await runner.restart("job-nope")


async def test_stale_heartbeat_on_another_host_is_interrupted(store_config):
    async with await sqlstore_from_config(store_config) as sql:
        store = JobStore(sql)
        await store.initialize()
        for owner in ("gone-host:1:a", "live-host:1:b"):
            await store.register_owner(owner, owner.split(":")[0], 1)
        old = (await sql.fetch_one("job_owners", {"owner_id": "gone-host:1:a"}))["heartbeat_at"]
        await sql.update("job_owners", {"heartbeat_at": old - timedelta(minutes=5)}, {"owner_id": "gone-host:1:a"})
        gone = await store.create("eval", owner_id="gone-host:1:a")
        await store.start(gone.job_id)
        live = await store.create("eval", owner_id="live-host:1:b")
        await store.start(live.job_id)
        runner = JobRunner(store, stale_after=60)
        assert await runner.start() == [gone.job_id]
        await runner.shutdown()
        assert (await store.get(gone.job_id)).error.startswith("interrupted: its process (pid 1 on gone-host)")
        assert (await store.get(live.job_id)).status is JobStatus.in_progress


async def test_store_transitions_and_bad_input(store_config):
    async with await sqlstore_from_config(store_config) as sql:
        store = JobStore(sql)
        await store.initialize()
        job = await store.create("eval", {"a": 1})
        cancelled = await store.request_cancel(job.job_id)  # never started: cancelled at once
        assert cancelled.status is JobStatus.cancelled and cancelled.completed_at is not None
        assert not await store.start(job.job_id)
        assert not await store.finish(job.job_id, {"late": True})
        assert (await store.request_cancel(job.job_id)).status is JobStatus.cancelled
        other = await store.create("eval")
        await store.start(other.job_id)
        with pytest.raises(ValueError, match="progress must be a number from 0 to 1"):
            await store.update_progress(other.job_id, 1.5)
        with pytest.raises(NotFoundError, match="job 'nope' not found"):
            await store.get("nope")
        with pytest.raises(TypeError):
            await store.create("eval", {"x": object()})
        assert [j.job_id for j in await store.list(status=JobStatus.in_progress)] == [other.job_id]


def test_report_raises_once_cancelled():
    from stack.jobs import JobContext

    event = threading.Event()
    ctx = JobContext("job-1", "eval", {}, event)
    ctx.report(0.1)
    event.set()
    assert ctx.cancelled
    with pytest.raises(JobCancelled):
        ctx.report(0.2)
    with pytest.raises(ValueError):
        ctx.report(-0.1)


@pytest.mark.parametrize("mode", ["thread", "process"])
async def test_a_server_shutdown_interrupts_its_running_jobs(open_runner, mode):
    runner = await open_runner()
    job_id = await runner.submit("eval", reports_until_cancelled, mode=mode)
    await until(lambda: runner.store.get(job_id), timeout=10)
    await until(lambda: _running(runner, job_id))
    await runner.shutdown()
    job = await runner.store.get(job_id)
    assert job.status is JobStatus.interrupted
    assert job.error == "interrupted: the server shut down while it ran"


async def _running(runner, job_id):
    return (await runner.store.get(job_id)).status is JobStatus.in_progress
