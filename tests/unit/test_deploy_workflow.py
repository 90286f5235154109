"""The example release workflow is valid YAML of GitHub Actions' shape and calls the deploy
commands as the CLI defines them."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from stream_mlops.cli.main import build_parser

WORKFLOW = Path(__file__).resolve().parents[2] / "deploy" / "examples" / \
    "github-actions-blue-green.yml"


def test_the_example_workflow_is_valid_and_uses_the_deploy_commands() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["name"] and doc[True]["workflow_dispatch"]  # YAML 1.1 reads `on` as True
    steps = doc["jobs"]["release"]["steps"]
    assert all("uses" in s or "run" in s for s in steps)
    calls = [line.strip() for s in steps for line in s.get("run", "").replace(
        "\\\n", " ").splitlines() if "stream-mlops deploy" in line]
    actions = set()
    parser = build_parser()
    for call in calls:
        words = shlex.split(call.split("stream-mlops ", 1)[1].split(" | ")[0]
                            .split(" >> ")[0].split(" || ")[0].rstrip(")"))
        args = parser.parse_args(words)  # exits (SystemExit) on anything the CLI refuses
        actions.add(args.action)
    assert actions == {"start", "wait", "status", "history", "rollback"}
