"""The human-written part of a model card: one YAML spec file per function.

Every section is optional; a missing one shows on the card as "not provided", never
invented. Unknown sections and wrong types are errors naming the file, the line and the
field (:class:`SpecError`)::

    function: summarize            # optional: must match the function it is loaded for
    title: Support-ticket summarizer
    description: Summarizes a ticket thread into three sentences for the agent.
    task: summarization            # Hugging Face task id (default text-generation)
    license: apache-2.0
    owners: [ml-platform@example.com]
    intended_use: ...
    out_of_scope_uses: ...
    training_data: ...
    evaluation_data: ...
    evaluation_method: ...
    ethical_considerations: ...
    limitations: ...
    tags: [support, llm]
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream_mlops.errors import MlopsError

SECTIONS = ("intended_use", "out_of_scope_uses", "training_data", "evaluation_data",
            "evaluation_method", "ethical_considerations", "limitations")


class SpecError(MlopsError):
    """A spec file that cannot be used; the message names the file, line and field."""


class Spec(BaseModel):
    """A function's card spec (every field optional; see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    function: str | None = Field(default=None, min_length=1, max_length=200)
    title: str | None = Field(default=None, max_length=300)
    description: str | None = None
    task: str = Field(default="text-generation", pattern=r"^[a-z0-9][a-z0-9-]{0,80}$")
    license: str | None = Field(default=None, max_length=100)
    owners: list[str] = Field(default_factory=list)
    intended_use: str | None = None
    out_of_scope_uses: str | None = None
    training_data: str | None = None
    evaluation_data: str | None = None
    evaluation_method: str | None = None
    ethical_considerations: str | None = None
    limitations: str | None = None
    tags: list[str] = Field(default_factory=list)


def _lines(node: yaml.Node) -> dict[tuple[str | int, ...], int]:
    """Line (1-based) of every key and item of a composed YAML document, by path."""
    out: dict[tuple[str | int, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[str | int, ...]) -> None:
        out[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*path, str(k.value))
                walk(v, key)
                out[key] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    walk(node, ())
    return out


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Validate a spec's YAML text; ``source`` names it in errors.

    Examples
    --------
    >>> parse_spec("intended_use: triage\\nlicense: mit").intended_use
    'triage'
    >>> parse_spec("intended_use: x\\nlimitatons: y", "f.yaml")
    Traceback (most recent call last):
    ...
    stream_mlops.cards.spec.SpecError: f.yaml, line 2: limitatons: unknown section ...
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}, line 1: a spec is a mapping of sections "
                        f"(intended_use: ...), not a {type(data).__name__}")
    lines = _lines(node) if node is not None else {}
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), 1)
        field = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            msg = (f"unknown section (known: {', '.join(Spec.model_fields)})")
        else:
            msg = f"{err['msg']} (got {_short(err.get('input'))})"
        raise SpecError(f"{source}, line {line}: {field}: {msg}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_spec(path: str, text: str | None = None) -> Spec:
    """A spec file (its ``text`` when already read)."""
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise SpecError(f"{path}: not UTF-8 text") from None
    return parse_spec(text, path)
