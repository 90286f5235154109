"""Token usage, model and provider from the responses of today's LLM SDKs, in one convention.

The table stores ``prompt_tokens`` *including* cache reads (``cached_tokens``) and cache
writes (``cache_write_tokens``, of which ``cache_write_1h_tokens`` were written for an
hour), as OpenAI reports them; ``completion_tokens`` include reasoning ("thinking")
tokens, which are billed as output. Read here, from SDK objects or their JSON alike:

* OpenAI chat completions (also the last chunk of a stream with usage, and embeddings):
  ``usage.prompt_tokens``, ``prompt_tokens_details.cached_tokens`` and
  ``.cache_write_tokens``; ``completion_tokens`` already include reasoning tokens.
* OpenAI Responses: ``usage.input_tokens`` with ``input_tokens_details`` likewise.
* Anthropic messages: ``input_tokens`` *exclude* cache reads and writes, so both are added
  back; ``cache_creation`` splits writes into 5-minute and 1-hour ones; ``service_tier``.
* Google Gemini: ``usage_metadata.prompt_token_count`` (cached content included) plus
  ``tool_use_prompt_token_count``; output is ``candidates_token_count`` plus
  ``thoughts_token_count``.
* LiteLLM and other OpenAI-compatible dicts: as OpenAI chat.

A usage that is there but wrong (a count that is negative, fractional or not a number, a
required count that is None) raises :class:`UsageError` naming the field: a guessed 0
would price the request at $0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stream_mlops.errors import MlopsError


class UsageError(MlopsError, ValueError):
    """A response's usage that cannot be read; the message names the field."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    service_tier: str | None = None


@dataclass(frozen=True)
class Response:
    """What a response says about itself: the model that answered, the provider (an
    OpenTelemetry ``gen_ai.provider.name``) and the operation (``gen_ai.operation.name``)."""

    model: str | None = None
    provider: str | None = None
    operation: str | None = None


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, path: str, *, required: bool = False) -> int:
    """A token count at a dotted path; 0 when an optional part is absent."""
    value = obj
    for part in path.split("."):
        value = _get(value, part)
    if value is None:
        if required:
            raise UsageError(f"usage.{path} is missing or None: the request's tokens are "
                             "unknown")
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"usage.{path} must be a whole number of tokens, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise UsageError(f"usage.{path} must be a whole number of tokens >= 0, got {value!r}")
    return int(value)


def _openai(usage: Any, inp: str, out: str, details: str) -> Usage:
    return Usage(_count(usage, inp, required=True), _count(usage, out),
                 _count(usage, f"{details}.cached_tokens"),
                 _count(usage, f"{details}.cache_write_tokens"))


def _anthropic(usage: Any) -> Usage:
    read = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    split = _get(usage, "cache_creation")
    hour = _count(usage, "cache_creation.ephemeral_1h_input_tokens")
    if split is not None:
        written = max(written, hour + _count(usage, "cache_creation.ephemeral_5m_input_tokens"))
    tier = _get(usage, "service_tier")
    return Usage(_count(usage, "input_tokens", required=True) + read + written,
                 _count(usage, "output_tokens", required=True), read, written, hour,
                 tier if isinstance(tier, str) else None)


def _gemini(meta: Any) -> Usage:
    prompt = _count(meta, "prompt_token_count", required=True) + _count(
        meta, "tool_use_prompt_token_count")
    return Usage(prompt, _count(meta, "candidates_token_count")
                 + _count(meta, "thoughts_token_count"),
                 _count(meta, "cached_content_token_count"))


def usage_from(response: Any) -> Usage | None:
    """Token usage of an OpenAI, Anthropic, Gemini or OpenAI-compatible response; None
    when it carries none (a stream chunk before the last).

    Examples
    --------
    >>> u = usage_from({"usage": {"prompt_tokens": 120, "completion_tokens": 30,
    ...                 "prompt_tokens_details": {"cached_tokens": 100}}})
    >>> u.prompt_tokens, u.completion_tokens, u.cached_tokens
    (120, 30, 100)
    >>> usage_from({"usage": {"input_tokens": 20, "output_tokens": 30,
    ...             "cache_read_input_tokens": 100, "cache_creation_input_tokens": 50,
    ...             "cache_creation": {"ephemeral_5m_input_tokens": 20,
    ...                                "ephemeral_1h_input_tokens": 30}}}).cache_write_1h_tokens
    30
    >>> usage_from({"usage_metadata": {"prompt_token_count": 50,
    ...     "candidates_token_count": 10, "thoughts_token_count": 5}}).completion_tokens
    15
    """
    meta = _get(response, "usage_metadata")
    if meta is not None:  # Gemini
        return _gemini(meta)
    usage = _get(response, "usage")
    if usage is None:
        return None
    if _get(usage, "prompt_tokens") is not None:  # OpenAI chat, embeddings, compatible
        return _openai(usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details")
    if _get(usage, "input_tokens_details") is not None:  # OpenAI Responses
        return _openai(usage, "input_tokens", "output_tokens", "input_tokens_details")
    if _get(usage, "input_tokens") is not None or _get(usage, "output_tokens") is not None:
        return _anthropic(usage)
    raise UsageError("usage has none of prompt_tokens, input_tokens or prompt_token_count: "
                     "not a usage this client can read")


_OPERATIONS = {"chat.completion": "chat", "chat.completion.chunk": "chat",
               "response": "chat", "message": "chat", "text_completion": "text_completion"}


def response_info(response: Any) -> Response:
    """Model, provider and operation of an SDK response (None where it does not say).

    Examples
    --------
    >>> response_info({"object": "chat.completion", "model": "gpt-4o-2024-08-06"})
    Response(model='gpt-4o-2024-08-06', provider=None, operation='chat')
    """
    if response is None:
        return Response()
    module = type(response).__module__.split(".")[0]
    provider = {"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini"}.get(
        module)
    model = _get(response, "model") or _get(response, "model_version")
    kind = _get(response, "object") or _get(response, "type")
    operation = _OPERATIONS.get(kind) if isinstance(kind, str) else None
    if kind == "list" and _get(_first(_get(response, "data")), "object") == "embedding":
        operation = "embeddings"
    if _get(response, "usage_metadata") is not None:
        operation = operation or "generate_content"
    return Response(model if isinstance(model, str) else None, provider, operation)


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, list | tuple) and items else None
