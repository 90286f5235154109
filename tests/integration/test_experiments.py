"""Experiments end to end on a real PostgreSQL: lifecycle, live always-valid results from the
simulator's better/worse treatments, SRM, exactly-once across restarts, CLI and SQL."""

from __future__ import annotations

import json
import math

import numpy as np
import psycopg
import pytest

from stream_mlops.client import RequestLogger
from stream_mlops.dev.simulator import ExperimentArms, Scenario, Traffic
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import ExperimentError, ExperimentSpec, Variant
from stream_mlops.experiments.monitor import ExperimentTracker
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.stats.sequential import make_test
from tests.helpers import ProcessorProcess, metric_sum, scrape, wait_for
from tests.integration.test_cli import assert_one_line_error, cli
from tests.integration.test_consumer import drain, make_consumer


def _send(url: str, traffic: Traffic, n: int) -> None:
    logger = RequestLogger(url, flush_interval=0.05, max_buffer=n + 1)
    for fields in traffic.requests(n, elapsed=1e9):  # the scenario is on from the start
        logger.log(**fields)
    logger.close(timeout=60)
    assert logger.stats.dropped == 0 and logger.stats.rejected == 0


def _arms(url: str, name: str) -> ExperimentArms:
    with psycopg.connect(url) as conn:
        e = experiments.get(conn, name)
    return ExperimentArms(e.id, e.tenant_id, e.function_name, e.seed,
                          tuple((v.name, v.weight) for v in e.variants))


def _refresh(c: Consumer) -> None:
    """What the experiments job does every few seconds: follow, write results."""
    c.run_jobs("experiments")


def _variant_counts(url: str, eid: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "SELECT variant, count(*) FROM mlops.model_performance"
            " WHERE experiment_id = %s GROUP BY 1", (eid,)).fetchall())


@pytest.mark.parametrize(("scenario", "decision", "auto_stop"), [
    ("treatment_better", "treatment_better", True),
    ("treatment_worse", "treatment_worse", False)])
def test_simulated_treatment_reaches_the_right_decision_exactly_once(
        db_url: str, scenario: str, decision: str, auto_stop: bool) -> None:
    out = cli("experiment", "create", "prompt-v2", "--function", "summarize",
              "--variants", "control:0.5:gpt-4o-mini,treatment:0.5:gpt-4o-mini",
              "--primary", "error_rate", "--guardrail", "latency",
              *(["--auto-stop"] if auto_stop else []), env={"DATABASE_URL": db_url})
    assert out.returncode == 0, out.stderr
    with psycopg.connect(db_url) as conn:  # a fixed seed: the same users, the same arms
        conn.execute("UPDATE mlops.experiments SET seed = 'seed-1' WHERE name = 'prompt-v2'")
    arms = _arms(db_url, "prompt-v2")
    traffic = Traffic(seed=3, scenario=Scenario(scenario, change_after=0), experiment=arms)
    c = make_consumer(db_url)
    _send(db_url, traffic, 12_000)
    drain(c)  # consumed before the experiment starts: followed by replay once it does
    assert cli("experiment", "start", "prompt-v2",
               env={"DATABASE_URL": db_url}).returncode == 0
    _refresh(c)
    first = _variant_counts(db_url, arms.experiment_id)
    _send(db_url, traffic, 12_000)
    drain(c)  # these live, batch by batch (unless the first half concluded it)
    _refresh(c)
    with psycopg.connect(db_url) as conn:
        e = experiments.get(conn, "prompt-v2")
        alerts = conn.execute("SELECT severity, title, message FROM mlops.alerts"
                              " WHERE alert_type = 'experiment'").fetchall()
    assert e.decision == decision
    primary = e.results["metrics"]["error_rate"]["treatment"]
    # Every row of the experiment counted once: replayed + live equals the table; a
    # concluded experiment stops counting where it concluded.
    counts = first if auto_stop else _variant_counts(db_url, e.id)
    assert e.status == ("concluded" if auto_stop else "running")
    assert (primary["control"]["n"], primary["treatment"]["n"]) == (
        counts["control"], counts["treatment"])
    assert primary["p_value"] <= 0.05 and e.results["srm"]["mismatch"] is False
    titles = [a[1] for a in alerts]
    word = "better" if decision == "treatment_better" else "worse"
    assert f"Experiment prompt-v2: treatment is {word} than control on error_rate" in titles
    latency = e.results["metrics"]["latency"]["treatment"]["decision"]
    # The treatment is 20 % faster (better) or 30 % slower (worse): a harmed guardrail
    # alerts only in the second case.
    assert any("harms the latency guardrail" in t for t in titles) == (
        decision == "treatment_worse" and latency == "treatment_worse")
    c.close()
    status = cli("experiment", "status", "prompt-v2", env={"DATABASE_URL": db_url})
    assert f"decision {decision}" in status.stdout and "sample ratio" in status.stdout


def test_results_survive_a_restart_without_double_counting(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        experiments.create(conn, ExperimentSpec("latency-test", "summarize",
                                                primary_metric="latency"))
        # A fixed seed: an A/A test with a random one would find a difference in up to
        # alpha = 5 % of runs, as it should.
        conn.execute("UPDATE mlops.experiments SET seed = 'seed-1' WHERE name = 'latency-test'")
        experiments.set_status(conn, "latency-test", "running")
    arms = _arms(db_url, "latency-test")
    traffic = Traffic(seed=5, experiment=arms)
    c = make_consumer(db_url)
    _send(db_url, traffic, 4_000)
    drain(c)
    _refresh(c)  # state stored with the cursor it belongs to
    c.close()
    _send(db_url, traffic, 4_000)
    c = make_consumer(db_url)  # restored state + replay of rows consumed since
    drain(c)
    _refresh(c)
    c.close()
    c = make_consumer(db_url)  # and once more, with nothing new
    _refresh(c)
    with psycopg.connect(db_url) as conn:
        e = experiments.get(conn, "latency-test")
    s = e.results["metrics"]["latency"]["treatment"]
    counts = _variant_counts(db_url, e.id)
    assert (s["control"]["n"], s["treatment"]["n"]) == (counts["control"], counts["treatment"])
    assert e.results["srm"]["counts"] == [counts["control"], counts["treatment"]]
    assert e.decision == "continue"  # an A/A split: nothing to find
    c.close()


def test_latency_adjusted_for_query_length_is_called_sooner_and_as_the_library_calls_it(
        db_url: str) -> None:
    """CUPED in the processor: the same rows in an experiment adjusted for query_length
    (the default) and in one that is not. Latency here is mostly prefill, proportional to
    the query; the treatment is 4 % slower."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name, covariate in (("adjusted", "query_length"), ("plain", None)):
            experiments.create(conn, ExperimentSpec(name, "summarize", primary_metric="latency",
                                                    covariate=covariate))
            experiments.set_status(conn, name, "running")
        ids = {name: experiments.get(conn, name).id for name in ("adjusted", "plain")}
    rng = np.random.default_rng(40)
    n = 4000
    treated = rng.random(n) < 0.5
    query = rng.lognormal(math.log(400), 0.5, n).round()
    latency = ((2.0 * query + rng.lognormal(5.0, 0.5, n)) * np.where(treated, 1.04, 1.0)).round(2)
    logger = RequestLogger(db_url, flush_interval=0.05, max_buffer=2 * n + 1)
    for name in ("adjusted", "plain"):
        for k in range(n):
            logger.log(function_name="summarize", model="gpt-4o-mini",
                       variant="treatment" if treated[k] else "control",
                       experiment_id=ids[name], latency_ms=float(latency[k]),
                       query_length=int(query[k]))
    logger.close(timeout=60)
    c = make_consumer(db_url, batch_size=500)
    drain(c)
    _refresh(c)
    c.close()
    with psycopg.connect(db_url) as conn:
        got = {name: experiments.get(conn, name) for name in ("adjusted", "plain")}
    summary = {name: e.results["metrics"]["latency"]["treatment"] for name, e in got.items()}
    # The rows arrive in batches of 500, each fed control first: the library's test fed
    # the same way makes the same call at the same request.
    library = {}
    for name, z in (("adjusted", query), ("plain", None)):
        t = make_test("mean")
        for at in range(0, n, 500):
            part = slice(at, at + 500)
            for treatment in (False, True):
                rows = treated[part] == treatment
                t.update_many("treatment" if treatment else "control", latency[part][rows],
                              None if z is None else z[part][rows])
        library[name] = t
    for name in ("adjusted", "plain"):
        assert got[name].decision == library[name].decision == "treatment_worse"
        assert summary[name]["decided_at"] == library[name].decided_at
        assert summary[name]["p_value"] == pytest.approx(library[name].p_value, rel=1e-9)
    assert (summary["adjusted"]["decided_at"], summary["plain"]["decided_at"]) == (340, 1779)
    assert summary["adjusted"]["variance_reduction"] == pytest.approx(
        library["adjusted"].variance_reduction)
    assert summary["adjusted"]["variance_reduction"] > 0.7
    assert summary["plain"]["variance_reduction"] is None
    out = cli("experiment", "status", "adjusted", env={"DATABASE_URL": db_url}).stdout
    assert "adjusted for query_length (CUPED)" in out
    assert "of the variance explained by query_length" in out


def test_a_broken_split_raises_a_sample_ratio_alert(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        experiments.create(conn, ExperimentSpec("srm", "summarize"))
        conn.execute("UPDATE mlops.experiments SET seed = 'seed-1' WHERE name = 'srm'")
        experiments.set_status(conn, "srm", "running")
    arms = _arms(db_url, "srm")
    # The application assigns 60/40 although the experiment says 50/50.
    broken = ExperimentArms(arms.experiment_id, arms.tenant_id, arms.function_name,
                            arms.seed, (("control", 0.6), ("treatment", 0.4)))
    c = make_consumer(db_url)
    _send(db_url, Traffic(seed=9, experiment=broken), 8_000)
    drain(c)
    _refresh(c)
    with psycopg.connect(db_url) as conn:
        (message,) = conn.execute("SELECT message FROM mlops.alerts"
                                  " WHERE fingerprint LIKE 'experiment:%:srm'").fetchone() or ("",)
    assert message.startswith("Traffic split 60.4/39.6 % (control/treatment, 2042 requests) "
                              "where 50.0/50.0 % was configured; always-valid p = 4.7e-15.")
    c.close()


def test_an_experiment_written_around_the_checks_is_skipped_not_fatal(db_url: str) -> None:
    """Weights the API refuses, written by SQL: the processor keeps consuming, follows the
    other experiments and says which one it cannot follow."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name in ("uneven", "fine"):
            experiments.create(conn, ExperimentSpec(name, "summarize"))
        conn.execute("UPDATE mlops.experiments SET variants = '[{\"name\": \"control\","
                     " \"weight\": 1e-300}, {\"name\": \"treatment\", \"weight\": 1e300}]'"
                     " WHERE name = 'uneven'")
        for name in ("uneven", "fine"):
            experiments.set_status(conn, name, "running")
    c = make_consumer(db_url)
    assert c.status.monitor_errors_total == 1
    assert [e.name for e in c.processor.monitor(ExperimentTracker).live.values()] == ["fine"]
    _send(db_url, Traffic(seed=3, experiment=_arms(db_url, "fine")), 500)
    assert drain(c) == 500
    _refresh(c)
    assert c.status.monitor_errors_total == 1  # said once
    c.close()


def test_lifecycle_rules_and_clear_errors(db_url: str) -> None:
    env = {"DATABASE_URL": db_url}
    with psycopg.connect(db_url, autocommit=True) as conn:
        experiments.create(conn, ExperimentSpec(
            "multi", "classify-ticket", variants=(Variant("a", 0.5), Variant("b", 0.25),
                                                  Variant("c", 0.25, model="gpt-4o"))))
        with pytest.raises(ExperimentError, match="already exists"):
            experiments.create(conn, ExperimentSpec("multi", "classify-ticket"))
        with pytest.raises(ExperimentError, match="cannot go from draft to stopped"):
            experiments.set_status(conn, "multi", "stopped")
        assert experiments.set_status(conn, "multi", "running") == "running"
        with pytest.raises(psycopg.errors.CheckViolation, match="fixed once it has started"):
            conn.execute("UPDATE mlops.experiments SET variants = '[{\"name\": \"a\"},"
                         " {\"name\": \"b\"}]' WHERE name = 'multi'")
        assert experiments.set_status(conn, "multi", "stopped") == "stopped"
        assert experiments.set_status(conn, "multi", "running") == "running"  # resumed
        assert experiments.set_status(conn, "multi", "concluded") == "concluded"
        audit = conn.execute("SELECT count(*) FROM mlops.audit_log"
                             " WHERE table_name = 'experiments'").fetchone()
        # The SQL assignment and the Python one agree.
        e = experiments.get(conn, "multi")
        sql = conn.execute("SELECT mlops.assign_variant(%s, 'user-7')", (e.id,)).fetchone()
    assert audit is not None and audit[0] >= 5  # insert and each status change, audited
    assert sql == (experiments.Experiments(db_url).assign("multi", "user-7")[1],)
    assert_one_line_error(cli("experiment", "start", "multi", env=env),
                          "cannot go from concluded to running")
    again = cli("experiment", "stop", "multi", "--conclude", env=env)
    assert again.returncode == 0
    assert again.stdout == "experiment multi is already concluded: nothing changed\n"
    assert_one_line_error(cli("simulate", "--experiment", "multi", "--duration", "1",
                              env=env), "experiment multi is concluded, not running")
    assert_one_line_error(cli("experiment", "create", "x", "--function", "f", "--primary",
                              "speed", env=env), "primary metric must be one of")
    assert_one_line_error(cli("experiment", "status", "nope", env=env),
                          "no experiment named 'nope'")
    listed = json.loads(cli("experiment", "list", "--json", env=env).stdout)
    assert [x["name"] for x in listed] == ["multi"]
    assert listed[0]["variants"][2] == {"name": "c", "weight": 0.25, "model": "gpt-4o"}


def test_running_processor_exports_experiment_metrics(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        experiments.create(conn, ExperimentSpec("exported", "summarize"))
        conn.execute("UPDATE mlops.experiments SET seed = 'seed-1' WHERE name = 'exported'")
        experiments.set_status(conn, "exported", "running")
    arms = _arms(db_url, "exported")
    _send(db_url, Traffic(seed=3, scenario=Scenario("treatment_better", change_after=0),
                          experiment=arms), 12_000)
    want = sum(_variant_counts(db_url, arms.experiment_id).values())
    proc = ProcessorProcess(db_url).start()
    try:
        proc.wait_ready()
        wait_for(lambda: metric_sum(scrape(proc.port), "mlops_experiment_samples") == want,
                 30, "experiment samples exported")
        samples = scrape(proc.port)
        decisions = {(lb["metric"], lb["variant"]): v
                     for lb, v in samples["mlops_experiment_decision"]}
        assert decisions == {("error_rate", "treatment"): 1.0}
        (srm,) = samples["mlops_experiment_srm"]
        assert srm == ({"tenant": "default", "experiment": "exported"}, 0.0)
        (lift,) = samples["mlops_experiment_lift"]
        assert lift[1] < -0.3  # 1 % vs 3 % errors
    finally:
        proc.stop()
