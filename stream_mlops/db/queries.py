"""Named SQL from the features' ``*.sql`` files: SQL lives in .sql files next to the code
that uses it, Python refers to it by name (names are unique across the package)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_COMMENT = re.compile(r"--.*$")  # our SQL has no "--" inside string literals


@cache
def _all() -> dict[str, str]:
    out: dict[str, str] = {}
    package = Path(__file__).resolve().parent.parent
    # sql/ holds the ordered migrations, which are applied whole, not named.
    for path in sorted(p for p in package.glob("*/*.sql") if p.parent.name != "sql"):
        parts = _NAME.split(path.read_text())
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in out:
                raise ValueError(f"query {name!r} is defined twice "
                                 f"({path.parent.name}/{path.name})")
            out[name] = _clean(body)
    return out


def _clean(body: str) -> str:
    # Comments and indentation stay in the file: psycopg only caches the parsing of
    # statements shorter than 4 kB, and the per-batch statement is close to that.
    lines = (_COMMENT.sub("", line).strip() for line in body.splitlines())
    return "\n".join(line for line in lines if line).rstrip(";")


def q(name: str) -> str:
    """The query called ``name``; KeyError names a query that does not exist."""
    return _all()[name]
