"""Synthetic AI traffic: seeded, reproducible requests for the demo, tests and benchmarks.

Several functions and models with lognormal latencies, token counts, confidence scores,
query lengths, a 2 % background error rate, two variants, blue/green slots and several
tenants. A named scenario changes one thing at ``change_after`` seconds (and back at
``end_after``, if given), so that each detector has something real to find.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stream_mlops.client.logger import LoggerStats, RequestLogger
from stream_mlops.experiments.assignment import assign

# (function, model, median latency ms, log-sd of latency)
FUNCTIONS = (
    ("summarize", "gpt-4o-mini", 700.0, 0.5),
    ("classify-ticket", "claude-3-5-haiku", 400.0, 0.4),
    ("generate-insight", "gpt-4o", 1600.0, 0.6),
    ("extract-entities", "gemini-2.0-flash", 500.0, 0.5),
)
ERROR_TYPES = ("Timeout", "RateLimitError", "InvalidResponse")
SCENARIOS = {
    "steady": "nothing changes",
    "latency_regression": "latency x3 for every function",
    "error_burst": "error rate 2 % -> 20 %",
    "input_drift": "query length (and prompt tokens) x3",
    "cost_spike": "'summarize' prompts and answers 10x longer: 10x its cost",
    "treatment_better": "treatment: error rate 1 % vs 3 %, latency -20 %",
    "treatment_worse": "treatment: error rate 6 % vs 2 %, latency +30 %",
    "bad_deployment": "the green slot: 30 % errors and 2x latency",
}
BASE_ERROR_RATE = 0.02


@dataclass(frozen=True)
class Scenario:
    name: str = "steady"
    change_after: float = 60.0
    end_after: float | None = None

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}; one of: {', '.join(SCENARIOS)}")

    def active(self, elapsed: float) -> bool:
        return self.name != "steady" and elapsed >= self.change_after and (
            self.end_after is None or elapsed < self.end_after)


@dataclass(frozen=True)
class ExperimentArms:
    """Route one function's traffic through an experiment: each request comes from one of
    ``users`` simulated users, assigned to a variant by the experiment's seed."""

    experiment_id: str
    tenant_id: str
    function_name: str
    seed: str
    arms: tuple[tuple[str, float], ...]
    users: int = 100_000


class Traffic:
    """An endless, seeded stream of request fields (keyword arguments of ``log()``)."""

    def __init__(self, seed: int = 0, scenario: Scenario | None = None, tenants: int = 3,
                 experiment: ExperimentArms | None = None,
                 route: Callable[[str, str, str], tuple[str, str | None]] | None = None):
        self.rng = random.Random(seed)
        self.scenario = scenario or Scenario()
        self.tenants = tenants
        self.experiment = experiment
        # (function, unit, tenant) -> (slot, version), e.g. client.Router.route: the slot
        # and version of each request come from the deployment in place.
        self.route = route

    def request(self, elapsed: float) -> dict[str, Any]:
        r, on = self.rng, self.scenario.active(elapsed)
        name = self.scenario.name if on else "steady"
        function, model, median, sd = FUNCTIONS[r.randrange(len(FUNCTIONS))]
        variant = "treatment" if r.random() < 0.5 else "control"
        exp = self.experiment
        in_experiment = exp is not None and function == exp.function_name
        if exp is not None and in_experiment:
            variant = assign(exp.seed, f"user-{r.randrange(exp.users)}", exp.arms)
        slot = "green" if r.random() < 0.1 else "blue"
        tenant, version = None, None
        if self.route is not None:  # (without one the seeded stream is as before)
            tenant = self._tenant(in_experiment)
            slot, version = self.route(function, f"user-{r.randrange(100_000)}", tenant)
        error_rate, latency_factor, query_factor, prompt_factor = BASE_ERROR_RATE, 1.0, 1.0, 1
        if name == "latency_regression":
            latency_factor = 3.0
        elif name == "error_burst":
            error_rate = 0.20
        elif name == "input_drift":
            query_factor = 3.0
        elif name == "cost_spike" and function == "summarize":
            prompt_factor = 10
        elif name in ("treatment_better", "treatment_worse"):
            better = name == "treatment_better"
            if variant == "treatment":
                error_rate, latency_factor = (0.01, 0.8) if better else (0.06, 1.3)
            else:
                error_rate = 0.03 if better else 0.02
        elif name == "bad_deployment" and slot == "green":
            error_rate, latency_factor = 0.30, 2.0
        query_length = int(r.lognormvariate(math.log(400 * query_factor), 0.5))
        prompt = (query_length // 4 + r.randint(50, 400)) * prompt_factor
        error = r.random() < error_rate
        return {
            "tenant_id": tenant if tenant is not None else self._tenant(in_experiment),
            **({"model_version": version} if version is not None else {}),
            **({"experiment_id": exp.experiment_id} if exp is not None and in_experiment
               else {}),
            "function_name": function, "model": model, "variant": variant,
            "deployment_slot": slot,
            "latency_ms": round(median * latency_factor * r.lognormvariate(0, sd), 2),
            "prompt_tokens": prompt,
            "cached_tokens": prompt // 2 if r.random() < 0.3 else 0,
            "completion_tokens": 0 if error else
            int(r.lognormvariate(math.log(150), 0.6)) * prompt_factor,
            "confidence": None if error else round(min(1.0, r.betavariate(8, 2)), 4),
            "query_length": query_length,
            "status": "error" if error else "success",
            "error_type": r.choice(ERROR_TYPES) if error else None,
        }

    def _tenant(self, in_experiment: bool) -> str:
        exp = self.experiment
        return (exp.tenant_id if exp is not None and in_experiment
                else f"tenant-{self.rng.randrange(self.tenants)}")

    def requests(self, n: int, elapsed: float = 0.0) -> Iterator[dict[str, Any]]:
        for _ in range(n):
            yield self.request(elapsed)


def run(url: str, rate: float, stop: threading.Event, *, seed: int = 0,
        scenario: Scenario | None = None, duration: float | None = None,
        counter: list[int] | None = None, tick_seconds: float = 0.1,
        experiment: ExperimentArms | None = None,
        route: Callable[[str, str, str], tuple[str, str | None]] | None = None) -> LoggerStats:
    """Send about ``rate`` requests per second through the client until ``stop`` is set
    (or ``duration`` passes); returns the client's counts (sent, stored, lost)."""
    traffic = Traffic(seed, scenario, experiment=experiment, route=route)
    logger = RequestLogger(url, flush_interval=tick_seconds)
    start, sent = time.monotonic(), 0
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - start
            if duration is not None and elapsed >= duration:
                break
            for fields in traffic.requests(int(elapsed * rate) - sent, elapsed):
                logger.log(**fields)
                sent += 1
            if counter is not None:
                counter[0] = sent
            stop.wait(tick_seconds)
    finally:
        logger.close(timeout=10)
    return logger.stats
