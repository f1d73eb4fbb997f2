"""Many SSE streams held through `polystack run`, and a client that stops reading (bench/_stream_load.py).

CI holds 200 streams at once; bench/held_streams.py holds 1,000 (docs/reliability.md).
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from bench._stream_load import HoldingUpstream, hold_streams, polystack, slow_reader

MIB = 1024 * 1024
STREAMS = 200

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served():
    upstream = await HoldingUpstream(large_bytes=128 * MIB).start()
    try:
        with polystack(upstream.url) as (base, process):
            yield base, process, upstream
    finally:
        await upstream.stop()


async def test_streams_held_at_once_all_finish_and_a_second_round_reuses_the_memory(served):
    base, process, upstream = served
    first = await hold_streams(base, process, upstream, STREAMS)
    assert first.errors == [] and first.completed == STREAMS
    assert first.rss_per_stream < 1 * MIB  # measured about 50 KiB (docs/reliability.md)
    second = await hold_streams(base, process, upstream, STREAMS)
    assert second.errors == [] and second.completed == STREAMS
    # what the first round grew by is reused, not added to: memory does not grow with streams served
    first_growth = first.rss_held - first.rss_before
    assert second.rss_held - first.rss_held < first_growth / 2 + 4 * MIB, (first, second)


async def test_a_client_that_stops_reading_pauses_the_upstream_and_its_hang_up_stops_it(served):
    base, process, upstream = served
    slow = await slow_reader(base, process, upstream)
    # only what fits in the buffers on the way (about 9 MiB measured) left the upstream
    assert slow.upstream_bytes < slow.large_total / 4, slow
    assert slow.rss_stalled - slow.rss_before < 32 * MIB, slow
    # the hang-up closed the upstream stream long before its end (it used to be read to the end)
    assert slow.upstream_closed, slow
    assert slow.sent_by_close < slow.large_total / 2, slow
