"""An acknowledged SQLite write survives SIGKILL of the process that made it."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

from stack.storage import SqliteStoreConfig, kvstore_from_config

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from stack.storage import SqliteStoreConfig, kvstore_from_config

    async def main(path):
        kv = await kvstore_from_config(SqliteStoreConfig(db_path=path))
        i = 0
        while True:
            await kv.set(f"key{i:06d}", f"value{i}")
            print(f"ACK {i}", flush=True)
            i += 1

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_acknowledged_writes_survive_sigkill(tmp_path):
    path = tmp_path / "durable.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    acked = []
    try:
        for line in proc.stdout:
            acked.append(int(line.split()[1]))
            if len(acked) == 300:
                os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writer never stops itself
                break
        acked += [int(line.split()[1]) for line in proc.stdout if line.startswith("ACK ")]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300

    kv = await kvstore_from_config(SqliteStoreConfig(db_path=str(path)))
    try:
        stored = dict(await kv.items("key"))
    finally:
        await kv.close()
    missing = [i for i in acked if stored.get(f"key{i:06d}") != f"value{i}"]
    assert missing == []


async def test_many_tasks_writing_at_once_lose_nothing(tmp_path):
    config = SqliteStoreConfig(db_path=str(tmp_path / "busy.db"))
    stores = [await kvstore_from_config(config) for _ in range(3)]  # three connections, one file
    try:
        await asyncio.gather(
            *(stores[i % 3].set(f"task{i:04d}", str(i)) for i in range(600))
        )
    finally:
        for store in stores:
            await store.close()
    reopened = await kvstore_from_config(config)
    try:
        assert await reopened.items("task") == [(f"task{i:04d}", str(i)) for i in range(600)]
    finally:
        await reopened.close()
