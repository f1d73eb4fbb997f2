"""Llama model ids as Ollama tags, checked against what Ollama has pulled.

The table is llama-stack 0.1.0's (``remote/inference/ollama/ollama.py``): the
first tag of each entry is the one to pull, the others are accepted too.
"""

from __future__ import annotations

import asyncio
import json
import logging

from providers.utils.http import UpstreamClient
from providers.utils.inference.model_aliases import AliasTable, ModelAlias, naming_field
from stack.apis.models import Model
from stack.errors import BadRequestError, UpstreamError

log = logging.getLogger(__name__)

OLLAMA_ALIASES = AliasTable([
    ModelAlias("meta-llama/Llama-3.1-8B-Instruct", ("llama3.1:8b-instruct-fp16", "llama3.1:8b")),
    ModelAlias("meta-llama/Llama-3.1-70B-Instruct", ("llama3.1:70b-instruct-fp16", "llama3.1:70b")),
    ModelAlias("meta-llama/Llama-3.1-405B-Instruct-FP8", ("llama3.1:405b-instruct-fp16", "llama3.1:405b")),
    ModelAlias("meta-llama/Llama-3.2-1B-Instruct", ("llama3.2:1b-instruct-fp16", "llama3.2:1b")),
    ModelAlias("meta-llama/Llama-3.2-3B-Instruct", ("llama3.2:3b-instruct-fp16", "llama3.2:3b")),
    ModelAlias("meta-llama/Llama-3.2-11B-Vision-Instruct", ("llama3.2-vision:11b-instruct-fp16", "llama3.2-vision")),
    ModelAlias("meta-llama/Llama-3.2-90B-Vision-Instruct", ("llama3.2-vision:90b-instruct-fp16", "llama3.2-vision:90b")),
    ModelAlias("meta-llama/Llama-3.3-70B-Instruct", ("llama3.3:70b",)),
    # Ollama has no fp16 builds of Llama Guard: its default tags stand in
    ModelAlias("meta-llama/Llama-Guard-3-8B", ("llama-guard3:8b",)),
    ModelAlias("meta-llama/Llama-Guard-3-1B", ("llama-guard3:1b",)),
])

#: bound on asking Ollama for its tags, retries included, so start-up never hangs on it
TAGS_TIMEOUT = 5.0


def full_tag(name: str) -> str:
    """Ollama's reading of a name: without a tag it means ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


async def pulled_tags(client: UpstreamClient) -> set[str]:
    """The tags Ollama has pulled (GET /api/tags; /api/ps would list only the loaded ones)."""
    try:
        async with asyncio.timeout(TAGS_TIMEOUT):
            raw = await client.request_bytes("GET", "/api/tags", what="the pulled models")
    except TimeoutError:
        raise UpstreamError(f"upstream {client.base_url}/api/tags did not list the models within {TAGS_TIMEOUT}s") from None
    try:
        models = json.loads(raw)["models"]
        return {full_tag(m.get("model") or m["name"]) for m in models}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UpstreamError(f"upstream {client.base_url}/api/tags sent an unexpected answer: {raw[:200]!r}") from None


async def resolve_model(client: UpstreamClient, model: Model) -> Model:
    """``model`` with a Llama id replaced by the Ollama tag it has pulled.

    Any other name is Ollama's own and passes as is (users pull their own
    models). A Llama id whose tags Ollama lacks is a 400 naming the tag to
    pull; Ollama unreachable only warns, so a stack can start before Ollama.
    """
    alias = OLLAMA_ALIASES.get(model.provider_resource_id)
    if alias is None:
        return model
    try:
        pulled = await pulled_tags(client)
    except UpstreamError as exc:
        log.warning("cannot check that Ollama has %s for model %r, using it unchecked: %s",
                    alias.preferred, model.identifier, exc)
        return model.model_copy(update={"provider_resource_id": alias.preferred})
    for tag in alias.provider_model_ids:
        if full_tag(tag) in pulled:
            return model.model_copy(update={"provider_resource_id": tag})
    raise BadRequestError(
        f"Ollama at {client.base_url} has not pulled {alias.llama_model} "
        f"(as {' or '.join(alias.provider_model_ids)}); run `ollama pull {alias.preferred}`",
        field=naming_field(model),
    )
