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
from stream_mlops.costs.price_source import DEFAULT_PROVIDERS
from stream_mlops.costs.price_store import (
    import_prices,
    load_price_map,
    price_aliases,
    price_versions,
    recompute,
    sync_prices,
)
from stream_mlops.costs.pricing import model_key, undated_model_key
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
        elif args.action == "sync":
            _sync_prices(conn, args.provider or list(DEFAULT_PROVIDERS), args.verbose)
        elif args.action == "import":
            _import_prices(conn, args.file, args.effective_from)
        else:
            _recompute(conn, args.since, s.consumer_name)
    return 0


def _list_prices(conn: Conn, model: str | None) -> None:
    versions = price_versions(conn)
    if model:
        # What a request naming `model` is priced as: its own rows, else its alias's.
        keys = {model_key(model), undated_model_key(model)}
        names = {model} | {a.model for a in price_aliases(conn) if a.alias in keys}
        versions = [p for p in versions if p.model in names]
        if not versions:
            raise MlopsError(f"{model}: no price and no alias (requests naming it are "
                             "counted as unpriced)")
    print(f"{'model':32s} {'tenant':8s} {'from (UTC)':16s} {'above':>7s} {'input':>9s} "
          f"{'cached':>9s} {'write':>9s} {'write1h':>9s} {'output':>9s}  source "
          "(USD per 1M tokens)")

    def usd(value: object) -> str:
        return "-" if value is None else str(value)

    for p in versions:
        print(f"{p.model:32s} {p.tenant_id or '*':8s} {utc(p.effective_from):16s} "
              f"{p.above_input_tokens or '':>7} {usd(p.input):>9} {usd(p.cached_input):>9} "
              f"{usd(p.cache_write):>9} {usd(p.cache_write_1h):>9} {usd(p.output):>9}  "
              f"{p.source or ''}")


def _sync_prices(conn: Conn, providers: list[str], verbose: bool) -> None:
    s = sync_prices(conn, providers)
    models = {p.model for p in s.source.prices}
    print(f"{s.source.prices[0].source if s.source.prices else 'genai-prices'}: "
          f"{len(models)} models of {', '.join(s.source.providers)}; "
          f"{len(s.added)} price row(s) added or corrected, {s.aliases} alias(es) "
          "added or moved")
    if s.source.skipped:
        reasons: dict[str, list[str]] = {}
        for k in s.source.skipped:
            reasons.setdefault(k.reason, []).append(f"{k.provider}/{k.model}")
        print(f"left out (unpriced unless you import a price): {len(s.source.skipped)}")
        for reason, names in sorted(reasons.items()):
            shown = names if verbose else names[:5]
            print(f"  {reason}: {', '.join(shown)}"
                  + ("" if len(shown) == len(names) else f" (+{len(names) - len(shown)}; "
                     "--verbose lists all)"))
    if s.added:
        print("rows already priced keep their cost; run `stream-mlops prices recompute "
              "--since DATE` to re-cost them")


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
    prices = add("prices", "list price versions, sync the maintained source (genai-prices), "
                 "import a JSON price map, re-cost rows")
    prices.add_argument("action", choices=["list", "sync", "import", "recompute"])
    prices.add_argument("file", nargs="?", help="price map to import (JSON)")
    prices.add_argument("--model", help="list: what a request naming this model is priced as")
    prices.add_argument("--provider", action="append",
                        help="sync: a genai-prices provider id (repeatable; default: "
                             + ", ".join(DEFAULT_PROVIDERS) + ")")
    prices.add_argument("--verbose", action="store_true",
                        help="sync: list every model left out")
    prices.add_argument("--effective-from",
                        help="import: when the imported prices apply from (default: now, "
                             "or the map's as_of)")
    prices.add_argument("--since", help="recompute: re-cost rows created since this time")
    prices.set_defaults(fn=cmd_prices)
