"""Humanloop-compatible prompt logs kept in the SQL store.

Every log belongs to a prompt (a v4 project) and one of its versions (a v4
``config``, a v5 ``prompt``). Checks that span fields answer 400 naming the
fields; unknown ids answer 404 naming the argument; a reused ``reference_id``
or ``log_id`` answers 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml

from providers.utils.datasetio.export import export_to_dataset
from stack.apis.prompt_logs import (
    MAX_PAGE_SIZE,
    HumanloopCreateLogResponse,
    HumanloopCreatePromptLogResponse,
    HumanloopCreateSessionRequest,
    HumanloopCreateSessionResponse,
    HumanloopDatapoint,
    HumanloopExportResponse,
    HumanloopFeedback,
    HumanloopFeedbackResponse,
    HumanloopLogPage,
    HumanloopLogRequest,
    HumanloopLogUpdate,
    HumanloopPrompt,
    HumanloopPromptLog,
    HumanloopPromptLogRequest,
    HumanloopPromptLogUpdate,
    HumanloopSession,
    HumanloopSessionPage,
    PromptLogProject,
    PromptLogProjectPage,
    PromptLogSummary,
    PromptLogSummaryPage,
)
from stack.errors import BadRequestError, ConfigError, ConflictError, NotFoundError
from stack.registry import ProviderContext
from stack.storage import SqliteStoreConfig, sqlstore_from_config

from ._export import EXPORT_SCHEMA, export_rows
from ._store import PromptLogStore, new_id, now
from .config import SqlPromptLogsConfig

CONFIG_TYPES = ("model", "tool", "generic", "agent")


def _at_most_one(item: Any, first: str, second: str, where: str) -> None:
    if getattr(item, first) is not None and getattr(item, second) is not None:
        raise BadRequestError(f"pass at most one of {first} and {second}", field=f"{where}{first}")


def _page_bounds(page: int, size: int) -> tuple[int, int]:
    # the routes check page and size (a 422, as Humanloop answers); this guards direct calls
    if page < 1:
        raise BadRequestError(f"must be 1 or more, got {page}", field="page")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadRequestError(f"must be between 1 and {MAX_PAGE_SIZE}, got {size}", field="size")
    return (page - 1) * size, page * size


def _summary(row: dict[str, Any], path: str) -> PromptLogSummary:
    data = row["data"]
    output = data.get("output")
    return PromptLogSummary(
        id=row["id"], project_id=row["prompt_id"], project=path, session_id=row["session_id"],
        reference_id=row["reference_id"], created_at=row["created_at"], source=data.get("source"),
        messages_count=len(data.get("messages") or []), output=output[:300] if isinstance(output, str) else None)


def _not_found(kind: str, field: str, value: str) -> NotFoundError:
    return NotFoundError(kind, value, message=f"{field}: no {kind} {value!r}")


def _check_config(config: dict[str, Any], where: str) -> dict[str, Any]:
    kind = config.get("type", "model")
    if kind not in CONFIG_TYPES:
        raise BadRequestError(f"must be one of {', '.join(CONFIG_TYPES)}, got {kind!r}", field=f"{where}config.type")
    if kind == "model" and not isinstance(config.get("model"), str):
        raise BadRequestError("a model config needs 'model' (a string)", field=f"{where}config.model")
    if kind != "model" and not isinstance(config.get("name"), str):
        raise BadRequestError(f"a {kind} config needs 'name' (a string)", field=f"{where}config.name")
    return {**config, "type": kind}


def _kernel_from_prompt_file(text: str) -> dict[str, Any]:
    """The settings of a ``.prompt`` file: YAML front matter, then the template."""
    _, sep, rest = text.partition("---")
    front, sep2, template = rest.partition("---")
    try:
        settings = yaml.safe_load(front) if sep and sep2 else None
    except yaml.YAMLError as exc:
        raise BadRequestError(f"the .prompt file's front matter is not YAML: {exc}", field="prompt") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("model"), str):
        raise BadRequestError("a .prompt file needs front matter between '---' lines naming 'model'", field="prompt")
    return {**settings, "template": template.strip()}


class SqlPromptLogs:
    def __init__(self, config: SqlPromptLogsConfig, context: ProviderContext) -> None:
        self.config, self.context = config, context
        self.store: PromptLogStore | None = None

    async def initialize(self) -> None:
        sql = await sqlstore_from_config(
            self.config.store or SqliteStoreConfig(), default_path=self.context.data_dir / "prompt_logs.db"
        )
        self.store = PromptLogStore(sql)
        await self.store.create_tables()
        if self.config.log_chat_completions is not None:
            router = self.context.deps.get("inference")
            if router is None:
                raise ConfigError(f"provider {self.context.provider_id!r}: log_chat_completions needs the inference API "
                                  "in the run config's apis")
            from ._completions import wrap_router

            wrap_router(router, self.log_prompt, self.config.log_chat_completions)

    async def shutdown(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None

    # -- shared look-ups ------------------------------------------------------

    async def _project(self, name: str | None, project_id: str | None, where: str = "") -> dict[str, Any]:
        """The prompt a v4 request names by ``project`` (created on first use) or ``project_id``."""
        if project_id is not None:
            row = await self.store.get("prompts", project_id)
            if row is None:
                raise _not_found("project", f"{where}project_id", project_id)
            if name is not None and row["path"] != name:
                raise BadRequestError(f"names project {row['path']!r}, not {name!r}", field=f"{where}project_id")
            return row
        if name is None:
            raise BadRequestError("pass project or project_id", field=f"{where}project")
        return await self.store.prompt_for_path(name)

    async def _log(self, log_id: str, field: str = "id") -> dict[str, Any]:
        row = await self.store.get("logs", log_id)
        if row is None:
            raise _not_found("log", field, log_id)
        return row

    # -- v4 logs --------------------------------------------------------------

    async def create_logs(
        self, request: HumanloopLogRequest | list[HumanloopLogRequest]
    ) -> HumanloopCreateLogResponse | list[HumanloopCreateLogResponse]:
        many = isinstance(request, list)
        items = request if many else [request]
        in_request = {item.reference_id for item in items if item.reference_id}
        for n, item in enumerate(items):  # refuse a bad list before writing any of it
            where = f"[{n}]." if many else ""
            _at_most_one(item, "session_id", "session_reference_id", where)
            _at_most_one(item, "parent_id", "parent_reference_id", where)
            if item.parent_reference_id in in_request:
                raise BadRequestError(
                    "cannot refer to a datapoint logged in the same request; log the parent first",
                    field=f"{where}parent_reference_id",
                )
            if item.config is None and item.trial_id is None:
                raise BadRequestError("required unless trial_id is given", field=f"{where}config")
            if item.config is not None:
                _check_config(item.config, where)
            if item.project is None and item.project_id is None:
                raise BadRequestError("pass project or project_id", field=f"{where}project")
        results = [await self._create_log(item, f"[{n}]." if many else "") for n, item in enumerate(items)]
        return results if many else results[0]

    async def _create_log(self, item: HumanloopLogRequest, where: str) -> HumanloopCreateLogResponse:
        project = await self._project(item.project, item.project_id, where)
        session_id = None
        if item.session_id is not None:
            if await self.store.get("sessions", item.session_id) is None:
                raise _not_found("session", f"{where}session_id", item.session_id)
            session_id = item.session_id
        elif item.session_reference_id is not None:
            session_id = (await self.store.session_for_reference(item.session_reference_id, project["id"]))["id"]
        parent_id = item.parent_id
        if parent_id is not None:
            await self._log(parent_id, f"{where}parent_id")
        elif item.parent_reference_id is not None:
            parent = await self.store.log_by_reference(item.parent_reference_id)
            if parent is None:
                raise _not_found("log", f"{where}parent_reference_id", item.parent_reference_id)
            parent_id = parent["id"]
        if item.config is not None:
            version = await self.store.version_for(project["id"], _check_config(item.config, where))
        else:  # a trial's config: this project's latest version
            version = await self.store.latest_version(project["id"])
            if version is None:
                raise BadRequestError(f"project {project['path']!r} has no config yet; pass config",
                                      field=f"{where}trial_id")
        log_id = new_id("data")
        if item.reference_id is not None and not await self.store.claim_reference(item.reference_id, log_id):
            raise ConflictError(f"{where}reference_id: {item.reference_id!r} already names another log")
        created_at = item.created_at or now()
        data = item.model_dump(mode="json", exclude={"feedback", "config", "project_id", "session_id", "parent_id"})
        await self.store.insert_log({
            "id": log_id, "prompt_id": project["id"], "version_id": version["id"], "session_id": session_id,
            "parent_id": parent_id, "reference_id": item.reference_id, "created_at": created_at,
            "updated_at": created_at, "data": data,
        })
        feedback = item.feedback if isinstance(item.feedback, list) else [item.feedback] if item.feedback else []
        for fb in feedback:
            await self._store_feedback(fb, log_id)
        return HumanloopCreateLogResponse(id=log_id, project_id=project["id"], session_id=session_id)

    async def update_log(self, id: str, request: HumanloopLogUpdate) -> HumanloopDatapoint:
        row = await self._log(id)
        await self.store.update_log(id, {**row["data"], **request.model_dump(mode="json", exclude_unset=True)})
        return await self._datapoint(await self._log(id))

    async def update_log_by_reference(self, reference_id: str, request: HumanloopLogUpdate) -> HumanloopDatapoint:
        row = await self.store.log_by_reference(reference_id)
        if row is None:
            raise _not_found("log", "reference_id", reference_id)
        return await self.update_log(row["id"], request)

    async def _datapoint(self, row: dict[str, Any]) -> HumanloopDatapoint:
        prompt = await self.store.get("prompts", row["prompt_id"])
        version = await self.store.get("versions", row["version_id"])
        feedback = [self._feedback_response(f) for f in await self.store.feedback_of(row["id"])]
        return HumanloopDatapoint(**{
            **row["data"], "id": row["id"], "project_id": prompt["id"], "project": prompt["path"],
            "config_id": version["id"], "config": version["kernel"], "session_id": row["session_id"],
            "parent_id": row["parent_id"], "reference_id": row["reference_id"], "created_at": row["created_at"],
            "feedback": feedback,
        })

    # -- v4 sessions ----------------------------------------------------------

    async def create_session(self, request: HumanloopCreateSessionRequest) -> HumanloopCreateSessionResponse:
        project = await self._project(request.project, request.project_id)
        if request.reference_id is not None:
            session = await self.store.session_for_reference(request.reference_id, project["id"])
            if session["project_id"] != project["id"]:
                raise ConflictError(f"reference_id: {request.reference_id!r} names a session of another project")
        else:
            session = await self.store.new_session(project["id"])
        return HumanloopCreateSessionResponse(id=session["id"])

    async def get_session(self, id: str) -> HumanloopSession:
        row = await self.store.get("sessions", id)
        if row is None:
            raise _not_found("session", "id", id)
        return await self._session(row)

    async def list_sessions(self, project_id: str, page: int = 1, size: int = 10) -> HumanloopSessionPage:
        start, end = _page_bounds(page, size)
        await self._project(None, project_id)
        rows = await self.store.sessions_of(project_id)
        return HumanloopSessionPage(records=[await self._session(r) for r in rows[start:end]], page=page, size=size,
                                    total=len(rows))

    async def _session(self, row: dict[str, Any]) -> HumanloopSession:
        project = await self.store.get("prompts", row["project_id"])
        logs = await self.store.logs_where(session_id=row["id"])  # newest first
        return HumanloopSession(
            id=row["id"], reference_id=row["reference_id"], project_id=project["id"],
            project={"id": project["id"], "name": project["path"]}, created_at=row["created_at"],
            updated_at=max([row["created_at"], *(log["updated_at"] for log in logs)]),
            first_inputs=logs[-1]["data"].get("inputs") if logs else None,
            last_output=logs[0]["data"].get("output") if logs else None, logs_count=len(logs),
        )

    # -- v4 feedback ----------------------------------------------------------

    async def submit_feedback(
        self, request: HumanloopFeedback | list[HumanloopFeedback]
    ) -> HumanloopFeedbackResponse | list[HumanloopFeedbackResponse]:
        many = isinstance(request, list)
        items = request if many else [request]
        for n, fb in enumerate(items):
            where = f"[{n}]." if many else ""
            if fb.data_id is None:
                raise BadRequestError("required: the id of the logged datapoint", field=f"{where}data_id")
            await self._log(fb.data_id, f"{where}data_id")
        results = [await self._store_feedback(fb, fb.data_id) for fb in items]
        return results if many else results[0]

    async def _store_feedback(self, fb: HumanloopFeedback, log_id: str) -> HumanloopFeedbackResponse:
        data = fb.model_dump(mode="json", exclude={"data_id", "created_at"})
        return self._feedback_response(await self.store.add_feedback(log_id, data, fb.created_at or now()))

    @staticmethod
    def _feedback_response(row: dict[str, Any]) -> HumanloopFeedbackResponse:
        return HumanloopFeedbackResponse(**{**row["data"], "id": row["id"], "data_id": row["log_id"],
                                            "created_at": row["created_at"]})

    # -- v5 prompts/log -------------------------------------------------------

    async def log_prompt(
        self, request: HumanloopPromptLogRequest, version_id: str | None = None, environment: str | None = None
    ) -> HumanloopCreatePromptLogResponse:
        prompt, version = await self._prompt_and_version(request, version_id)
        if request.trace_parent_id is not None:
            await self._log(request.trace_parent_id, "trace_parent_id")
        log_id = request.log_id or new_id("log")
        created_at = request.created_at or now()
        data = request.model_dump(mode="json", exclude={"path", "id", "prompt", "log_id"})
        stored = await self.store.insert_log({
            "id": log_id, "prompt_id": prompt["id"], "version_id": version["id"], "session_id": None,
            "parent_id": request.trace_parent_id, "reference_id": None, "created_at": created_at,
            "updated_at": created_at, "data": data,
        })
        if not stored:
            raise ConflictError(f"log_id: a log {log_id!r} exists")
        return HumanloopCreatePromptLogResponse(id=log_id, prompt_id=prompt["id"], version_id=version["id"])

    async def _prompt_and_version(
        self, request: HumanloopPromptLogRequest, version_id: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if version_id is not None:
            version = await self.store.get("versions", version_id)
            if version is None:
                raise _not_found("prompt version", "version_id", version_id)
            prompt = await self.store.get("prompts", version["prompt_id"])
            if request.id not in (None, prompt["id"]) or request.path not in (None, prompt["path"]):
                raise BadRequestError(f"is a version of prompt {prompt['path']!r} ({prompt['id']}), "
                                      "not the one path or id names", field="version_id")
            return prompt, version
        if request.id is not None:
            prompt = await self.store.get("prompts", request.id)
            if prompt is None:
                raise _not_found("prompt", "id", request.id)
            if request.path not in (None, prompt["path"]):
                raise BadRequestError(f"names prompt {prompt['path']!r}, not {request.path!r}", field="id")
        elif request.path is not None:
            prompt = await self.store.prompt_for_path(request.path)
        else:
            raise BadRequestError("pass path or id (or the version_id query parameter)", field="path")
        if request.prompt is None:
            version = await self.store.latest_version(prompt["id"])
            if version is None:
                raise BadRequestError(f"prompt {prompt['path']!r} has no version yet; pass prompt", field="prompt")
            return prompt, version
        kernel = (_kernel_from_prompt_file(request.prompt) if isinstance(request.prompt, str)
                  else request.prompt.model_dump(mode="json", exclude_none=True))
        return prompt, await self.store.version_for(prompt["id"], kernel)

    async def update_prompt_log(self, id: str, log_id: str, request: HumanloopPromptLogUpdate) -> HumanloopPromptLog:
        row = await self._log(log_id, "log_id")
        if row["prompt_id"] != id:
            raise NotFoundError("log", log_id, message=f"log_id: log {log_id!r} is not a log of prompt {id!r}")
        await self.store.update_log(log_id, {**row["data"], **request.model_dump(mode="json", exclude_unset=True)})
        return await self.get_log(log_id)

    # -- v5 logs --------------------------------------------------------------

    async def list_logs(self, file_id: str, page: int = 1, size: int = 10) -> HumanloopLogPage:
        start, end = _page_bounds(page, size)
        prompt = await self.store.get("prompts", file_id)
        if prompt is None:
            raise _not_found("prompt", "file_id", file_id)
        logs = await self.store.logs_where(prompt_id=file_id)
        records = [await self._prompt_log(row, prompt, logs) for row in logs[start:end]]
        return HumanloopLogPage(records=records, page=page, size=size, total=len(logs))

    async def get_log(self, id: str) -> HumanloopPromptLog:
        row = await self._log(id)
        prompt = await self.store.get("prompts", row["prompt_id"])
        return await self._prompt_log(row, prompt, await self.store.logs_where(prompt_id=prompt["id"]))

    async def _prompt_log(self, row: dict[str, Any], prompt: dict[str, Any], logs: list[dict]) -> HumanloopPromptLog:
        version = await self.store.get("versions", row["version_id"])
        kernel = dict(version["kernel"])
        kernel.pop("type", None)  # a v4 config's type, not the file type
        kernel.setdefault("model", kernel.get("name") or kernel.get("type") or "unknown")
        last_used: datetime = max((log["created_at"] for log in logs), default=prompt["created_at"])
        rendered = HumanloopPrompt(**{
            **kernel, "id": prompt["id"], "path": prompt["path"], "name": prompt["path"].rsplit("/", 1)[-1],
            "version_id": version["id"], "created_at": prompt["created_at"], "updated_at": last_used,
            "last_used_at": last_used, "total_logs_count": len(logs),
            "version_logs_count": sum(1 for log in logs if log["version_id"] == version["id"]),
        })
        extra = {"session_id": row["session_id"]} if row["session_id"] else {}
        return HumanloopPromptLog(**{
            **row["data"], **extra, "id": row["id"], "prompt": rendered, "created_at": row["created_at"],
            "trace_parent_id": row["parent_id"], "log_id": row["id"],
        })

    # -- the console's lists ---------------------------------------------------

    async def list_prompt_log_projects(self, limit: int = 20, offset: int = 0) -> PromptLogProjectPage:
        _page_bounds(1, limit)
        rows = await self.store.prompts_page(limit + 1, offset)  # one more: is there a next page
        return PromptLogProjectPage(data=[PromptLogProject(**r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def list_prompt_logs(self, project_id: str | None = None, session_id: str | None = None, limit: int = 20,
                               offset: int = 0) -> PromptLogSummaryPage:
        _page_bounds(1, limit)
        where = {k: v for k, v in (("prompt_id", project_id), ("session_id", session_id)) if v}
        rows = await self.store.logs_page(where, limit + 1, offset)
        paths = {}
        for row in rows[:limit]:
            if row["prompt_id"] not in paths:
                paths[row["prompt_id"]] = (await self.store.get("prompts", row["prompt_id"]))["path"]
        return PromptLogSummaryPage(data=[_summary(row, paths[row["prompt_id"]]) for row in rows[:limit]],
                                    has_more=len(rows) > limit)

    async def get_prompt_log(self, id: str) -> HumanloopDatapoint:
        return await self._datapoint(await self._log(id))

    # -- export ---------------------------------------------------------------

    async def export_logs(self, id: str, dataset_id: str, provider_id: str | None = None) -> HumanloopExportResponse:
        """Append the prompt's logs (one row each, with their feedback) to a dataset, registering it when new."""
        prompt = await self.store.get("prompts", id)
        if prompt is None:
            raise _not_found("prompt", "id", id)
        rows = await export_rows(self.store, prompt)
        await export_to_dataset(self.context.deps, dataset_id, EXPORT_SCHEMA, rows,
                                {"source": "prompt_logs", "prompt_id": prompt["id"]}, provider_id)
        return HumanloopExportResponse(dataset_id=dataset_id, rows=len(rows))
