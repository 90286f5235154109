"""Named SQL from ``queries.sql``: SQL lives in .sql files, Python refers to it by name."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def _all() -> dict[str, str]:
    text = (Path(__file__).with_name("queries.sql")).read_text()
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        # Trailing comment lines belong to the next query's preamble.
        lines = body.strip().splitlines()
        while lines and lines[-1].lstrip().startswith("--"):
            lines.pop()
        out[name] = "\n".join(lines).strip().rstrip(";")
    return out


def q(name: str) -> str:
    """The query called ``name``; KeyError names a query that does not exist."""
    return _all()[name]
