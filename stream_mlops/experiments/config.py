"""What an experiment is: its arms, metrics and error rates, validated (pure, no I/O)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from stream_mlops.errors import MlopsError
from stream_mlops.labels import label_text

Metric = Literal["error_rate", "latency", "confidence", "cost_per_request",
                 "cost_per_successful_request"]
METRICS: tuple[Metric, ...] = ("error_rate", "latency", "confidence", "cost_per_request",
                               "cost_per_successful_request")
# Which way is better for each metric: only confidence is better when higher.
HIGHER_IS_BETTER: dict[str, bool] = {m: m == "confidence" for m in METRICS}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
# A smaller positive share never collects enough traffic to test (and underflows).
MIN_SHARE = 1e-4
# Pre-treatment covariates the mean metrics' tests can be adjusted for (CUPED).
COVARIATES = ("query_length",)


class ExperimentError(MlopsError, ValueError):
    """An experiment that cannot be created or changed; the message says why."""


@dataclass(frozen=True)
class Variant:
    """One arm: its share of traffic and what it means (model, prompt, parameters)."""

    name: str
    weight: float = 0.5
    model: str | None = None
    prompt_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


@dataclass(frozen=True)
class ExperimentSpec:
    """An experiment as created: ``variants[0]`` is the control.

    Examples
    --------
    >>> spec = ExperimentSpec("new-prompt", "summarize", primary_metric="latency",
    ...                       guardrails=("error_rate",))
    >>> [v.name for v in spec.variants], spec.primary_metric
    (['control', 'treatment'], 'latency')
    >>> ExperimentSpec("x", "f", primary_metric="speed")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    stream_mlops.experiments.config.ExperimentError: primary metric must be one of error_rate, ...
    """

    name: str
    function_name: str
    variants: tuple[Variant, ...] = (Variant("control"), Variant("treatment"))
    primary_metric: str = "error_rate"
    guardrails: tuple[str, ...] = ()
    alpha: float = 0.05
    # Smallest difference of interest in the primary metric's units (0.02: two points of
    # error rate; 100: 100 ms); tunes the test's mixture. None: the test's default.
    min_effect: float | None = None
    min_samples: int = 100  # per arm, before any decision
    auto_stop: bool = False
    tenant_id: str = "default"
    description: str | None = None
    # The tests of mean metrics (latency, cost, confidence) compare regression-adjusted
    # means (CUPED): the request's query length explains part of its latency and cost
    # whichever arm serves it. None: plain means (for a variant that changes the query).
    covariate: str | None = "query_length"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ExperimentError("name must be 1-100 letters, digits or _.:- (starting with "
                                  f"a letter or digit); got {self.name!r}")
        for label, value in (("function_name", self.function_name),
                             ("tenant_id", self.tenant_id)):
            try:  # the rows it follows must be able to carry the same labels
                label_text(label, value, required=True)
            except ValueError as exc:
                raise ExperimentError(str(exc)) from None
        self._check_metrics()
        self._check_variants()
        if not 0 < self.alpha <= 0.5:
            raise ExperimentError(f"alpha must be in (0, 0.5], got {self.alpha}")
        if self.min_effect is not None and not (math.isfinite(self.min_effect)
                                                and self.min_effect > 0):
            raise ExperimentError(f"min_effect must be > 0, got {self.min_effect}")
        if self.covariate is not None and self.covariate not in COVARIATES:
            raise ExperimentError(f"covariate must be one of {', '.join(COVARIATES)} or none; "
                                  f"got {self.covariate!r}")
        if self.min_samples < 10:
            raise ExperimentError(f"min_samples must be at least 10, got {self.min_samples}")

    def _check_metrics(self) -> None:
        if self.primary_metric not in METRICS:
            raise ExperimentError(f"primary metric must be one of {', '.join(METRICS)}; got "
                                  f"{self.primary_metric!r}")
        for i, g in enumerate(self.guardrails):
            if g not in METRICS:
                raise ExperimentError(f"guardrail must be one of {', '.join(METRICS)}; got {g!r}")
            if g == self.primary_metric or g in self.guardrails[:i]:
                raise ExperimentError(f"guardrail {g} is " + (
                    "the primary metric already" if g == self.primary_metric
                    else "listed twice"))

    def _check_variants(self) -> None:
        if not 2 <= len(self.variants) <= 10:
            raise ExperimentError(f"an experiment needs 2 to 10 variants, got "
                                  f"{len(self.variants)}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
            raise ExperimentError(f"variant names must be distinct identifiers; got {names}")
        weights = [v.weight for v in self.variants]
        if any(not (math.isfinite(w) and w >= 0) for w in weights) or max(weights) <= 0:
            raise ExperimentError("variant weights must be finite, >= 0 and not all 0")
        top = max(weights)
        total = sum(w / top for w in weights)
        small = [v.name for v in self.variants
                 if v.weight > 0 and v.weight / top / total < MIN_SHARE]
        if small:
            raise ExperimentError(
                f"variant {small[0]} would get less than {MIN_SHARE:.2%} of the traffic "
                "(weights are relative: 0.5/0.5, 1/1 and 50/50 are the same split)")

    @property
    def control(self) -> str:
        return self.variants[0].name

    def variants_json(self) -> str:
        return json.dumps([v.as_json() for v in self.variants])


def parse_variants(text: str) -> tuple[Variant, ...]:
    """Variants from the command line: JSON (a list of objects) or ``name:weight[:model]``
    items separated by commas.

    Examples
    --------
    >>> [(v.name, v.weight, v.model) for v in parse_variants("a:0.9:gpt-4o-mini,b:0.1:gpt-4o")]
    [('a', 0.9, 'gpt-4o-mini'), ('b', 0.1, 'gpt-4o')]
    """
    text = text.strip()
    if text.startswith(("[", "{")):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExperimentError(f"variants: not valid JSON ({exc.msg})") from None
        if not isinstance(items, list):
            raise ExperimentError("variants: expected a JSON list of objects such as "
                                  '[{"name": "control", "weight": 0.5}, ...]')
        return tuple(variant_from_json(v, i) for i, v in enumerate(items))
    out = []
    for item in text.split(","):
        parts = [p.strip() for p in item.split(":", 2)]
        try:
            weight = float(parts[1]) if len(parts) > 1 else 1.0
        except ValueError:
            raise ExperimentError(f"variant {item!r}: weight must be a number") from None
        out.append(Variant(parts[0], weight, parts[2] if len(parts) > 2 else None))
    return tuple(out)


def variant_from_json(v: Any, i: int = 0) -> Variant:
    if not isinstance(v, Mapping) or not isinstance(v.get("name"), str):
        raise ExperimentError(f"variant {i}: expected an object with a name")
    weight = v.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise ExperimentError(f"variant {v['name']}: weight must be a number")
    params = v.get("params") or {}
    if not isinstance(params, Mapping):
        raise ExperimentError(f"variant {v['name']}: params must be an object")
    return Variant(v["name"], float(weight), v.get("model"), v.get("prompt_version"),
                   dict(params))


def variants_from_row(value: Sequence[Any]) -> tuple[Variant, ...]:
    return tuple(variant_from_json(v, i) for i, v in enumerate(value))
