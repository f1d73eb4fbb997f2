"""Asynchronous jobs, shared by eval and post_training."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel


class Job(BaseModel):
    job_id: str


class JobStatus(str, Enum):
    completed = "completed"
    in_progress = "in_progress"
    failed = "failed"
    scheduled = "scheduled"


__all__ = ["Job", "JobStatus"]
