"""``kill -9`` of the starter (every store in SQLite) while it writes: vector
inserts, agent turns, dataset appends, trajectory and prompt logs, and a running
eval job. Restarted on the same home, it has every write it acknowledged, the job
reads ``interrupted``, and ``POST /v1/jobs/{id}/restart`` runs it again.
(The same against PostgreSQL replicas: tests/e2e/test_replicas.py.)"""

from __future__ import annotations

import asyncio
import signal

import httpx
import yaml

from tests.e2e.acknowledged import AcknowledgedWrites
from tests.e2e.upstream_double import on_double, upstream_double
from tests.support import ServerProcess


async def test_kill_9_of_the_starter_loses_no_acknowledged_write(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with upstream_double() as url:
        run_yaml = home / "run.yaml"
        run_yaml.write_text(yaml.safe_dump(on_double("starter", url)))
        server = ServerProcess(str(run_yaml), home=home).start(timeout=120)
        writes = AcknowledgedWrites("sqlite")
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
                await writes.prepare(client)
                stop = asyncio.Event()
                writer = asyncio.create_task(writes.keep_writing(client, stop, parallel=6))
                await asyncio.sleep(2.0)
                server.proc.send_signal(signal.SIGKILL)
                dead_pid = server.proc.pid
                server.proc.wait()
                stop.set()
                await writer
            server.stop()

            server.start(timeout=120)  # the same home: the same SQLite files
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
                counts = await writes.check(client)
                await writes.restart_interrupted_job(client, dead_pid)
        finally:
            server.stop()
    print(f"\nacknowledged before the kill, read back after the restart: {counts}")
