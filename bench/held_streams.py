"""Held SSE streams and a client that stops reading, against `polystack run`.

usage: python bench/held_streams.py [--streams 1000] [--rounds 2] [--large-mib 256]

Starts a test-double upstream (bench/_stream_load.py) in this process and a
`polystack run` proxying to it (remote::openai, max_connections: 0). Opens
--streams chat streams at once; the upstream sends each its first chunk and
holds it until all are open; the server's RSS is read then, and every stream
must end with the whole text and [DONE]; --rounds repeats that, to show what
the server keeps after the streams are gone. Then one client reads the first event
of a --large-mib stream and stops reading: how much the upstream got to send
and the server's RSS show whether backpressure holds. Figures go to
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stream_load import HoldingUpstream, hold_streams, polystack, slow_reader

MIB = 1024 * 1024


async def main(streams: int, rounds: int, large_mib: int) -> int:
    upstream = await HoldingUpstream(large_bytes=large_mib * MIB).start()
    try:
        with polystack(upstream.url) as (base, process):
            completed = 0
            for round_ in range(1, rounds + 1):
                held = await hold_streams(base, process, upstream, streams)
                completed += held.completed
                print(f"round {round_}: streams held at once: {held.streams}, completed with [DONE]: "
                      f"{held.completed}, errors: {len(held.errors)} {held.errors[:3]}; "
                      f"all first chunks in {held.open_seconds:.1f}s")
                print(f"  server RSS: before {held.rss_before / MIB:.1f} MiB, held {held.rss_held / MIB:.1f} MiB, "
                      f"after {held.rss_after / MIB:.1f} MiB; per held stream {held.rss_per_stream / 1024:.1f} KiB")
            slow = await slow_reader(base, process, upstream)
            print(f"slow reader: upstream sent {slow.upstream_bytes / MIB:.1f} MiB of {slow.large_total / MIB:.0f} MiB "
                  f"before its writes blocked; server RSS {slow.rss_before / MIB:.1f} -> {slow.rss_stalled / MIB:.1f} MiB; "
                  f"upstream stream closed after the hang-up: {slow.upstream_closed}, "
                  f"when it had sent {slow.sent_by_close / MIB:.1f} MiB")
    finally:
        await upstream.stop()
    return 0 if completed == streams * rounds and slow.upstream_closed else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--large-mib", type=int, default=256)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.streams, args.rounds, args.large_mib)))
