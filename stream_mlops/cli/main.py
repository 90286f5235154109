"""Command line: ``stream-mlops COMMAND``; each command group lives in its own module and
adds its commands to the one parser built here."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence

import psycopg

from stream_mlops.cli import (
    alerts,
    cards,
    costs,
    deploy,
    dev,
    drift,
    experiments,
    features,
    pipeline,
)
from stream_mlops.db.connect import first_line
from stream_mlops.errors import ConfigError, MlopsError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stream-mlops",
        description="Live monitoring of AI/LLM-backed functions on PostgreSQL.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--database-url", help="overrides DATABASE_URL")
        return sp

    # Commands are listed in `--help` in the order they are added: keep the familiar one
    # (hence prices, a cost command, after drift).
    pipeline.add_commands(add)
    alerts.add_commands(add)
    costs.add_costs_command(add)
    experiments.add_commands(add)
    drift.add_commands(add)
    deploy.add_commands(add)
    cards.add_commands(add)
    features.add_commands(add)
    costs.add_prices_command(add)
    dev.add_commands(add)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        code = int(args.fn(args))
        sys.stdout.flush()  # a closed pipe shows here, where it is handled
        return code
    except ConfigError as exc:  # EX_CONFIG: what no retry fixes
        print(f"stream-mlops {args.command}: configuration error: {exc}", file=sys.stderr)
        return 78
    except MlopsError as exc:
        print(f"stream-mlops {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(f"stream-mlops {args.command}: database error: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stream-mlops {args.command}: interrupted after "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `| head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug of ours: say so in one line, keep the trace for debug
        if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
            traceback.print_exc()
        print(f"stream-mlops {args.command}: unexpected error: {type(exc).__name__}: {exc} "
              "(please report it; LOG_LEVEL=DEBUG shows the traceback)", file=sys.stderr)
        return 70
