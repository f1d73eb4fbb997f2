"""Bedrock's errors as the stack's, consistent with the HTTP adapters (providers/utils/http.py):
rate limits and the service's own failures are 502 (504 for a timeout) after boto3's retries;
a ValidationException is the caller's request, so a 400, naming our field when Bedrock names its."""

from __future__ import annotations

import re
from typing import Any

from providers.utils.http import UpstreamNotFoundError
from stack.errors import (
    BadRequestError,
    ConflictError,
    StackError,
    UpstreamError,
    UpstreamTimeoutError,
)

_RATE_LIMITED = frozenset({"ThrottlingException", "ModelNotReadyException", "ServiceQuotaExceededException",
                           "throttlingException", "serviceQuotaExceededException"})
_CREDENTIALS = frozenset({"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
                          "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationTokenException",
                          "accessDeniedException"})
_TIMEOUT = frozenset({"ModelTimeoutException", "modelTimeoutException"})

#: Bedrock's request paths (as its validation messages name them) -> the OpenAI request's fields
_FIELDS = (
    ("inferenceConfig.maxTokens", "max_tokens"),
    ("inferenceConfig.temperature", "temperature"),
    ("inferenceConfig.topP", "top_p"),
    ("inferenceConfig.stopSequences", "stop"),
    ("toolConfig.toolChoice", "tool_choice"),
    ("toolConfig", "tools"),
    ("messages", "messages"),
    ("system", "messages"),
    ("modelId", "model"),
    ("guardrailVersion", "params.guardrailVersion"),
    ("guardrailIdentifier", "shield_id"),
    ("content", "messages"),
)
_PATH = re.compile(r"at '([A-Za-z0-9_.\[\]]+)'")


def validation_field(message: str) -> str | None:
    """Our request field for the path a ValidationException names ("... at 'inferenceConfig.topP' ..."),
    or None when it names none (Bedrock's free-text messages are not guessed at)."""
    found = _PATH.search(message)
    if found is None:
        return None
    for theirs, ours in _FIELDS:
        if found.group(1).startswith(theirs):
            return ours
    return None


def stack_error(exc: Exception, where: str) -> StackError:
    """The stack error for a botocore exception raised by ``where`` (an operation and what it was for)."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        return _client_error(exc.response, where)
    if isinstance(exc, ParamValidationError):
        return BadRequestError(f"Bedrock {where} refused the request before sending it: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return UpstreamError(f"Bedrock {where}: no usable AWS credentials ({exc}); set aws_access_key_id and "
                             "aws_secret_access_key, a profile_name, or send them in X-LlamaStack-Provider-Data")
    if isinstance(exc, ReadTimeoutError):
        return UpstreamTimeoutError(f"Bedrock {where} did not answer in time: {exc}")
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return UpstreamError(f"Bedrock {where} is unreachable: {exc}")
    return UpstreamError(f"Bedrock {where} failed: {type(exc).__name__}: {exc}")


def _client_error(response: dict[str, Any], where: str) -> StackError:
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    said = f"Bedrock {where} answered {code or status}: {message}"
    if code in _RATE_LIMITED or status == 429:
        return UpstreamError(f"Bedrock {where} is rate-limiting ({code or 429}): {message}")
    if code in _CREDENTIALS or status in (401, 403):
        return UpstreamError(f"Bedrock {where} rejected the AWS credentials ({code or status}): {message}")
    if code in _TIMEOUT or status in (408, 504):
        return UpstreamTimeoutError(said)
    if code.lower() == "validationexception":
        return BadRequestError(said, field=validation_field(message))
    if code == "ResourceNotFoundException" or status == 404:
        return UpstreamNotFoundError(said)
    if code == "ConflictException" or status == 409:
        return ConflictError(said)
    if 400 <= status < 500 and not code.lower().startswith("model"):
        return BadRequestError(said)
    return UpstreamError(said)  # ServiceUnavailable, InternalServer, ModelError, ModelStreamError ...
