"""The ``inline::llama-guard`` safety provider: asks a Llama Guard model, through
the stack's inference API, whether the last message of a conversation is safe."""

from __future__ import annotations

from typing import Any

from stack.apis.inference import GreedySamplingStrategy, Message, SamplingParams, UserMessage
from stack.apis.models import ModelType
from stack.apis.safety import RunShieldResponse, SafetyViolation, ViolationLevel
from stack.apis.shields import Shield
from stack.errors import BadRequestError, NotFoundError, UpstreamError

from providers.utils.messages import message_text
from stack.apis._content import content_text
from ._prompt import CATEGORIES, ROLE_LABELS, build_prompt, parse_verdict
from .config import LlamaGuardConfig

USER_MESSAGE = "I can't answer that. Can I help with something else?"
#: room for "unsafe" and every category code; the verdict needs no more
MAX_TOKENS = 64


class LlamaGuardSafety:
    """A shield's ``provider_resource_id`` is the guard model's ``model_id``
    (the router passes it as ``shield_id``); shields carry no other state."""

    def __init__(self, config: LlamaGuardConfig, *, inference: Any, models: Any = None) -> None:
        self.config = config
        self.inference = inference
        self.models = models
        self.categories = config.checked_categories()

    async def register_shield(self, shield: Shield) -> Shield:
        if shield.params:
            raise BadRequestError("llama-guard shields take no params; set excluded_categories in the provider "
                                  "config", field="params")
        if self.models is None:
            return shield
        try:
            model = await self.models.get(shield.provider_resource_id)
        except NotFoundError:
            llms = sorted(m.identifier for m in await self.models.list() if m.model_type == ModelType.llm)
            raise BadRequestError(
                f"{shield.provider_resource_id!r} is not a registered model; a llama-guard shield names the guard "
                f"LLM (registered LLMs: {', '.join(map(repr, llms)) or 'none'})", field="provider_shield_id") from None
        if model.model_type != ModelType.llm:
            raise BadRequestError(f"model {model.identifier!r} is an {model.model_type.value} model; the guard must "
                                  "be an LLM", field="provider_shield_id")
        return shield

    async def run_shield(self, shield_id: str, messages: list[Message], params: dict[str, Any] | None = None
                         ) -> RunShieldResponse:
        if params:
            raise BadRequestError(f"llama-guard takes no params (got {sorted(params)})", field="params")
        # the model reads user and assistant turns; system prompts and tool output are not the conversation
        turns = [(ROLE_LABELS[m.role], message_text(m)) for m in messages if m.role in ROLE_LABELS]
        if not turns:
            raise BadRequestError("needs at least one user or assistant message", field="messages")
        response = await self.inference.chat_completion(
            model_id=shield_id,
            messages=[UserMessage(content=build_prompt(turns, self.categories))],
            sampling_params=SamplingParams(strategy=GreedySamplingStrategy(), max_tokens=MAX_TOKENS),
            stream=False,
        )
        reply = content_text(response.completion_message.content, "\n")
        verdict = parse_verdict(reply)
        if verdict is None:
            raise UpstreamError(f"guard model {shield_id!r} did not answer 'safe' or 'unsafe' with categories "
                                f"S1..S14; it said: {reply[:200]!r}")
        if verdict.safe:
            return RunShieldResponse()
        codes = [code for code in verdict.codes if code not in self.config.excluded_categories]
        if verdict.codes and not codes:
            return RunShieldResponse()  # only categories this provider does not check
        return RunShieldResponse(violation=SafetyViolation(
            violation_level=ViolationLevel.error,
            user_message=USER_MESSAGE,
            metadata={
                "violation_type": ",".join(codes) if codes else "unspecified",
                "categories": {code: CATEGORIES[code] for code in codes},
            },
        ))
