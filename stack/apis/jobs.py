"""Jobs: the long work of every family (eval runs, training, batches) as one list.

Not in the Llama Stack spec: its per-family job routes answer a bare status.
These answer what the stack knows of a job (progress, message, timings, the
error or result) whichever family started it, so a client can show a
progress bar for any of them. Served by the stack itself.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from ..jobs import Job, JobStatus
from ._paging import Offset
from ._webmethod import webmethod


class ListJobsResponse(BaseModel):
    """Jobs newest first, without their results (``GET /v1/jobs/{job_id}`` has them);
    ``has_more`` when more follow this page."""

    data: list[Job]
    has_more: bool = False


@runtime_checkable
class Jobs(Protocol):
    @webmethod(route="/v1/jobs", method="GET", summary="List jobs, newest first")
    async def list_jobs(
        self,
        kind: str | None = None,
        status: JobStatus | None = None,
        limit: int = 100,
        offset: Offset = 0,
    ) -> ListJobsResponse: ...

    @webmethod(route="/v1/jobs/{job_id}", method="GET", summary="A job: status, progress, timings, result")
    async def get_job(self, job_id: str, include_result: bool = True) -> Job: ...

    @webmethod(route="/v1/jobs/{job_id}", method="DELETE", summary="Cancel a job (any replica's)")
    async def cancel_job(self, job_id: str) -> Job: ...

    @webmethod(route="/v1/jobs/{job_id}/restart", method="POST",
               summary="Run an interrupted, failed or cancelled job again, as a new job")
    async def restart_job(self, job_id: str) -> Job: ...


PROTOCOL = Jobs
