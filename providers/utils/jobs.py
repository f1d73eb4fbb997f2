"""Helpers for providers whose work runs as a job of the stack (``stack/jobs.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from stack.jobs import JobCancelled, JobContext


async def until_cancelled(ctx: JobContext, work: Awaitable[Any], poll: float = 0.2) -> Any:
    """``work``, cancelled within ``poll`` seconds of the job's cancel (calls in flight included)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=poll)
        if ctx.cancelled and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise JobCancelled(ctx.job_id)
    return task.result()
