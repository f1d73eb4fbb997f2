"""Prompt logs, Humanloop compatible: v4 ``/v4/logs``, sessions and feedback;
v5 ``/v5/prompts/log`` and ``/v5/logs`` as the ``humanloop`` SDK calls them.

A v4 project and a v5 prompt are the same thing here (a named file with ``pr_``
ids); a v4 ``config`` or a v5 ``prompt`` is one of its versions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._paging import Offset, OffsetPage
from ._webmethod import webmethod

#: most items on one page of a list, as Humanloop allows
MAX_PAGE_SIZE = 100
#: list pages are validated as Humanloop validates them: a 422 naming ``page`` or ``size``
Page = Annotated[int, Field(ge=1, description="Page number, from 1")]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1 to {MAX_PAGE_SIZE}")]

JSONDict = dict[str, Any]
LogStatus = Literal["complete", "incomplete"]


class _Open(BaseModel):
    """Fields Humanloop may add later are kept, not refused."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())


class HumanloopChatMessage(_Open):
    role: Literal["user", "assistant", "system", "tool", "developer"]
    content: str | list[JSONDict] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[JSONDict] | None = None


class HumanloopFeedback(_Open):
    """v4 feedback on a logged datapoint."""

    type: str = Field(..., min_length=1, description="rating, action, issue, correction, comment or a custom type")
    value: Any = Field(None, description="The feedback value (a string, a number, ...)")
    data_id: str | None = Field(None, description="ID of the datapoint; implied when given with a log")
    user: str | None = None
    created_at: datetime | None = None
    unset: bool | None = None


class HumanloopFeedbackResponse(BaseModel):
    id: str
    type: str
    value: Any = None
    data_id: str
    user: str | None = None
    created_at: datetime


class HumanloopLogRequest(_Open):
    """v4 ``LogRequest`` (``shared/spec/humanloop-log-request.md``)."""

    project: str | None = Field(None, min_length=1, description="Project name; created on first use")
    project_id: str | None = None
    session_id: str | None = None
    session_reference_id: str | None = Field(None, min_length=1)
    parent_id: str | None = None
    parent_reference_id: str | None = Field(None, min_length=1)
    inputs: JSONDict = Field(default_factory=dict)
    source: str | None = None
    metadata: JSONDict | None = None
    reference_id: str | None = Field(None, min_length=1)
    trial_id: str | None = None
    messages: list[HumanloopChatMessage] | None = None
    output: str | None = None
    config: JSONDict | None = Field(None, description="Model, tool, generic or agent config; required unless trial_id")
    feedback: HumanloopFeedback | list[HumanloopFeedback] | None = None
    created_at: datetime | None = None
    error: str | None = None
    duration: float | None = Field(None, ge=0)


class HumanloopCreateLogResponse(BaseModel):
    id: str = Field(..., description="data_... id of the datapoint")
    project_id: str
    session_id: str | None = None


class HumanloopLogUpdate(_Open):
    """v4 ``UpdateLogRequest``."""

    output: str | None = None
    error: str | None = None
    duration: float | None = Field(None, ge=0)


class HumanloopDatapoint(_Open):
    """A v4 log as stored."""

    id: str
    project_id: str
    project: str
    config_id: str | None = None
    config: JSONDict | None = None
    session_id: str | None = None
    parent_id: str | None = None
    reference_id: str | None = None
    created_at: datetime
    feedback: list[HumanloopFeedbackResponse] = Field(default_factory=list)


class HumanloopCreateSessionRequest(_Open):
    project: str | None = Field(None, min_length=1)
    project_id: str | None = None
    reference_id: str | None = Field(None, min_length=1)


class HumanloopCreateSessionResponse(BaseModel):
    id: str


class HumanloopProject(BaseModel):
    id: str
    name: str


class HumanloopSession(BaseModel):
    id: str
    reference_id: str | None = None
    project_id: str
    project: HumanloopProject
    created_at: datetime
    updated_at: datetime
    first_inputs: JSONDict | None = None
    last_output: str | None = None
    logs_count: int = 0


class HumanloopSessionPage(BaseModel):
    records: list[HumanloopSession]
    page: int
    size: int
    total: int


class HumanloopPromptKernel(_Open):
    """v5 ``PromptKernelRequest``: a version's settings."""

    model: str = Field(..., min_length=1)
    endpoint: Literal["complete", "chat", "edit"] | None = None
    template: str | list[HumanloopChatMessage] | None = None
    provider: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    tools: list[JSONDict] | None = None


class HumanloopPromptLogUpdate(_Open):
    """v5 ``PATCH /prompts/{id}/log/{log_id}`` body (``shared/spec/humanloop-update-prompt-log.txt``)."""

    output_message: HumanloopChatMessage | None = None
    prompt_tokens: int | None = Field(None, ge=0)
    reasoning_tokens: int | None = Field(None, ge=0)
    output_tokens: int | None = Field(None, ge=0)
    prompt_cost: float | None = Field(None, ge=0)
    output_cost: float | None = Field(None, ge=0)
    finish_reason: str | None = None
    messages: list[HumanloopChatMessage] | None = None
    tool_choice: Literal["none", "auto", "required"] | JSONDict | None = None
    output: str | None = None
    created_at: datetime | None = None
    error: str | None = None
    provider_latency: float | None = Field(None, ge=0)
    stdout: str | None = None
    provider_request: JSONDict | None = None
    provider_response: JSONDict | None = None
    inputs: JSONDict | None = None
    source: str | None = None
    metadata: JSONDict | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    log_status: LogStatus | None = None


class HumanloopPromptLogRequest(HumanloopPromptLogUpdate):
    """v5 ``POST /prompts/log`` body, as ``humanloop.prompts.log`` sends it: the
    fields of an update, plus what names the prompt and the log."""

    path: str | None = Field(None, min_length=1)
    id: str | None = None
    prompt: HumanloopPromptKernel | str | None = Field(None, description="Version settings, or a .prompt file's text")
    run_id: str | None = None
    source_datapoint_id: str | None = None
    trace_parent_id: str | None = None
    user: str | None = None
    environment: str | None = None
    save: bool | None = None
    log_id: str | None = Field(None, min_length=1)


class HumanloopCreatePromptLogResponse(BaseModel):
    id: str
    prompt_id: str
    version_id: str
    session_id: str | None = None


class HumanloopPrompt(_Open):
    """v5 ``PromptResponse``: the prompt with the version a log used."""

    id: str
    path: str
    name: str
    type: Literal["prompt"] = "prompt"
    model: str
    version_id: str
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime
    version_logs_count: int
    total_logs_count: int
    inputs: list[JSONDict] = Field(default_factory=list)


class HumanloopPromptLog(_Open):
    """v5 ``PromptLogResponse``; v4 fields of a v4 log are kept as extra keys."""

    id: str
    prompt: HumanloopPrompt
    evaluator_logs: list[JSONDict] = Field(default_factory=list)
    output: str | None = None
    inputs: JSONDict | None = None
    created_at: datetime | None = None


class HumanloopLogPage(BaseModel):
    records: list[HumanloopPromptLog]
    page: int
    size: int
    total: int


class HumanloopExportResponse(BaseModel):
    """polystack's own: the rows a prompt's logs added to a dataset."""

    dataset_id: str
    rows: int


class PromptLogProject(BaseModel):
    """A project (v4) or prompt (v5): the file logs are filed under."""

    id: str
    path: str
    created_at: datetime


class PromptLogProjectPage(OffsetPage):
    data: list[PromptLogProject]


class PromptLogSummary(BaseModel):
    """A log as a list shows it; ``GET /v1/prompt-logs/{id}`` has the whole of it."""

    id: str
    project_id: str
    project: str
    session_id: str | None = None
    reference_id: str | None = None
    created_at: datetime
    source: str | None = None
    messages_count: int = Field(0, description="Messages of the prompt it logged")
    output: str | None = Field(None, description="Its output, cut at 300 characters")


class PromptLogSummaryPage(OffsetPage):
    """Logs newest first, ``limit`` from ``offset``; ``has_more`` when more follow."""

    data: list[PromptLogSummary]


Limit = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description=f"Items a page, 1 to {MAX_PAGE_SIZE}")]


@runtime_checkable
class PromptLogs(Protocol):
    # -- v4 ------------------------------------------------------------------
    @webmethod(route="/v4/logs", method="POST", body="request", summary="Log one datapoint or a list")
    async def create_logs(
        self, request: HumanloopLogRequest | list[HumanloopLogRequest]
    ) -> HumanloopCreateLogResponse | list[HumanloopCreateLogResponse]: ...

    @webmethod(route="/v4/logs/{id}", method="PATCH", body="request")
    async def update_log(self, id: str, request: HumanloopLogUpdate) -> HumanloopDatapoint: ...

    @webmethod(route="/v4/logs", method="PATCH", body="request", query=("reference_id",))
    async def update_log_by_reference(self, reference_id: str, request: HumanloopLogUpdate) -> HumanloopDatapoint: ...

    @webmethod(route="/v4/sessions", method="POST", body="request")
    async def create_session(self, request: HumanloopCreateSessionRequest) -> HumanloopCreateSessionResponse: ...

    @webmethod(route="/v4/sessions/{id}", method="GET")
    async def get_session(self, id: str) -> HumanloopSession: ...

    @webmethod(route="/v4/sessions", method="GET")
    async def list_sessions(self, project_id: str, page: Page = 1, size: PageSize = 10) -> HumanloopSessionPage: ...

    @webmethod(route="/v4/feedback", method="POST", body="request")
    async def submit_feedback(
        self, request: HumanloopFeedback | list[HumanloopFeedback]
    ) -> HumanloopFeedbackResponse | list[HumanloopFeedbackResponse]: ...

    # -- v5 ------------------------------------------------------------------
    @webmethod(route="/v5/prompts/log", method="POST", body="request", query=("version_id", "environment"))
    async def log_prompt(
        self, request: HumanloopPromptLogRequest, version_id: str | None = None, environment: str | None = None
    ) -> HumanloopCreatePromptLogResponse: ...

    @webmethod(route="/v5/prompts/{id}/log/{log_id}", method="PATCH", body="request")
    async def update_prompt_log(self, id: str, log_id: str, request: HumanloopPromptLogUpdate) -> HumanloopPromptLog: ...

    @webmethod(route="/v5/logs", method="GET")
    async def list_logs(self, file_id: str, page: Page = 1, size: PageSize = 10) -> HumanloopLogPage: ...

    @webmethod(route="/v5/logs/{id}", method="GET")
    async def get_log(self, id: str) -> HumanloopPromptLog: ...

    # -- polystack -----------------------------------------------------------
    @webmethod(route="/v1/prompt-log-projects", method="GET", summary="Projects (prompts), newest first")
    async def list_prompt_log_projects(self, limit: Limit = 20, offset: Offset = 0) -> PromptLogProjectPage: ...

    @webmethod(route="/v1/prompt-logs", method="GET",
               summary="Logs of every project newest first, filtered by project and session, a page at a time")
    async def list_prompt_logs(
        self, project_id: str | None = None, session_id: str | None = None, limit: Limit = 20, offset: Offset = 0
    ) -> PromptLogSummaryPage: ...

    @webmethod(route="/v1/prompt-logs/{id}", method="GET", summary="A log (v4 or v5) with its messages and feedback")
    async def get_prompt_log(self, id: str) -> HumanloopDatapoint: ...

    @webmethod(route="/v5/prompts/{id}/export", method="POST",
               summary="Append a prompt's logs with their feedback to a dataset (for post-training)")
    async def export_logs(self, id: str, dataset_id: str, provider_id: str | None = None) -> HumanloopExportResponse: ...


PROTOCOL = PromptLogs
