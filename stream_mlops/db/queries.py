"""Named SQL from ``queries.sql``: SQL lives in .sql files, Python refers to it by name."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_COMMENT = re.compile(r"--.*$")  # our SQL has no "--" inside string literals


@cache
def _all() -> dict[str, str]:
    text = (Path(__file__).with_name("queries.sql")).read_text()
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        # Comments and indentation stay in the file: psycopg only caches the parsing of
        # statements shorter than 4 kB, and the per-batch statement is close to that.
        lines = (_COMMENT.sub("", line).strip() for line in body.splitlines())
        out[name] = "\n".join(line for line in lines if line).rstrip(";")
    return out


def q(name: str) -> str:
    """The query called ``name``; KeyError names a query that does not exist."""
    return _all()[name]
