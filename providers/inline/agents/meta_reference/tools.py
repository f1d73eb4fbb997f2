"""The tools a turn offers the model, and running the server-side ones.

Server-side tools come from the agent's tool groups (``builtin::rag``,
``builtin::code_interpreter``, MCP groups, web search) and run here through
the tool runtime; client tools are the agent's ``client_tools``: a call to
one ends the turn so the client can run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stack.apis._content import tool_name_text
from stack.apis.agents import AgentTool, AgentToolGroupWithArgs, ToolResponse
from stack.apis.inference import ToolCall, ToolDefinition, ToolParamDefinition
from stack.apis.tool_groups import ToolDef, ToolParameter
from stack.apis.tool_runtime import RAGQueryConfig
from stack.errors import BadRequestError, NotFoundError, StackError, invalid_field
from stack.request_context import tool_files

from stack.apis._content import content_text

RAG_GROUP = "builtin::rag"
MEMORY_GROUP = "builtin::memory"  # llama-stack 0.1.0's name of the same group
CODE_TOOL = "code_interpreter"


def _alias_of(tool: Any) -> str | None:
    """The tool that ``tool`` is another name of (``metadata.alias_of``), if any."""
    return (tool.metadata or {}).get("alias_of")


def _definition(name: str, description: str | None, parameters: list[ToolParameter] | None) -> ToolDefinition:
    return ToolDefinition(
        tool_name=name,
        description=description,
        parameters={
            p.name: ToolParamDefinition(
                param_type=p.parameter_type, description=p.description, required=p.required, default=p.default
            )
            for p in parameters or []
        },
    )


@dataclass(frozen=True)
class ToolGroupRef:
    """One entry of ``toolgroups``: a group id, optionally ``group/tool`` for one tool, and args."""

    group_id: str
    tool_name: str | None
    args: dict[str, Any]

    @classmethod
    def parse(cls, entry: AgentTool | dict) -> ToolGroupRef:
        if isinstance(entry, dict):
            entry = AgentToolGroupWithArgs.model_validate(entry)
        name, args = (entry, {}) if isinstance(entry, str) else (entry.name, dict(entry.args))
        # "builtin::rag/knowledge_search" picks one tool of the group; "::" itself never holds a slash
        group_id, _, tool_name = name.partition("/")
        return cls(RAG_GROUP if group_id == MEMORY_GROUP else group_id, tool_name or None, args)


@dataclass
class _ServerTool:
    group_id: str
    args: dict[str, Any]
    declared: frozenset[str]


@dataclass
class Toolbox:
    definitions: list[ToolDefinition] = field(default_factory=list)
    server: dict[str, _ServerTool] = field(default_factory=dict)
    client: set[str] = field(default_factory=set)
    files_dir: Path | None = None  # the session's downloaded documents, readable by the code interpreter

    @property
    def runs_code(self) -> bool:
        return CODE_TOOL in self.server

    @property
    def has_rag(self) -> bool:
        return any(t.group_id == RAG_GROUP for t in self.server.values())

    def is_client(self, name: Any) -> bool:
        return tool_name_text(name) in self.client

    @property
    def retrieval_db_ids(self) -> list[str]:
        """The vector DBs of ``builtin::rag`` that every turn searches before inference (may be none)."""
        args = next((t.args for t in self.server.values() if t.group_id == RAG_GROUP), {})
        ids = args.get("vector_db_ids") or []
        return [ids] if isinstance(ids, str) else list(ids)

    @property
    def retrieval_query_config(self) -> RAGQueryConfig | None:
        args = next((t.args for t in self.server.values() if t.group_id == RAG_GROUP), {})
        config = args.get("query_config")
        return RAGQueryConfig.model_validate(config) if config is not None else None

    def with_documents_db(self, vector_db_id: str) -> None:
        """Let ``builtin::rag`` tools search the vector DB of the session's documents too."""
        for tool in self.server.values():
            if tool.group_id == RAG_GROUP:
                tool.args["vector_db_ids"] = [*tool.args.get("vector_db_ids", []), vector_db_id]

    async def invoke(self, tool_runtime: Any, call: ToolCall) -> ToolResponse:
        """Run one server-side tool call. A failing tool answers with its error,
        so the model can react to it; it does not fail the turn."""
        name = tool_name_text(call.tool_name)
        tool = self.server.get(name)
        if tool is None:
            known = ", ".join(sorted([*self.server, *self.client])) or "none"
            return ToolResponse(call_id=call.call_id, tool_name=call.tool_name,
                                content=f"error: unknown tool {name!r}; available tools: {known}")
        # The model fills the tool's declared parameters; the agent's args
        # (vector_db_ids, ...) are not the model's to change.
        given = {k: v for k, v in call.arguments.items() if not tool.declared or k in tool.declared}
        try:
            with tool_files(self.files_dir):
                result = await tool_runtime.invoke_tool(tool_name=name, kwargs={**tool.args, **given})
        except StackError as exc:
            return ToolResponse(call_id=call.call_id, tool_name=call.tool_name, content=f"error: {exc.message}")
        content = result.content if result.content is not None else ""
        if result.error_message and result.error_message not in content_text(content):
            content = f"error: {result.error_message}\n{content_text(content)}".rstrip()
        return ToolResponse(call_id=call.call_id, tool_name=call.tool_name, content=content)


async def build_toolbox(
    tool_groups: Any,
    toolgroups: list[AgentTool | dict],
    client_tools: list[ToolDef],
    *,
    field_name: str,
    client_field: str,
) -> Toolbox:
    """Resolve tool groups (checked to be registered) and client tools into a
    Toolbox. Errors are 400s naming ``field_name[i]`` or ``client_field[i]``."""
    box = Toolbox()
    if toolgroups and tool_groups is None:
        raise BadRequestError("this stack serves no tool runtime; toolgroups cannot be used", field=field_name)
    for i, entry in enumerate(toolgroups):
        ref = ToolGroupRef.parse(entry)
        where = f"{field_name}[{i}]"
        try:
            group = await tool_groups.get_tool_group(ref.group_id)
        except NotFoundError as exc:
            raise BadRequestError(exc.message, field=where) from None
        tools = (await tool_groups.list_tools(toolgroup_id=ref.group_id)).data
        if ref.tool_name is not None:
            tools = [t for t in tools if ref.tool_name in (t.identifier, _alias_of(t))]
            if not tools:
                raise BadRequestError(f"tool group {ref.group_id!r} has no tool {ref.tool_name!r}", field=where)
        names = {t.identifier for t in tools}
        if ref.group_id == RAG_GROUP:
            _check_rag_args({**(group.args or {}), **ref.args}, f"{where}.args")
        for tool in tools:
            if tool.identifier in box.server:
                raise BadRequestError(f"tool {tool.identifier!r} is offered twice", field=where)
            box.server[tool.identifier] = _ServerTool(
                group_id=ref.group_id,
                args={**(group.args or {}), **ref.args},
                declared=frozenset(p.name for p in tool.parameters),
            )
            # an alias (web_search's "brave_search") answers the model's calls but is not offered twice
            if _alias_of(tool) not in names:
                box.definitions.append(_definition(tool.identifier, tool.description, tool.parameters))
    for i, tool in enumerate(client_tools):
        if tool.name in box.server or tool.name in box.client:
            raise BadRequestError(f"tool name {tool.name!r} is already taken", field=f"{client_field}[{i}].name")
        box.client.add(tool.name)
        box.definitions.append(_definition(tool.name, tool.description, tool.parameters))
    return box


def _check_rag_args(args: dict[str, Any], where: str) -> None:
    """``builtin::rag`` args are used on every turn: a bad one is a 400 when the agent is made."""
    ids = args.get("vector_db_ids")
    if ids is not None and not isinstance(ids, str) and not (
        isinstance(ids, list) and all(isinstance(i, str) and i for i in ids)
    ):
        raise BadRequestError("must be a list of vector DB ids", field=f"{where}.vector_db_ids")
    if args.get("query_config") is not None:
        try:
            RAGQueryConfig.model_validate(args["query_config"])
        except ValidationError as exc:
            raise invalid_field(exc, f"{where}.query_config") from None
