"""CPU seconds and memory of starting a distribution's stack in-process until /v1/health answers.

usage: PYTHONPATH=. python bench/startup_cpu.py [DISTRIBUTION_OR_PATH]

Local models load on first use (the idle server), as with ``bench/startup.py --first-use``. CPU time,
unlike wall time, hardly moves when other work shares the cores: use it to compare two versions of the
code on a busy machine (run them alternately).
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import tempfile
import time

import yaml

from stack.config import resolve_config_path
from tests.support import app_from_yaml, serve_app


def idle_config(target: str) -> dict:
    config = yaml.safe_load(resolve_config_path(target).read_text())
    for entry in config.get("providers", {}).get("inference", []):
        if entry["provider_type"].startswith("inline::"):
            entry["config"] = {**(entry.get("config") or {}), "load": "first_use"}
    for entry in config.get("providers", {}).get("scoring", []):
        if entry["provider_type"] == "inline::braintrust":  # in-process there is no port for it to find
            entry["config"] = {**(entry.get("config") or {}), "openai_base_url": "http://127.0.0.1:9/v1"}
    return config


async def main(target: str) -> None:
    app = app_from_yaml(pathlib.Path(tempfile.mkdtemp()), yaml.safe_dump(idle_config(target)))
    async with serve_app(app) as client:
        assert (await client.get("/v1/health")).status_code == 200
        cpu = time.process_time()
        with open("/proc/self/status") as fh:
            rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    print(f"{target}: healthy after {cpu:.2f} s of CPU; RSS {rss:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "starter"))
