"""docker-compose.yml without Docker: the services the stack needs, every file it mounts,
and addresses that agree with prometheus.yml, the Alertmanager configuration and the
Grafana datasources; no secret in the file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres", "migrate", "roles", "processor", "simulator", "prometheus",
            "alertmanager", "mailpit", "grafana"}
ONE_SHOT = {"migrate", "roles"}


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def service(name: str) -> dict[str, Any]:
    s: dict[str, Any] = compose()["services"][name]
    return s


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


def flag(name: str, svc: dict[str, Any]) -> str:
    (value,) = [a.split("=", 1)[1] for a in svc["command"] if a.startswith(f"--{name}=")]
    return str(value)


def test_every_service_of_the_stack_with_health_checks_and_named_volumes() -> None:
    doc = compose()
    assert set(doc["services"]) == SERVICES
    for name, s in doc["services"].items():
        assert s.get("network_mode") == "host", name
        if name not in ONE_SHOT:
            assert "healthcheck" in s or name == "simulator", name
    assert service("simulator")["profiles"] == ["simulator"]
    named = {v.split(":")[0] for s in doc["services"].values() for v in s.get("volumes", [])
             if not v.startswith(".")}
    assert named == set(doc["volumes"]) and len(named) == 5
    for name, s in doc["services"].items():  # what waits for what, exists
        for dep in s.get("depends_on", {}):
            assert dep in doc["services"], (name, dep)


def test_every_mounted_file_exists() -> None:
    mounts = [v.split(":")[0] for s in compose()["services"].values()
              for v in s.get("volumes", []) if v.startswith("./")]
    assert len(mounts) == 8
    for m in mounts:
        assert (ROOT / m).exists(), f"docker-compose.yml mounts {m}, which does not exist"
    # Prometheus's rule files sit next to its configuration in the container.
    prom = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    mounted = {v.split(":")[1] for v in service("prometheus")["volumes"]}
    for rules in prom["rule_files"]:
        assert f"/etc/prometheus/{rules}" in mounted
    # Grafana finds the dashboards where its provisioning says they are.
    provider = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/stream-mlops.yml").read_text())
    (path,) = [p["options"]["path"] for p in provider["providers"]]
    assert any(v.split(":")[1] == path and v.startswith("./grafana/dashboards")
               for v in service("grafana")["volumes"])


def test_ports_agree_with_prometheus_alertmanager_and_the_datasources() -> None:
    prom = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    processor = service("processor")["environment"]
    (target,) = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert target == f"{processor['METRICS_HOST']}:{processor['METRICS_PORT']}"
    (am,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == flag("web.listen-address", service("alertmanager"))
    datasources = {ds["uid"]: ds for f in (ROOT / "grafana/provisioning/datasources")
                   .glob("*.yml") for ds in yaml.safe_load(f.read_text())["datasources"]}
    assert datasources["prometheus"]["url"] == \
        "http://" + flag("web.listen-address", service("prometheus"))
    postgres = service("postgres")["command"]
    assert {"listen_addresses=127.0.0.1", "port=5432"} <= set(postgres)
    assert datasources["postgres"]["url"] == "127.0.0.1:5432"
    assert "@127.0.0.1:5432/" in processor["DATABASE_URL"]
    assert datasources["postgres"]["user"] == "stream_mlops_grafana"
    assert "stream_mlops_grafana LOGIN IN ROLE mlops_reader" in \
        (ROOT / "deploy/grafana_role.sql").read_text()
    # Both mailers relay through the SMTP catcher.
    mailpit = service("mailpit")["environment"]
    am_config = yaml.safe_load((ROOT / "deploy/alertmanager.yml").read_text())
    assert am_config["global"]["smtp_smarthost"] == mailpit["MP_SMTP_BIND_ADDR"]
    assert f"{processor['SMTP_HOST']}:{processor['SMTP_PORT']}" == mailpit["MP_SMTP_BIND_ADDR"]
    for name in ("prometheus", "alertmanager", "grafana"):
        (check,) = [a for a in service(name)["healthcheck"]["test"] if a.startswith("http")]
        assert check.startswith("http://127.0.0.1:")
    assert port_of(datasources["prometheus"]["url"]) == 9090


def test_the_compose_alertmanager_differs_from_the_documented_one_only_in_the_relay() -> None:
    ours = yaml.safe_load((ROOT / "deploy/alertmanager.yml").read_text())
    documented = yaml.safe_load((ROOT / "alertmanager.yml").read_text())
    for cfg in (ours, documented):
        cfg["global"].pop("smtp_smarthost")
        cfg["global"].pop("smtp_require_tls")
    assert ours == documented
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is not installed: run scripts/bootstrap.sh")
    out = subprocess.run([amtool, "check-config", "deploy/alertmanager.yml"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_no_secret_in_the_file_and_every_variable_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text()
                   .splitlines() if line and not line.startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))
    assert used <= set(example), used - set(example)
    for name, s in compose()["services"].items():
        env = s.get("environment", {})
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert str(value).startswith("${"), f"{name}: {key} is written in the file"
        for v in env.values():
            assert not re.search(r"://[^:/]+:[^$@/]+@", str(v)), f"{name}: a password in {v}"
