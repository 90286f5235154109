"""Running experiments, live: every request of an experiment updates its always-valid tests.

A monitor (see :mod:`stream_mlops.core.monitor`). Per running experiment and per treatment arm, one
:class:`~stream_mlops.stats.sequential.SequentialTest` per metric (the primary and each
guardrail) against the control (``variants[0]``), at ``alpha / (arms - 1)`` each
(Bonferroni across treatment arms), and one sequential SRM test over all arms.

Exactly once: the tests' state is stored in the experiment's ``results`` together with the
cursor it corresponds to. After a restart (or when an experiment starts or resumes), the
tracker restores that state and replays the experiment's rows consumed after that
cursor, so every consumed row is counted once, and never a row the cursor has not passed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream_mlops.core.alerts import AlertChange, AlertKey, Episodes, Severity, alert_change
from stream_mlops.core.batch import Batch
from stream_mlops.core.monitor import (
    NOTHING,
    Cursor,
    Job,
    MetricsBuilder,
    Monitor,
    Observed,
    Store,
)
from stream_mlops.core.rows import OpenAlertRow
from stream_mlops.core.series import KEY_SEPARATOR
from stream_mlops.experiments.config import HIGHER_IS_BETTER, variants_from_row
from stream_mlops.stats.sequential import SequentialTest, SRMTest, make_test

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

KIND = {"error_rate": "proportion", "latency": "mean", "confidence": "mean",
        "cost_per_request": "mean", "cost_per_successful_request": "mean"}
DECISION_VALUE = {"continue": 0, "treatment_better": 1, "treatment_worse": -1}


@dataclass(frozen=True)
class LiveExperimentRow:
    """An experiment the processor follows (``live_experiments``)."""

    id: str
    tenant_id: str
    name: str
    function_name: str
    status: str
    variants: Any  # JSON as stored: validated by variants_from_row
    primary_metric: str
    guardrails: list[str] | None
    alpha: float
    min_effect: float | None
    min_samples: int
    auto_stop: bool
    covariate: str | None
    results: Any  # JSON as stored


@dataclass(frozen=True)
class Ahead:
    """Whether a stored state counts rows the consumer has not consumed."""

    ahead: bool


@dataclass(frozen=True)
class ArmColumns:
    """An experiment's consumed rows, column-wise (``experiment_rows``)."""

    tenant_id: list[str]
    variant: list[str]
    latency_ms: list[float]
    is_error: list[bool]
    confidence: list[float]
    cost_pico: list[int]
    query_length: list[float]


@dataclass
class ArmRows:
    """One arm's rows of a batch."""

    latency_ms: F64
    is_error: B
    confidence: F64  # -1: none
    cost_pico: I64  # -1: unpriced
    query_length: F64  # -1: none

    def take(self, idx: I64 | B) -> ArmRows:
        return ArmRows(self.latency_ms[idx], self.is_error[idx], self.confidence[idx],
                       self.cost_pico[idx], self.query_length[idx])


Finite = Annotated[float, Field(allow_inf_nan=False)]
SnapshotText = Annotated[str, Field(pattern=r"^[0-9]{1,20}:[0-9]{1,20}:[0-9,]{0,4000}$")]
XidText = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoredCovariate(_Strict):
    """The covariate's moments in :meth:`SequentialTest.state` (CUPED)."""

    mean: Annotated[list[Finite], Field(min_length=2, max_length=2)]
    m2: Annotated[list[Annotated[float, Field(ge=0, allow_inf_nan=False)]],
                  Field(min_length=2, max_length=2)]
    co: Annotated[list[Finite], Field(min_length=2, max_length=2)]


class StoredTest(_Strict):
    """What :meth:`SequentialTest.state` writes."""

    kind: Literal["mean", "proportion"]
    alpha: Annotated[float, Field(gt=0, lt=1)]
    higher_is_better: bool
    min_effect: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None
    spread: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    min_samples: Annotated[int, Field(ge=2)]
    expected_n: Annotated[int, Field(ge=2)]
    n: Annotated[list[Count], Field(min_length=2, max_length=2)]
    mean: Annotated[list[Finite], Field(min_length=2, max_length=2)]
    m2: Annotated[list[Annotated[float, Field(ge=0, allow_inf_nan=False)]],
                  Field(min_length=2, max_length=2)]
    max_log_evidence: Finite
    decision: Literal["continue", "treatment_better", "treatment_worse"]
    decided_at: Count | None
    covariate: StoredCovariate | None = None


class StoredSRM(_Strict):
    """What :meth:`SRMTest.state` writes."""

    arms: Annotated[list[str], Field(min_length=2)]
    shares: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]]
    alpha: Annotated[float, Field(gt=0, lt=1)]
    concentration: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    counts: list[Count]
    max_log_bayes_factor: Finite


class StoredState(_Strict):
    """An experiment's stored state (``results.state``): what :meth:`LiveExperiment.results`
    writes, and nothing else."""

    # [frontier, window_end, xid, id] (core.monitor.Cursor), or [xid, id] from before.
    cursor: Annotated[list[SnapshotText | XidText | Count | None],
                      Field(min_length=2, max_length=4)]
    cost_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    successes: Count
    unknown_variant: Count
    foreign_tenant: Count = 0
    srm: StoredSRM | None
    tests: dict[str, dict[str, StoredTest]]


@dataclass
class LiveExperiment:
    id: str
    tenant_id: str
    name: str
    function_name: str
    arms: list[str]
    weights: list[float]
    primary: str
    guardrails: list[str]
    alpha: float
    min_effect: float | None
    min_samples: int
    auto_stop: bool
    covariate: str | None = None  # CUPED: the mean metrics' tests are adjusted for it
    tests: dict[str, dict[str, SequentialTest]] = field(default_factory=dict)
    srm: SRMTest | None = None
    # Running totals of priced cost and successes, for the cost-per-success linearisation.
    cost_usd: float = 0.0
    successes: int = 0
    unknown_variant: int = 0
    foreign_tenant: int = 0  # rows naming this experiment from another tenant: not counted
    cursor: Cursor = field(default_factory=Cursor)  # where the stored state was taken
    discarded: str | None = None  # why a stored state could not be used (then rebuilt)

    @property
    def control(self) -> str:
        return self.arms[0]

    @property
    def metrics(self) -> list[str]:
        return [self.primary, *[g for g in self.guardrails if g != self.primary]]

    @classmethod
    def from_row(cls, row: LiveExperimentRow) -> LiveExperiment:
        """The experiment as configured, resumed from its stored state when that state is
        sound; otherwise rebuilt from its rows (see :attr:`discarded`). ValueError when
        the configuration itself cannot be followed."""
        arms = variants_from_row(row.variants)
        e = cls(row.id, row.tenant_id, row.name, row.function_name, [a.name for a in arms],
                [a.weight for a in arms], row.primary_metric, list(row.guardrails or []),
                float(row.alpha), None if row.min_effect is None else float(row.min_effect),
                int(row.min_samples), bool(row.auto_stop), row.covariate)
        results = row.results if isinstance(row.results, Mapping) else {}
        stored = results.get("state")
        if stored is None:
            e._build(None)
            return e
        try:
            e._build(e._checked(stored))
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            # Not a state this code wrote (an old version, a restored dump, a hand edit):
            # the experiment is rebuilt from its rows, which counts each of them once.
            e.discarded = _first_line(exc)
            e.reset()
        return e

    def _checked(self, stored: Any) -> dict[str, Any]:
        """The stored state if it is the state of this experiment, else ValueError."""
        state = StoredState.model_validate(stored).model_dump()
        Cursor.from_json(state["cursor"])  # ValueError/TypeError when it is no cursor
        want = {(m, a) for m in self.metrics for a in self.arms[1:]}
        have = {(m, a) for m, by_arm in state["tests"].items() for a in by_arm}
        if have != want:
            raise ValueError(f"tests for {sorted(have)} where the experiment has {sorted(want)}")
        for m, by_arm in state["tests"].items():
            for t in by_arm.values():
                if (t["covariate"] is not None) != self._adjusts(m) and any(t["n"]):
                    raise ValueError(f"the {m} test is {'' if t['covariate'] else 'not '}"
                                     f"adjusted for a covariate where the experiment "
                                     f"{'is' if self._adjusts(m) else 'is not'}")
        live = [a for a, w in zip(self.arms, self.weights, strict=True) if w > 0]
        srm = state["srm"]
        if (srm is None) != (len(live) < 2) or (srm is not None and srm["arms"] != live):
            raise ValueError("the sample-ratio test does not match the arms")
        return state

    def _adjusts(self, metric: str) -> bool:
        return self.covariate is not None and KIND[metric] == "mean"

    def reset(self) -> None:
        """Forget the stored state: everything is replayed from the first row."""
        self.cost_usd, self.successes, self.unknown_variant = 0.0, 0, 0
        self.foreign_tenant = 0
        self.cursor = Cursor()
        self._build(None)

    def _build(self, state: Mapping[str, Any] | None) -> None:
        per_test_alpha = self.alpha / max(1, len(self.arms) - 1)
        saved = (state or {}).get("tests", {})
        for metric in self.metrics:
            self.tests[metric] = {}
            for arm in self.arms[1:]:
                s = saved.get(metric, {}).get(arm)
                self.tests[metric][arm] = SequentialTest.from_state(s) if s else make_test(
                    KIND[metric], alpha=per_test_alpha,  # type: ignore[arg-type]
                    higher_is_better=HIGHER_IS_BETTER[metric],
                    min_effect=self.min_effect if metric == self.primary else None,
                    min_samples=self.min_samples)
        live = [(a, w) for a, w in zip(self.arms, self.weights, strict=True) if w > 0]
        self.srm = (SRMTest.from_state(state["srm"]) if state and state.get("srm")
                    else SRMTest(dict(live)) if len(live) >= 2 else None)
        if state:
            self.cost_usd = float(state.get("cost_usd", 0.0))
            self.successes = int(state.get("successes", 0))
            self.unknown_variant = int(state.get("unknown_variant", 0))
            self.foreign_tenant = int(state.get("foreign_tenant", 0))
            self.cursor = Cursor.from_json(state["cursor"])

    # -- feeding -------------------------------------------------------------------------
    def observe(self, arm_of_row: Sequence[str], rows: ArmRows) -> None:
        """A batch of this experiment's rows, in cursor order."""
        arms = np.array(arm_of_row, dtype=object)
        known = np.isin(arms, self.arms)
        self.unknown_variant += int((~known).sum())
        if self.srm is not None:
            in_srm = np.isin(arms, self.srm.arms)
            index = {a: i for i, a in enumerate(self.srm.arms)}
            self.srm.update_many(np.array([index[a] for a in arms[in_srm]], np.int64))
        # The ratio used to linearise cost per success is fixed before the batch (it is
        # predictable: computed from earlier rows only).
        ratio = self.cost_usd / self.successes if self.successes else 0.0
        priced = rows.cost_pico >= 0
        cost = np.where(priced, rows.cost_pico, 0) / 1e12
        # A request without a query length is adjusted as length 0: any value fixed before
        # the arm is chosen keeps the test valid (it only explains less).
        z = np.maximum(rows.query_length, 0.0)
        rated = rows.confidence >= 0
        for arm in self.arms:  # control first: arm order does not change the evidence
            sel = arms == arm
            if not sel.any():
                continue
            values = {  # (observations, the rows they come from)
                "error_rate": (rows.is_error[sel].astype(np.float64), sel),
                "latency": (rows.latency_ms[sel], sel),
                "confidence": (rows.confidence[sel & rated], sel & rated),
                "cost_per_request": (cost[sel & priced], sel & priced),
                "cost_per_successful_request":
                    (cost[sel & priced] - ratio * (~rows.is_error[sel & priced]), sel & priced),
            }
            for metric, by_arm in self.tests.items():
                xs, where = values[metric]
                if not len(xs):
                    continue
                cov = z[where] if self._adjusts(metric) else None
                if arm == self.control:
                    for t in by_arm.values():
                        t.update_many("control", xs, cov)
                else:
                    by_arm[arm].update_many("treatment", xs, cov)
        self.cost_usd += float(cost[priced & known].sum())
        self.successes += int((~rows.is_error[priced & known]).sum())

    # -- reading -------------------------------------------------------------------------
    def decision(self) -> tuple[str, str | None]:
        """The primary metric's call and the arm it is about: a better arm wins; all
        treatments worse is 'treatment_worse'; otherwise 'continue'."""
        calls = {arm: t.decision for arm, t in self.tests[self.primary].items()}
        better = [a for a, d in calls.items() if d == "treatment_better"]
        if better:
            best = max(better, key=lambda a: abs(self.tests[self.primary][a].difference))
            return "treatment_better", best
        if calls and all(d == "treatment_worse" for d in calls.values()):
            return "treatment_worse", next(iter(calls))
        return "continue", None

    def harmed_guardrails(self) -> list[tuple[str, str]]:
        return [(m, arm) for m in self.guardrails if m != self.primary
                for arm, t in self.tests[m].items() if t.decision == "treatment_worse"]

    def results(self, cursor: Cursor) -> dict[str, Any]:
        decision, arm = self.decision()
        out: dict[str, Any] = {
            # "treatment": the arm the decision is about (what cost recommendations read).
            "control": self.control, "primary_metric": self.primary, "decision": decision,
            "treatment": arm, "covariate": self.covariate,
            "metrics": {m: {a: t.summary().to_dict() for a, t in by_arm.items()}
                        for m, by_arm in self.tests.items()},
            "srm": None if self.srm is None else _jsonable(self.srm.summary().__dict__),
            "unknown_variant_rows": self.unknown_variant,
            "other_tenant_rows": self.foreign_tenant,
            "harmed_guardrails": [{"metric": m, "arm": a} for m, a in self.harmed_guardrails()],
        }
        out["state"] = {
            "cursor": cursor.to_json(), "cost_usd": self.cost_usd, "successes": self.successes,
            "unknown_variant": self.unknown_variant, "foreign_tenant": self.foreign_tenant,
            "srm": None if self.srm is None else self.srm.state(),
            "tests": {m: {a: t.state() for a, t in by_arm.items()}
                      for m, by_arm in self.tests.items()},
        }
        return out

    def samples(self) -> dict[str, int]:
        counts = dict.fromkeys(self.arms, 0)
        if self.srm is not None:
            counts.update(dict(zip(self.srm.arms, self.srm.counts, strict=True)))
        return counts


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


@dataclass(frozen=True)
class ResultWrite:
    id: str
    results: dict[str, Any]
    decision: str
    conclude: bool


class ExperimentTracker(Monitor):
    """Every running experiment, fed from the request stream."""

    name = "experiments"
    EVERY_SECONDS = 5.0  # following new experiments and writing results

    def __init__(self) -> None:
        self.live: dict[str, LiveExperiment] = {}
        self.episodes = Episodes()
        # Running experiments that cannot be followed (a row written around the API's
        # checks), id -> why; and those refused by the last sync, for the log.
        self.unusable: dict[str, str] = {}
        self.refused: list[str] = []

    # -- the monitor contract ---------------------------------------------------------
    def restore(self, store: Store) -> None:
        self.restore_open(AlertKey(r.tenant_id, r.fingerprint) for r in store.rows(
            "open_alerts", OpenAlertRow, type="experiment"))
        self.follow(store)

    def observe(self, batch: Batch) -> Observed:
        """Rows of followed experiments into their tests (variants from the raw labels:
        folding must not merge arms)."""
        if not self.live:
            return NOTHING
        rows = [i for i, e in enumerate(batch.rows.experiment_id) if e is not None]
        if rows:
            part = batch.rows.take(np.array(rows, np.int64))
            labels = [k.split(KEY_SEPARATOR) for k in part.key]
            self.observe_rows(
                part.experiment_id, [k[-1] for k in labels],
                ArmRows(part.latency_ms, part.is_error, part.confidence, part.cost_pico,
                        part.query_length),
                tenants=[k[0] for k in labels])
        return NOTHING

    def jobs(self) -> Sequence[Job]:
        return (Job("experiments", self.EVERY_SECONDS, self.follow_and_write),)

    def follow_and_write(self, store: Store) -> list[AlertChange]:
        """Follow new experiments (replaying their rows), write every followed one's
        results with the cursor they belong to, and alert on decisions."""
        self.follow(store)
        writes, changes = self.evaluate_results(store.cursor)
        for w in writes:
            store.execute("write_experiment_results", id=w.id, results=json.dumps(w.results),
                          decision=w.decision, conclude=w.conclude)
        return changes

    def follow(self, store: Store) -> None:
        """Follow the running experiments; a newly followed one resumes from its stored
        state and replays its rows consumed since (exactly once, see the module)."""
        new = self.sync(store.rows("live_experiments", LiveExperimentRow))
        for why in self.refused:
            store.report(why)
        for e in new:
            if e.discarded is not None:
                store.report(f"experiment {e.name}: its stored state cannot be used "
                             f"({e.discarded}); rebuilding it from its rows")
            ahead, = store.rows("experiment_ahead", Ahead, id=e.id, **e.cursor.params("from"))
            if ahead.ahead:
                e.reset()  # it counts rows the cursor has not passed (a restored database)
            cols, = store.rows("experiment_rows", ArmColumns, id=e.id,
                               **e.cursor.params("from"))
            if cols.variant:
                self.observe_rows([e.id] * len(cols.variant), cols.variant, ArmRows(
                    np.array(cols.latency_ms, np.float64), np.array(cols.is_error, np.bool_),
                    np.array(cols.confidence, np.float64), np.array(cols.cost_pico, np.int64),
                    np.array(cols.query_length, np.float64)),
                    tenants=cols.tenant_id)

    def metrics(self, now: float) -> MetricsBuilder:
        gauges = self.gauges()
        return lambda: _families(gauges)

    # -- following --------------------------------------------------------------------
    def sync(self, rows: Iterable[LiveExperimentRow]) -> list[LiveExperiment]:
        """Follow the running experiments in ``rows``; returns the newly followed ones,
        which must be replayed from their stored cursor."""
        running = {r.id: r for r in rows if r.status == "running"}
        for gone in set(self.live) - set(running):
            del self.live[gone]
        self.unusable = {k: v for k, v in self.unusable.items() if k in running}
        new, self.refused = [], []
        for eid, row in running.items():
            if eid in self.live or eid in self.unusable:
                continue
            try:
                e = LiveExperiment.from_row(row)
            except Exception as exc:  # one bad configuration must not stop the others
                self.unusable[eid] = f"experiment {row.name} cannot be followed: {exc}"
                self.refused.append(self.unusable[eid])
                continue
            self.live[eid] = e
            new.append(e)
        return new

    def observe_rows(self, experiment_ids: Sequence[str | None], variants: Sequence[str],
                     rows: ArmRows, *, tenants: Sequence[str] | None = None) -> None:
        """A batch (all rows; those without a followed experiment are skipped, and so are
        rows that name another tenant's experiment: they are counted apart)."""
        if not self.live:
            return
        by_exp: dict[str, list[int]] = {}
        for i, eid in enumerate(experiment_ids):
            e = None if eid is None else self.live.get(eid)
            if e is None:
                continue
            if tenants is not None and tenants[i] != e.tenant_id:
                e.foreign_tenant += 1
                continue
            by_exp.setdefault(e.id, []).append(i)
        for eid, idx_list in by_exp.items():
            idx = np.array(idx_list, np.int64)
            self.live[eid].observe([variants[i] for i in idx_list], rows.take(idx))

    def evaluate_results(self, cursor: Cursor
                         ) -> tuple[list[ResultWrite], list[AlertChange]]:
        """Results to write (state at ``cursor``) and alert changes. Decisions, harmed
        guardrails and SRM flags are final while an experiment runs, so their alerts stay
        open until it stops or concludes."""
        writes, fired = [], []
        wanted: set[AlertKey] = set()
        for e in self.live.values():
            decision, arm = e.decision()
            writes.append(ResultWrite(e.id, e.results(cursor), decision,
                                      e.auto_stop and decision != "continue"))
            prefix = f"experiment:{e.id}:"
            wanted |= {k for k in self.episodes.open if k.fingerprint.startswith(prefix)}
            for c in self._alerts(e, decision, arm):
                wanted.add(c.key)
                if c.key not in self.episodes.open:
                    fired.append(c)
        return writes, self.episodes.settle(wanted, fired, lambda key: alert_change(
            "resolve", key, "experiment", rule="experiment",
            message="The experiment is no longer running."))

    def gauges(self) -> list[dict[str, Any]]:
        """What /metrics exports, per followed experiment."""
        out = []
        for e in self.live.values():
            tests = []
            for metric, by_arm in e.tests.items():
                for arm, t in by_arm.items():
                    lift = t.lift
                    tests.append((metric, arm, t.p_value, DECISION_VALUE[t.decision],
                                  math.nan if lift is None else lift))
            out.append({"tenant": e.tenant_id, "experiment": e.name, "samples": e.samples(),
                        "tests": tests, "foreign": e.foreign_tenant,
                        "srm": None if e.srm is None else (e.srm.mismatch, e.srm.p_value)})
        return out

    def restore_open(self, keys: Iterable[AlertKey]) -> None:
        self.episodes.open = set(keys)

    def _alerts(self, e: LiveExperiment, decision: str, arm: str | None) -> list[AlertChange]:
        out = []
        base = f"experiment:{e.id}"
        if decision != "continue" and arm is not None:
            t = e.tests[e.primary][arm]
            s = t.summary()
            word = "better" if decision == "treatment_better" else "worse"
            out.append(_fire(
                AlertKey(e.tenant_id, f"{base}:decision"), e.function_name, "info",
                title=f"Experiment {e.name}: {arm} is {word} than {e.control} on {e.primary}",
                message=f"{arm} vs {e.control} on {e.primary}: "
                f"{format_value(s.treatment.mean, e.primary)} vs "
                f"{format_value(s.control.mean, e.primary)} ({_lift(s.lift, s.lift_ci)}), "
                f"always-valid p = {s.p_value:.4f} after {s.control.n + s.treatment.n} "
                f"requests (alpha {t.alpha:g})."
                + (" The experiment concludes itself (auto_stop)." if e.auto_stop else ""),
                value=1.0 if decision == "treatment_better" else -1.0, threshold=t.alpha))
        for metric, harmed in e.harmed_guardrails():
            t = e.tests[metric][harmed]
            s = t.summary()
            out.append(_fire(
                AlertKey(e.tenant_id, f"{base}:guardrail:{metric}:{harmed}"), e.function_name,
                "warning", title=f"Experiment {e.name}: {harmed} harms the {metric} guardrail",
                message=f"{harmed} vs {e.control} on {metric}: "
                f"{format_value(s.treatment.mean, metric)} vs "
                f"{format_value(s.control.mean, metric)} ({_lift(s.lift, s.lift_ci)}), "
                f"always-valid p = {s.p_value:.4f}. Consider stopping it: "
                f"`stream-mlops experiment stop {e.name}`.", value=-1.0, threshold=t.alpha))
        if e.srm is not None and e.srm.mismatch:
            srm = e.srm.summary()
            observed = "/".join(f"{(o or 0) * 100:.1f}" for o in srm.observed_shares)
            expected = "/".join(f"{x * 100:.1f}" for x in srm.expected_shares)
            out.append(_fire(
                AlertKey(e.tenant_id, f"{base}:srm"), e.function_name, "critical",
                title=f"Experiment {e.name}: sample ratio mismatch",
                message=f"Traffic split {observed} % ({'/'.join(srm.arms)}, {sum(srm.counts)} "
                f"requests) where {expected} % was configured; always-valid p = "
                f"{srm.p_value:.2g}. Assignment or logging is broken somewhere, so no other "
                "number of this experiment can be trusted until it is fixed.",
                value=srm.p_value, threshold=srm.alpha))
        return out


def format_value(v: float | None, metric: str) -> str:
    """A metric's value as people read it: 2.10%, 812 ms, $0.000412, 0.873."""
    if v is None or not math.isfinite(v):
        return "-"
    if metric == "error_rate":
        return f"{v:.2%}"
    if metric == "latency":
        return f"{v:,.0f} ms"
    if metric.startswith("cost"):
        return f"${v:.6f}"
    return f"{v:.3f}"


def _lift(lift: float | None, ci: tuple[float, float] | None) -> str:
    if lift is None:
        return "lift undefined"
    text = f"{lift:+.1%}"
    return text + (f", CI {ci[0]:+.1%} to {ci[1]:+.1%}" if ci else "")


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the state"
        return f"{where}: {first['msg']} ({exc.error_count()} problem(s) in all)"[:300]
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _fire(key: AlertKey, function: str, severity: Severity, *, title: str, message: str,
          value: float, threshold: float) -> AlertChange:
    return alert_change("fire", key, "experiment", rule="experiment", severity=severity,
                        function=function, title=title, message=message, value=value,
                        threshold=threshold)


def _families(experiments: Sequence[dict[str, Any]]) -> Iterator[Metric]:
    samples = GaugeMetricFamily("mlops_experiment_samples",
                                "Requests counted per arm of a running experiment.",
                                labels=["tenant", "experiment", "variant"])
    labels = ["tenant", "experiment", "metric", "variant"]
    p_value = GaugeMetricFamily(
        "mlops_experiment_p_value", "Always-valid p-value of variant vs control "
        "(valid whenever read).", labels=labels)
    lift = GaugeMetricFamily("mlops_experiment_lift",
                             "Relative difference variant / control - 1.", labels=labels)
    decision = GaugeMetricFamily(
        "mlops_experiment_decision",
        "1 variant better, -1 worse, 0 undecided (direction-aware per metric).",
        labels=labels)
    srm = GaugeMetricFamily("mlops_experiment_srm",
                            "1 once the traffic split is shown not to match the weights.",
                            labels=["tenant", "experiment"])
    srm_p = GaugeMetricFamily("mlops_experiment_srm_p_value",
                              "Always-valid p-value of the sample-ratio check.",
                              labels=["tenant", "experiment"])
    foreign = CounterMetricFamily(
        "mlops_experiment_other_tenant_rows",
        "Rows naming the experiment but logged by another tenant: not counted in it.",
        labels=["tenant", "experiment"])
    for e in experiments:
        t, name = e["tenant"], e["experiment"]
        for arm, n in e["samples"].items():
            samples.add_metric([t, name, arm], n)
        for metric, arm, p, d, lf in e["tests"]:
            p_value.add_metric([t, name, metric, arm], p)
            decision.add_metric([t, name, metric, arm], d)
            if math.isfinite(lf):
                lift.add_metric([t, name, metric, arm], lf)
        if e["srm"] is not None:
            srm.add_metric([t, name], float(e["srm"][0]))
            srm_p.add_metric([t, name], e["srm"][1])
        foreign.add_metric([t, name], e["foreign"])
    yield from (samples, p_value, lift, decision, srm, srm_p, foreign)
