"""Checks for the text labels of a request (tenant, function, model, ...), shared by the
client, experiments, price maps and the processor: what the database and /metrics accept."""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls, line/paragraph separators and bidirectional controls: what would
# break a log line, an e-mail header or a terminal, or make a name read as another one
# (mirrored by mlops.is_safe_label in SQL).
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e"
                    "\u2066-\u2069]")
MAX_LENGTH = {"tenant_id": 100, "function_name": 200, "model": 200, "model_version": 100,
              "variant": 100, "deployment_slot": 50, "request_id": 200, "error_type": 200,
              "provider": 50, "operation": 50}


def label_text(name: str, value: Any, *, required: bool = False) -> str | None:
    """``value`` if it is a valid ``name`` label (None when absent and not required);
    ValueError naming the label otherwise.

    Examples
    --------
    >>> label_text("model", "gpt-4o")
    'gpt-4o'
    >>> label_text("model", "gpt\x1b[31m")
    Traceback (most recent call last):
    ...
    ValueError: model must not contain control characters (...)
    >>> label_text("function_name", "summarize\u2028")
    Traceback (most recent call last):
    ...
    ValueError: function_name must not contain control characters (...)
    """
    if value is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{name} is required")
    if len(value) > MAX_LENGTH[name]:
        raise ValueError(f"{name} is longer than {MAX_LENGTH[name]} characters")
    if UNSAFE.search(value):
        raise ValueError(f"{name} must not contain control characters (C0/C1 controls, "
                         "line separators or bidirectional controls)")
    return value


def printable(text: str) -> str:
    r"""``text`` with control, line-separator and bidirectional characters shown as
    escapes: names and messages come from tenants' rows, and must neither break a header
    nor make a line read as something else.

    Examples
    --------
    >>> printable("High error rate in sum\u2028marize\x1b[31m")
    'High error rate in sum\\u2028marize\\x1b[31m'
    """
    return UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
