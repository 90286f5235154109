"""``stream-mlops costs`` (the cost report) and ``stream-mlops prices`` (the price table)."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from stream_mlops.cli.common import (
    AddCommand,
    Conn,
    database,
    number,
    parse_time,
    settings,
    utc,
)
from stream_mlops.costs.price_store import import_prices, load_price_map, price_versions, recompute
from stream_mlops.costs.report import analyze, recommend, render, render_report
from stream_mlops.errors import MlopsError


def cmd_costs(args: argparse.Namespace) -> int:
    s = settings(args)
    days = args.days or (7 if args.recommend else 1)
    with database(s) as conn:
        costs = analyze(conn, days)
        text = (render_report(costs, recommend(conn, days), args.format) if args.recommend
                else render(costs, args.format))
        print(text, end="" if text.endswith("\n") else "\n")  # CSV ends its last row
    return 0


def cmd_prices(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s) as conn:
        if args.action == "list":
            _list_prices(conn, args.model)
        elif args.action == "import":
            _import_prices(conn, args.file, args.effective_from)
        else:
            _recompute(conn, args.since, s.consumer_name)
    return 0


def _list_prices(conn: Conn, model: str | None) -> None:
    versions = price_versions(conn)
    if model:
        versions = [p for p in versions if p.model == model]
    print(f"{'model':28s} {'tenant':10s} {'from (UTC)':16s} {'input':>9s} "
          f"{'cached':>9s} {'write':>9s} {'output':>9s}  USD per 1M tokens")
    for p in versions:
        print(f"{p.model:28s} {p.tenant_id or '*':10s} {utc(p.effective_from):16s} "
              f"{p.input:>9} {p.cached_input if p.cached_input is not None else '-':>9} "
              f"{p.cache_write if p.cache_write is not None else '-':>9} {p.output:>9}")


def _import_prices(conn: Conn, file: str | None, effective_from: str | None) -> None:
    if not file:
        raise MlopsError("prices import needs a FILE (our format or LiteLLM's map)")
    prices = load_price_map(Path(file), effective_from=time.time())
    if effective_from is not None:  # over the map's own as_of and dates
        at = parse_time(effective_from)
        prices = [replace(p, effective_from=at) for p in prices]
    new = import_prices(conn, prices)
    print(f"{len(new)} price version(s) added or corrected"
          + (": " + ", ".join(sorted({p.model for p in new})) if new else
             " (every price already in force)"))
    if new:
        print("rows already priced keep their cost; run `stream-mlops prices recompute "
              "--since DATE` to re-cost them")


def _recompute(conn: Conn, since: str | None, consumer: str) -> None:
    if not since:
        raise MlopsError("prices recompute needs --since (e.g. --since 2026-11-01)")
    r = recompute(conn, datetime.fromtimestamp(parse_time(since), UTC), consumer)
    print(f"{r.rows} row(s) re-costed ({r.newly_priced:+d} priced), cost changed by "
          f"${r.delta_usd:,.6f}; {r.consumed_rows} already consumed: their hourly "
          "roll-ups and totals moved with them")


def add_costs_command(add: AddCommand) -> None:
    costs = add("costs", "cost, requests, cost per request and trend per function")
    costs.add_argument("--days", type=number(int, 1, 3660),
                       help="period length in days (1; 7 with --recommend)")
    costs.add_argument("--recommend", action="store_true",
                       help="add recommendations with estimated monthly savings")
    costs.add_argument("--format", choices=["table", "json", "csv"], default="table")
    costs.set_defaults(fn=cmd_costs)


def add_prices_command(add: AddCommand) -> None:
    prices = add("prices", "list price versions, import a JSON price map, re-cost rows")
    prices.add_argument("action", choices=["list", "import", "recompute"])
    prices.add_argument("file", nargs="?", help="price map to import (JSON)")
    prices.add_argument("--model", help="list: only this model")
    prices.add_argument("--effective-from",
                        help="import: when the imported prices apply from (default: now, "
                             "or the map's as_of)")
    prices.add_argument("--since", help="recompute: re-cost rows created since this time")
    prices.set_defaults(fn=cmd_prices)
