"""The committed Grafana dashboards are what the code generates, and each one is sane."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

from stream_mlops.dev import dashboards

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
BUILTIN = {"__rate_interval", "__interval", "__timeFilter", "__all", "__field", "__auto"}
VARIABLE = re.compile(r"\$\{?(\w+)")


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text())
    return doc


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of every datasource Grafana is provisioned with."""
    out = {}
    for f in (ROOT / "grafana/provisioning/datasources").glob("*.yml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            out[ds["uid"]] = ds["type"]
    return out


def queries(panel: dict[str, Any]) -> list[str]:
    return [t.get("expr") or t.get("rawSql") or "" for t in panel.get("targets", [])]


def problems(doc: dict[str, Any], datasources: dict[str, str]) -> list[str]:
    """What is wrong with a dashboard, as messages naming the panel."""
    out: list[str] = []
    ids = [p["id"] for p in doc["panels"]]
    if len(ids) != len(set(ids)):
        out.append(f"duplicate panel ids {ids}")
    if doc.get("refresh") != "30s":
        out.append(f"refresh {doc.get('refresh')!r}, not 30s")
    if not doc.get("links"):
        out.append("no links to the other dashboards")
    out += _panel_problems(doc, datasources)
    return out


def _panel_problems(doc: dict[str, Any], datasources: dict[str, str]) -> list[str]:
    out: list[str] = []
    defined = {v["name"] for v in doc["templating"]["list"]}

    def check_ds(where: str, ref: dict[str, str] | None) -> None:
        if ref is None or datasources.get(ref["uid"]) != ref["type"]:
            out.append(f"{where}: datasource {ref} is not provisioned")

    def check_vars(where: str, text: str) -> None:
        for name in set(VARIABLE.findall(text)) - BUILTIN - defined:
            out.append(f"{where}: variable ${name} is not defined")

    for a in doc.get("annotations", {}).get("list", []):
        check_ds(f"annotation {a['name']}", a["datasource"])
        check_vars(f"annotation {a['name']}", json.dumps(a["target"]))
    for v in doc["templating"]["list"]:
        check_ds(f"variable {v['name']}", v["datasource"])
    for p in doc["panels"]:
        if p["type"] == "row":
            continue
        where = f"{doc['title']} / {p['title']}"
        check_ds(where, p.get("datasource"))
        if not p.get("targets") or not all(queries(p)):
            out.append(f"{where}: a panel without a query")
        for t in p.get("targets", []):
            check_ds(where, t.get("datasource"))
        check_vars(where, json.dumps(p["targets"]))
        if "\n\nWhen red: " not in p.get("description", ""):
            out.append(f"{where}: the description does not say what to do when it is red")
        if p["type"] in ("timeseries", "stat") and not p["fieldConfig"]["defaults"].get("unit"):
            out.append(f"{where}: no unit")
    return out


def test_committed_json_is_what_the_code_generates() -> None:
    generated = dashboards.generate()
    committed = {f.name: f.read_text() for f in DASHBOARD_DIR.glob("*.json")}
    assert sorted(committed) == sorted(generated), (
        "grafana/dashboards differs: run python -m stream_mlops.dev.dashboards")
    for name, text in generated.items():
        assert committed[name] == text, (
            f"grafana/dashboards/{name} is not what the code generates: run "
            "python -m stream_mlops.dev.dashboards (never edit the JSON by hand)")


def test_every_dashboard_the_issue_lists_exists_linked_with_drill_down_variables() -> None:
    docs = [load(f"{n}.json") for n in dashboards.DASHBOARDS]
    assert [d["title"].split(" / ")[1] for d in docs] == [
        "Overview", "Performance", "Costs", "Drift", "Experiments", "Deployments", "Alerts"]
    assert len({d["uid"] for d in docs}) == len(docs)
    for d in docs:
        assert [v["name"] for v in d["templating"]["list"]][:3] == ["tenant", "function", "model"]
        assert all(v["multi"] and v["includeAll"] and v["allValue"] == ".*"
                   for v in d["templating"]["list"])
        # Linked by tag: every dashboard carries the tag the links list.
        assert d["links"][0]["tags"] == ["stream-mlops"] and "stream-mlops" in d["tags"]
        assert d["links"][0]["includeVars"] and d["links"][0]["keepTime"]


def test_every_dashboard_is_sane() -> None:
    datasources = provisioned_datasources()
    assert datasources == {"prometheus": "prometheus",
                           "postgres": "grafana-postgresql-datasource"}
    for name in dashboards.DASHBOARDS:
        assert problems(load(f"{name}.json"), datasources) == [], name


def test_the_sanity_check_finds_what_it_names() -> None:
    datasources = provisioned_datasources()
    good = load("performance.json")
    broken = copy.deepcopy(good)
    broken["panels"][0]["targets"][0]["expr"] += ' + on () vector($nowhere)'
    broken["panels"][1]["id"] = broken["panels"][0]["id"]
    broken["panels"][2]["targets"][0]["datasource"] = {"type": "loki", "uid": "loki"}
    broken["panels"][3]["description"] = "no advice"
    broken["panels"][4]["targets"] = []
    found = problems(broken, datasources)
    assert any("$nowhere is not defined" in p for p in found)
    assert any("duplicate panel ids" in p for p in found)
    assert any("loki" in p for p in found)
    assert any("when it is red" in p for p in found)
    assert any("without a query" in p for p in found)


def test_thresholds_are_drawn_from_the_exported_gauges_not_constants() -> None:
    perf = load("performance.json")
    drawn = {t["expr"] for p in perf["panels"] for t in p.get("targets", [])
             if t["refId"] == "T"}
    assert {re.search(r'rule="(\w+)"', e).group(1) for e in drawn  # type: ignore[union-attr]
            } == {"error_rate", "latency_p95", "confidence_mean"}
    assert all(e.startswith("max by (function) (mlops_alert_threshold{") for e in drawn)
    for p in perf["panels"]:
        if any(t["refId"] == "T" for t in p.get("targets", [])):
            (override,) = p["fieldConfig"]["overrides"]
            assert override["matcher"] == {"id": "byFrameRefID", "options": "T"}
