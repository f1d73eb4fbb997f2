"""The span writer process: batches queued at once and logged by a child at idle priority, in
order; the log folded into rows when a read waits (a sync waits for what was queued before it),
when the server is idle, when the log passes its size, and by the next child when one left it;
a full backlog drops its oldest batches (counted); what was queued written at shutdown; a child
that dies replaced (its group counted lost); one that cannot start replaced by writing in-process."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from providers.inline.telemetry.meta_reference import span_writer
from providers.inline.telemetry.meta_reference.sinks import SpanStoreSink
from providers.inline.telemetry.meta_reference.span_writer import SpanWriterProcess
from providers.inline.telemetry.meta_reference.span_log import LOG_TABLE, ROWS_PER_WRITE, SpanLog
from stack import _spancore, tracing
from stack.storage import SqliteStoreConfig, sqlstore_from_config
from stack.tracing import SpanTuple
from tests.support import app_from_yaml


def _root(trace_id: str, **attributes) -> SpanTuple:
    return (trace_id, trace_id[:16], None, "POST /v1/chat/completions", 1, 2, "ok", True,
                        attributes, ("gen_ai.metrics",), None)


def _stats(sink: SpanStoreSink) -> dict:
    return {k: v for k, v in sink.stats().items() if k in ("span_writer_backlog_spans", "span_writer_dropped",
                                                             "span_writer_lost")}


async def _eventually(check, timeout: float = 30.0):
    """Poll the async ``check`` until it is true (the child works on its own time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


@pytest.fixture
def config(tmp_path):
    return SqliteStoreConfig(db_path=str(tmp_path / "spans.db"))


async def _sink(config, **writer_options) -> SpanStoreSink:
    sink = SpanStoreSink(await sqlstore_from_config(config),
                         writer=SpanWriterProcess(config.model_dump(mode="json"), **writer_options))
    await sink.initialize()
    return sink


async def test_a_batch_sent_before_the_child_is_ready_is_stored_once_synced(config):
    sink = await _sink(config)
    try:
        assert sink.writer.pid is not None and sink.writer.pid != os.getpid()
        await sink.export([_root("a" * 32, model="m")], [])  # no wait for the child's start-up
        await sink.sync()
        [span] = await sink.trace("a" * 32)
        assert span["attributes"] == {"model": "m"}
        assert sink.writer is not None, "still the child's to write"
    finally:
        await sink.close()


async def test_export_returns_before_the_child_writes_and_a_sync_waits_for_it(config):
    sink = await _sink(config)
    try:
        assert await sink.writer.wait_ready()
        os.kill(sink.writer.pid, signal.SIGSTOP)  # a child that gets no CPU (busy cores, SCHED_IDLE)
        for i in range(3):
            await sink.export([_root(f"{i:032x}")], [])  # returns: queued, not written
        assert _stats(sink) == {"span_writer_backlog_spans": 3, "span_writer_dropped": 0, "span_writer_lost": 0}
        syncing = asyncio.ensure_future(sink.sync())
        await asyncio.sleep(0.05)
        assert not syncing.done() and await sink.trace(f"{0:032x}") == []
        os.kill(sink.writer.pid, signal.SIGCONT)
        await syncing
        assert [len(await sink.trace(f"{i:032x}")) for i in range(3)] == [1, 1, 1]
        assert _stats(sink)["span_writer_backlog_spans"] == 0
    finally:
        await sink.close()


async def test_a_sync_gives_up_after_read_wait_and_reads_answer_from_what_is_stored(config, caplog):
    sink = await _sink(config)
    sink.read_wait = 0.2
    try:
        assert await sink.writer.wait_ready()
        os.kill(sink.writer.pid, signal.SIGSTOP)  # starved for as long as the load lasts
        await sink.export([_root("d" * 32)], [])
        await sink.sync()  # returns after read_wait, the batch still queued
        assert await sink.trace("d" * 32) == []
        assert "still had 1 spans to store and 0 to fold after 0.2 s" in caplog.text
        os.kill(sink.writer.pid, signal.SIGCONT)
        sink.read_wait = 30
        await sink.sync()
        assert len(await sink.trace("d" * 32)) == 1
    finally:
        await sink.close()


async def test_batches_are_written_in_the_order_they_were_queued(config):
    sink = await _sink(config)
    try:
        # the same span three times (one chunk row): each batch replaces the last one's row
        for version in range(3):
            await sink.export([_root("f" * 32, version=version)], [])
        await sink.sync()
        [span] = await sink.trace("f" * 32)
        assert span["attributes"] == {"version": 2}
    finally:
        await sink.close()


async def test_a_full_backlog_drops_its_oldest_batches_and_counts_their_spans(config):
    batches = [[_root(f"{i:031x}{j}") for j in range(2)] for i in range(5)]  # 2 spans each, same size
    size = len(_spancore.encode(batches[0]))
    sink = SpanStoreSink(await sqlstore_from_config(config), writer=SpanWriterProcess(
        config.model_dump(mode="json"), backlog_bytes=size * 2 + size // 2))  # room for two
    await sink.initialize()
    try:
        for batch in batches:  # queued one after the other, before the child takes any
            await sink.export(batch, [])
        assert _stats(sink) == {"span_writer_backlog_spans": 4, "span_writer_dropped": 6, "span_writer_lost": 0}
        await sink.sync()
        stored = [i for i in range(5) if await sink.trace(f"{i:031x}0")]
        assert stored == [3, 4]
        assert _stats(sink) == {"span_writer_backlog_spans": 0, "span_writer_dropped": 6, "span_writer_lost": 0}
    finally:
        await sink.close()


async def test_shutdown_writes_the_backlog_the_child_had_not_written(config):
    sink = await _sink(config)
    assert await sink.writer.wait_ready()
    child = sink.writer._child.proc
    os.kill(child.pid, signal.SIGSTOP)
    for i in range(4):
        await sink.export([_root(f"{i:032x}")], [])
    closing = asyncio.ensure_future(sink.close())
    await asyncio.sleep(0.05)
    os.kill(child.pid, signal.SIGCONT)
    await closing
    assert child.returncode == 0
    store = await sqlstore_from_config(config)
    try:
        assert len(await store.fetch_all("span_chunks")) == 4
    finally:
        await store.close()


async def test_shutdown_writes_what_the_collector_buffered_and_the_child_exits(config):
    sink = await _sink(config)
    collector = tracing.Collector([sink], interval=3600)
    collector.start()
    for i in range(3):
        collector.add_span(tracing.SpanRecord.new(f"{i:032x}", f"{i:016x}", None, "request", 1, 2, root=True))
    child = sink.writer._child.proc
    await collector.close()
    assert child.returncode == 0
    store = await sqlstore_from_config(config)
    try:
        assert len(await store.fetch_all("span_chunks")) == 3
    finally:
        await store.close()


async def test_a_child_killed_mid_write_loses_that_group_counted_and_a_new_one_writes_the_rest(config, caplog):
    sink = await _sink(config)
    collector = tracing.Collector([sink], interval=3600)
    collector.start()
    try:
        assert await sink.writer.wait_ready()
        first = sink.writer.pid
        os.kill(first, signal.SIGSTOP)  # it cannot ack: the group is in flight when it dies
        collector.add_span(tracing.SpanRecord.new("b" * 32, "b" * 16, None, "lost", 1, 2, root=True))
        await collector.flush()  # queued: the flush does not wait for the child
        syncing = asyncio.ensure_future(sink.sync())
        await asyncio.sleep(0.05)
        assert not syncing.done()
        os.kill(first, signal.SIGKILL)
        await syncing  # a read does not hang on a dead child
        assert collector.failed_batches == 0 and "exited with code -9 while writing" in caplog.text
        await sink.export([_root("c" * 32)], [])
        await sink.sync()
        assert sink.writer.pid not in (None, first) and sink.writer.restarts == 1
        assert _stats(sink) == {"span_writer_backlog_spans": 0, "span_writer_dropped": 0, "span_writer_lost": 1}
        assert await sink.trace("b" * 32) == []
        assert [s["name"] for s in await sink.trace("c" * 32)] == ["POST /v1/chat/completions"]
    finally:
        await collector.close()


@pytest.mark.parametrize("command", [
    ["/nonexistent/python"],  # cannot be run at all
    [sys.executable, "-c", "import sys; sys.exit(3)"],  # runs, and exits before it is ready
])
async def test_a_child_that_cannot_start_leaves_the_writing_to_the_server(config, command, caplog):
    caplog.set_level(logging.WARNING)
    sink = await _sink(config, command=command)
    try:
        await sink.export([_root("d" * 32)], [])
        await sink.sync()
        assert sink.writer is None
        assert "writing spans in the server process instead" in caplog.text
        assert len(await sink.trace("d" * 32)) == 1, "the batch it never wrote is written here"
    finally:
        await sink.close()


async def test_a_store_the_child_cannot_open_is_reported_with_its_reason(config, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    sink = SpanStoreSink(await sqlstore_from_config(config), writer=SpanWriterProcess(
        SqliteStoreConfig(db_path=str(blocked / "spans.db")).model_dump(mode="json")))
    await sink.initialize()
    try:
        assert not await sink.writer.wait_ready()
        await sink.export([_root("e" * 32)], [])
        assert "StorageError: cannot open SQLite database" in caplog.text
        assert len(await sink.trace("e" * 32)) == 1
    finally:
        await sink.close()


class Colour(str, enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "opaque thing"


async def test_values_the_encoding_has_no_tag_for_are_stored_as_their_text(config):
    sink = await _sink(config)
    try:
        # a str subclass (its value, as JSON writes it) and an object marshal cannot write (its str())
        await sink.export([_root("f" * 32, colour=Colour.RED, thing=Opaque())], [])
        await sink.sync()
        [span] = await sink.trace("f" * 32)
        assert span["attributes"] == {"colour": "red", "thing": "opaque thing"}
        assert sink.writer is not None, "later batches still go to the child"
    finally:
        await sink.close()


async def test_a_large_batch_is_encoded_and_queued_in_parts(config, monkeypatch):
    monkeypatch.setattr(span_writer, "ENCODE_SPANS", 2)
    sink = await _sink(config)
    try:
        assert await sink.writer.wait_ready()
        os.kill(sink.writer.pid, signal.SIGSTOP)  # what is queued stays visible in the backlog
        await sink.export([_root(f"{i:032x}") for i in range(5)], [])
        assert _stats(sink)["span_writer_backlog_spans"] == 5  # queued or handed to the stopped child
        assert sink.writer._queued == 3
        os.kill(sink.writer.pid, signal.SIGCONT)
        await sink.sync()
        assert [len(await sink.trace(f"{i:032x}")) for i in range(5)] == [1, 1, 1, 1, 1]
    finally:
        await sink.close()


async def test_a_child_that_does_not_exit_at_shutdown_is_killed(config, caplog):
    sink = await _sink(config, close_timeout=0.2)
    assert await sink.writer.wait_ready()
    child = sink.writer._child.proc
    os.kill(child.pid, signal.SIGSTOP)  # it can no longer read its input's end
    await sink.close()
    assert child.returncode == -signal.SIGKILL
    assert "did not exit within" in caplog.text


async def test_the_child_and_its_threads_write_at_idle_priority(config):
    sink = await _sink(config)
    try:
        assert await sink.writer.wait_ready()
        pid = sink.writer.pid
        threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        assert len(threads) > 1, "the store's writer thread runs beside the main one"
        assert {os.sched_getscheduler(tid) for tid in threads} == {os.SCHED_IDLE}
    finally:
        await sink.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to move between")
async def test_the_child_writes_a_group_off_one_of_the_cpus_the_server_may_use(config):
    allowed = os.sched_getaffinity(0)
    sink = await _sink(config)
    try:
        assert await sink.writer.wait_ready()
        await sink.export([_root("e" * 32)], [])
        await sink.sync()  # the child has stepped off the CPU this process last ran on
        pid = sink.writer.pid
        masks = {frozenset(os.sched_getaffinity(int(tid))) for tid in os.listdir(f"/proc/{pid}/task")}
        [mask] = masks  # every thread of it alike
        assert mask < allowed and len(mask) == len(allowed) - 1
    finally:
        await sink.close()


@pytest.mark.parametrize("value", [0, -1, 5000, "lots"])
def test_a_backlog_limit_out_of_range_names_the_key(tmp_path, value):
    with pytest.raises(Exception, match="span_writer_backlog_mb"):
        app_from_yaml(tmp_path, f"""\
            version: '2'
            image_name: t
            apis: [telemetry]
            providers:
              telemetry:
              - provider_id: meta-reference
                provider_type: inline::meta-reference
                config: {{sinks: [sqlite], span_writer_backlog_mb: {value}}}
            """)


PRIORITY_PROBE = """
import os, threading
from providers.inline.telemetry.meta_reference.span_writer_child import Priority, lowest_priority
threading.Thread(target=threading.Event().wait, daemon=True).start()  # as the store's thread
priority = Priority(lowest_priority())
def policies():
    return sorted({os.sched_getscheduler(int(tid)) for tid in os.listdir("/proc/self/task")})
before = policies()
with priority.urgent(True):
    during = policies()
print(before, during, policies())
"""


@pytest.mark.parametrize("user", ["this", "unprivileged"])
def test_a_reads_writing_leaves_idle_priority_where_the_os_allows(user):
    command = [sys.executable, "-c", PRIORITY_PROBE]
    if user == "unprivileged":
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            pytest.skip("needs root and setpriv to run the probe as nobody")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    # Linux lets a thread leave SCHED_IDLE only with CAP_SYS_NICE or an RLIMIT_NICE allowing nice 0
    privileged = user == "this" and (os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20)
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=span_writer._SOURCE_ROOT,
                         env={**os.environ, "PYTHONPATH": span_writer._SOURCE_ROOT}).stdout
    idle, other = os.SCHED_IDLE, os.SCHED_OTHER
    assert out.split("\n")[0] == f"[{idle}] [{other if privileged else idle}] [{idle}]"


async def test_a_group_of_more_rows_than_one_transaction_takes_is_stored_whole(config):
    traces = [f"{i:032x}" for i in range(ROWS_PER_WRITE * 2 + 7)]  # a row per trace, in one batch
    sink = await _sink(config)
    try:
        await sink.export([_root(trace_id, n=i) for i, trace_id in enumerate(traces)], [])
        await sink.sync()
        stored = [await sink.trace(trace_id) for trace_id in (traces[0], traces[ROWS_PER_WRITE], traces[-1])]
        assert [[span["attributes"] for span in spans] for spans in stored] == [
            [{"n": 0}], [{"n": ROWS_PER_WRITE}], [{"n": len(traces) - 1}]]
        assert _stats(sink) == {"span_writer_backlog_spans": 0, "span_writer_dropped": 0, "span_writer_lost": 0}
    finally:
        await sink.close()


async def test_a_batch_is_logged_and_becomes_rows_when_a_read_waits_for_it(config):
    sink = await _sink(config, idle_s=3600)
    try:
        await sink.export([_root("1" * 32, model="m")], [])

        async def logged():
            return sink.writer.logged_spans == 1
        await _eventually(logged)
        assert len(await sink.store.fetch_all(LOG_TABLE)) == 1
        assert await sink.store.fetch_all("span_chunks") == [], "logged, not folded: the server is busy"
        await sink.sync()
        assert [s["attributes"] for s in await sink.trace("1" * 32)] == [{"model": "m"}]
        assert await sink.store.fetch_all(LOG_TABLE) == [] and sink.stats()["span_log_spans"] == 0
    finally:
        await sink.close()


async def test_the_child_folds_the_log_once_no_batch_came_for_idle_s(config):
    sink = await _sink(config, idle_s=0.2)
    try:
        await sink.export([_root("2" * 32)], [])

        async def folded():  # its rows written, then its entries deleted
            return len(await sink.store.fetch_all("span_chunks")) == 1 and not await sink.store.fetch_all(LOG_TABLE)
        await _eventually(folded)  # no read asked for it
    finally:
        await sink.close()


async def test_a_log_past_its_size_is_folded_though_the_server_stays_busy(config):
    sink = await _sink(config, idle_s=3600, fold_bytes=1)
    try:
        await sink.export([_root("3" * 32)], [])

        async def folded():  # its rows written, then its entries deleted
            return len(await sink.store.fetch_all("span_chunks")) == 1 and not await sink.store.fetch_all(LOG_TABLE)
        await _eventually(folded)
    finally:
        await sink.close()


async def test_a_log_left_by_an_earlier_writer_is_folded_by_the_next_one(config):
    tables = SpanStoreSink(await sqlstore_from_config(config))  # the tables, as a server makes them
    await tables.initialize()
    await SpanLog(tables.store).append([(None, 1, _spancore.encode([_root("4" * 32)]))])  # a writer killed since
    await tables.store.close()
    sink = await _sink(config, idle_s=3600)
    try:
        async def folded():  # its rows written, then its entries deleted
            return len(await sink.store.fetch_all("span_chunks")) == 1 and not await sink.store.fetch_all(LOG_TABLE)
        await _eventually(folded)  # at the start of the next writer, with no read waiting
    finally:
        await sink.close()


async def test_shutdown_folds_the_log_so_the_stopped_store_is_whole(config):
    sink = await _sink(config, idle_s=3600)
    await sink.export([_root("5" * 32)], [])

    async def logged():
        return sink.writer.logged_spans == 1
    await _eventually(logged)
    await sink.close()
    store = await sqlstore_from_config(config)
    try:
        assert len(await store.fetch_all("span_chunks")) == 1 and await store.fetch_all(LOG_TABLE) == []
    finally:
        await store.close()


async def test_a_fold_that_fails_for_a_read_ends_the_wait_and_keeps_the_log(config, caplog):
    sink = await _sink(config, idle_s=3600)
    sink.read_wait = 30
    try:
        await sink.export([_root("6" * 32)], [])

        async def logged():
            return sink.writer.logged_spans == 1
        await _eventually(logged)
        # a store that refuses rows (as a full disk would), for every connection to the file
        await sink.store._execute("CREATE TRIGGER refuse BEFORE INSERT ON span_chunks "
                                  "BEGIN SELECT RAISE(ABORT, 'disk full'); END", [])
        started = asyncio.get_running_loop().time()
        await sink.sync()
        assert asyncio.get_running_loop().time() - started < 5, "not a retry loop until read_wait"
        assert "could not be folded for a read; 1 logged spans are left out" in caplog.text
        assert len(await sink.store.fetch_all(LOG_TABLE)) == 1, "nothing logged is deleted"
        await sink.store._execute("DROP TRIGGER refuse", [])
        await sink.export([_root("7" * 32)], [])
        await sink.sync()  # a later read's fold takes it up
        assert [len(await sink.trace(t * 32)) for t in "67"] == [1, 1]
    finally:
        await sink.close()


async def test_the_first_read_folds_what_an_earlier_server_left_in_the_log(config):
    tables = SpanStoreSink(await sqlstore_from_config(config))
    await tables.initialize()
    await SpanLog(tables.store).append([(None, 1, _spancore.encode([_root("8" * 32)]))])  # a server stopped since
    await tables.store.close()
    sink = await _sink(config, idle_s=3600)
    try:
        await sink.sync()  # at once: the new child's own fold at start-up may not have run yet
        assert len(await sink.trace("8" * 32)) == 1
    finally:
        await sink.close()
