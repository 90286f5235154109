"""Token usage from the response objects of LLM SDKs, in one convention.

The table stores ``prompt_tokens`` *including* cached (cache-read) and cache-write tokens,
as OpenAI reports them. Anthropic reports ``input_tokens`` *excluding* cache reads and
cache writes, so those are added back, and the writes are kept apart because they cost
more than plain input. Works on SDK objects and on plain dicts alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value) if math.isfinite(value) else 0


def usage_from(response: Any) -> Usage | None:
    """Token usage of an OpenAI (chat or responses) or Anthropic response, or None.

    Examples
    --------
    >>> usage_from({"usage": {"prompt_tokens": 120, "completion_tokens": 30,
    ...             "prompt_tokens_details": {"cached_tokens": 100}}})
    Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=100, cache_write_tokens=0)
    >>> usage_from({"usage": {"input_tokens": 20, "output_tokens": 30,
    ...             "cache_read_input_tokens": 100, "cache_creation_input_tokens": 50}})
    Usage(prompt_tokens=170, completion_tokens=30, cached_tokens=100, cache_write_tokens=50)
    """
    usage = _get(response, "usage")
    if usage is None:
        return None
    if _get(usage, "prompt_tokens") is not None:  # OpenAI chat completions
        details = _get(usage, "prompt_tokens_details")
        return Usage(_int(_get(usage, "prompt_tokens")), _int(_get(usage, "completion_tokens")),
                     _int(_get(details, "cached_tokens")))
    if _get(usage, "input_tokens_details") is not None:  # OpenAI responses: includes cached
        details = _get(usage, "input_tokens_details")
        return Usage(_int(_get(usage, "input_tokens")), _int(_get(usage, "output_tokens")),
                     _int(_get(details, "cached_tokens")))
    if _get(usage, "input_tokens") is not None:  # Anthropic: excludes cache reads and writes
        read = _int(_get(usage, "cache_read_input_tokens"))
        written = _int(_get(usage, "cache_creation_input_tokens"))
        return Usage(_int(_get(usage, "input_tokens")) + read + written,
                     _int(_get(usage, "output_tokens")), read, written)
    return None
