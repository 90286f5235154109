"""Model cards as data and as Markdown: spec validation, the builder, the Hugging Face
layout read back by huggingface_hub, hashes and differences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from stream_mlops.cards.build import build_card, content_hash, diff_cards, render_markdown
from stream_mlops.cards.evidence import (
    AlertRow,
    Bucket,
    Day,
    DeploymentRow,
    DriftEvent,
    ErrorType,
    Evidence,
    ExperimentRow,
    Totals,
)
from stream_mlops.cards.spec import SECTIONS, SpecError, parse_spec

DAY = 86400.0
SPEC = """\
title: Ticket summarizer
description: Summarizes a support thread.
task: summarization
license: apache-2.0
owners: [ml-platform@example.com]
intended_use: |
  Three-sentence summaries of support threads, read by an agent
  before answering.
out_of_scope_uses: Legal or medical advice.
training_data: None of ours; a hosted model.
evaluation_data: 500 labelled threads (2026-10).
evaluation_method: Pairwise human preference.
ethical_considerations: Threads contain personal data; summaries are not stored.
limitations: Misses sarcasm.
tags: [support]
"""


def totals(requests: int = 1000, errors: int = 20, **kw: object) -> Totals:
    base: dict[str, object] = dict(
                requests=requests, errors=errors, latency_p50_ms=120.0, latency_p95_ms=480.0,
                latency_p99_ms=900.0, latency_mean_ms=150.0, cost_usd=2.5, priced=requests,
                confidence_n=800, confidence_mean=0.8, confidence_p10=0.6,
                confidence_p50=0.82, confidence_p90=0.95, prompt_tokens=10_000,
                completion_tokens=2_000, first_at=0.0, last_at=6 * DAY)
    base.update(kw)
    return Totals(**base)  # type: ignore[arg-type]


def evidence(**kw: object) -> Evidence:
    base: dict[str, object] = dict(
        tenant_id="acme", function_name="summarize", model="gpt-4o-mini",
        window_start=0.0, window_end=7 * DAY, totals=totals(),
        slices=[totals(600, 6, slice_kind="variant", slice_name="control"),
                totals(400, 14, slice_kind="variant", slice_name="treatment")],
        error_types=[ErrorType("timeout", 15), ErrorType("rate_limit", 5)],
        latency_histogram=[Bucket(100, 200, 700), Bucket(200, 400, 300)],
        confidence_histogram=[Bucket(0.5, 0.6, 100), Bucket(0.8, 0.9, 700)],
        days=[Day(i * DAY, 140, 3, 0.35) for i in range(7)],
        drift=[DriftEvent("latency", "ks", 0.31, 1e-6, 0.01, 0.42, True, 2 * DAY),
               DriftEvent("latency", "ks", 0.05, 0.4, 0.01, 0.03, False, 3 * DAY)],
        experiments=[ExperimentRow("shorter-prompt", "running", "continue", "error_rate",
                                   0.05, 1 * DAY, None, {"metrics": {"error_rate": {
                                       "treatment": {
                                           "control": {"n": 600, "mean": 0.01, "ci": None},
                                           "treatment": {"n": 400, "mean": 0.035, "ci": None},
                                           "difference": 0.025,
                                           "difference_ci": [-0.004, 0.05],
                                           "lift": 2.5, "p_value": 0.21,
                                           "decision": "continue"}}}})],
        deployments=[DeploymentRow(7, "v2", "v1", "green", "rolled_back", 0.0, "p95 regression",
                                   "alice", 4 * DAY, None, 4.5 * DAY)],
        alerts=[AlertRow("drift", "warning", "latency drifted", "firing", 2 * DAY, 6 * DAY)])
    base.update(kw)
    return Evidence(**base)  # type: ignore[arg-type]


# -- spec files -------------------------------------------------------------------------------


def test_a_spec_carries_every_section_verbatim_into_the_card() -> None:
    spec = parse_spec(SPEC, "summarize.yaml")
    card = build_card(spec, evidence())
    md = render_markdown(card)
    for section in SECTIONS:
        text = getattr(spec, section)
        assert card["spec"][section] == text
        assert text.strip() in md
    assert card["spec"]["intended_use"].startswith("Three-sentence summaries")


def test_missing_sections_read_not_provided_never_invented() -> None:
    card = build_card(parse_spec("intended_use: triage only", "s.yaml"), evidence())
    assert card["spec"]["intended_use"] == "triage only"
    assert {card["spec"][s] for s in SECTIONS if s != "intended_use"} == {"not provided"}
    assert render_markdown(card).count("not provided") >= len(SECTIONS) - 1


@pytest.mark.parametrize(("text", "message"), [
    ("intended_use: ok\nlimitatons: typo\n", "s.yaml, line 2: limitatons: unknown section"),
    ("owners: alice\n", "s.yaml, line 1: owners: Input should be a valid list"),
    ("limitations:\n  - a\n  - b\n", "s.yaml, line 1: limitations: Input should be a valid str"),
    ("owners:\n  - ok\n  - 3\n", "s.yaml, line 3: owners.1: Input should be a valid str"),
    ("intended_use: [unclosed\n", "s.yaml, line 2: not valid YAML"),
    ("- a list\n", "s.yaml, line 1: a spec is a mapping of sections"),
    ("task: Text Generation\n", "s.yaml, line 1: task: String should match pattern"),
])
def test_a_malformed_spec_names_the_file_the_line_and_the_field(text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(text, "s.yaml")
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_an_empty_spec_is_a_spec_with_nothing_provided() -> None:
    card = build_card(parse_spec("", "s.yaml"), evidence())
    assert card["spec"]["limitations"] == "not provided" and card["spec"]["provided"]
    assert build_card(None, evidence())["spec"]["provided"] is False


# -- measured numbers ------------------------------------------------------------------------


def test_measured_numbers_come_from_the_evidence_with_their_intervals() -> None:
    card = build_card(None, evidence())
    m = card["measured"]
    assert card["window"] == {"start": "1970-01-01T00:00:00Z", "end": "1970-01-08T00:00:00Z",
                              "days": 7.0}
    assert m["requests"] == 1000 and m["requests_per_day"] == pytest.approx(1000 / 7)
    assert m["errors"]["rate"] == 0.02
    lo, hi = m["errors"]["rate_ci95"]
    assert (round(lo, 4), round(hi, 4)) == (0.013, 0.0307)  # Wilson, z = 1.96
    assert m["errors"]["types"][0] == {"type": "timeout", "count": 15, "share": 0.75}
    assert m["latency_ms"] == {"p50": 120.0, "p95": 480.0, "p99": 900.0, "mean": 150.0}
    assert m["cost"]["per_request_usd"] == pytest.approx(0.0025)
    assert m["cost"]["per_successful_request_usd"] == pytest.approx(2.5 / 980)
    assert m["cost"]["per_month_usd"] == pytest.approx(2.5 / 7 * 30.4375)
    assert m["confidence"] is not None and m["confidence"]["p50"] == 0.82
    assert [s["name"] for s in card["slices"]["variant"]] == ["control", "treatment"]
    assert card["slices"]["variant"][1]["error_rate"] == 14 / 400


def test_unpriced_requests_never_count_as_free() -> None:
    m = build_card(None, evidence(totals=totals(priced=900)))["measured"]["cost"]
    assert m["unpriced_requests"] == 100
    assert m["per_request_usd"] == pytest.approx(2.5 / 900)
    assert m["per_successful_request_usd"] is None
    none = build_card(None, evidence(totals=totals(priced=0, cost_usd=0.0)))["measured"]["cost"]
    assert none["total_usd"] is None and none["per_month_usd"] is None


def test_operations_sections_carry_drift_experiments_deployments_and_alerts() -> None:
    card = build_card(None, evidence())
    assert card["drift"]["tests"] == 2
    assert card["drift"]["confirmed"] == [{
        "metric": "latency", "test": "ks", "statistic": 0.31, "p_value": 1e-6,
        "threshold": 0.01, "effect_size": 0.42, "drift": True, "at": "1970-01-03T00:00:00Z"}]
    assert [d["p_value"] for d in card["drift"]["latest"]] == [0.4]
    (e,) = card["experiments"]
    assert e["tests"][0]["difference_ci"] == [-0.004, 0.05]
    assert e["tests"][0]["decision"] == "continue"
    assert card["deployments"][0]["status"] == "rolled_back"
    assert card["deployments"][0]["reason"] == "p95 regression"
    md = render_markdown(card)
    for text in ("shorter-prompt", "[-0.004, 0.05] always valid", "p95 regression",
                 "latency drifted", "| latency | ks | 0.31 | 1e-06 | 0.42 | yes |"):
        assert text in md, text


def test_a_function_without_traffic_gets_a_card_that_says_so() -> None:
    empty = Totals(0, 0, None, None, None, None, 0.0, 0, 0, None, None, None, None, 0, 0,
                   None, None)
    card = build_card(None, evidence(totals=empty, slices=[], error_types=[], days=[],
                                     latency_histogram=[], confidence_histogram=[]))
    assert card["traffic"] is False and card["measured"]["errors"]["rate"] is None
    md = render_markdown(card)
    assert "No traffic in this window" in md
    assert "model-index" not in md.split("---")[1]  # nothing measured, no results claimed


# -- the Hugging Face layout, read by huggingface_hub -----------------------------------------


def test_huggingface_hub_parses_the_card_and_its_results(tmp_path: Path) -> None:
    card = build_card(parse_spec(SPEC, "s.yaml"), evidence())
    path = tmp_path / "README.md"
    path.write_text(render_markdown(card))
    loaded = ModelCard.load(path)
    assert loaded.data.license == "apache-2.0"
    assert loaded.data.model_name == "summarize (gpt-4o-mini)"
    results = {r.metric_type: r for r in loaded.data.eval_results}
    assert results["error_rate"].metric_value == 0.02
    assert results["latency_p95_ms"].metric_value == 480.0
    assert results["cost_per_request_usd"].metric_value == 0.0025
    assert results["error_rate"].task_type == "summarization"
    assert results["error_rate"].dataset_name == (
        "acme/summarize requests 1970-01-01T00:00:00Z to 1970-01-08T00:00:00Z")
    meta = metadata_load(path)
    assert meta is not None
    name, evals = model_index_to_eval_results(meta["model-index"])
    assert name == "summarize (gpt-4o-mini)" and len(evals) == 6
    for heading in ("## Model Details", "## Uses", "## Bias, Risks, and Limitations",
                    "## Training Details", "## Evaluation", "## Technical Specifications",
                    "## Operations", "### Cost", "### Drift", "### Experiments",
                    "### Deployments"):
        assert heading in loaded.text, heading


def test_the_json_is_the_same_content_as_data() -> None:
    card = build_card(parse_spec(SPEC, "s.yaml"), evidence())
    assert json.loads(json.dumps(card)) == card


# -- versions: hash and differences ----------------------------------------------------------


def test_the_hash_changes_with_the_content_not_with_when_or_why() -> None:
    card = build_card(None, evidence())
    same = {**card, "generated_at": "later", "trigger": "drift", "version": 3,
            "window": {"start": "x", "end": "y", "days": 7}}
    assert content_hash(card) == content_hash(same)
    assert content_hash(card) != content_hash(build_card(None, evidence(totals=totals(errors=21))))


def test_a_diff_lists_the_numbers_first() -> None:
    old = build_card(None, evidence())
    new = build_card(parse_spec("limitations: new text", "s.yaml"),
                     evidence(totals=totals(errors=30, latency_p95_ms=510.0)))
    changes = diff_cards(old, new)
    keys = [k for k, _, _ in changes]
    assert ("measured.errors.count", 20, 30) in changes
    assert ("measured.latency_ms.p95", 480.0, 510.0) in changes
    assert keys.index("measured.errors.count") < keys.index("spec.limitations")
    assert diff_cards(old, old) == []


def test_deployment_history_carries_versions_transitions_reasons_and_gates() -> None:
    from stream_mlops.cards.evidence import GateRow, TransitionRow
    card = build_card(None, evidence(
        transitions=[TransitionRow(7, "v2", "shifting", "rolled_back", 0.0, "p95 regression",
                                   "processor", 4.5 * DAY),
                     TransitionRow(7, "v2", None, "pending", 0.0, "started", "alice", 4 * DAY)],
        gates=[GateRow(7, "v2", "rollback", 25.0, 900, 300, {"latency": {"p_value": 0.001}},
                       "latency worse at 25%", 4.5 * DAY)]))
    assert card["deployments"][0]["previous_version"] == "v1"
    assert card["deployment_history"][0]["reason"] == "p95 regression"
    assert card["deployment_gates"][0]["metrics"] == {"latency": {"p_value": 0.001}}
    md = render_markdown(card)
    assert ("- 1970-01-05T12:00:00Z `v2`: shifting -> rolled_back at 0% by processor: "
            "p95 regression") in md
    assert "`v2` rollback at 25% (300 new vs 900 live requests" in md
