"""``stream-mlops cards``: model cards from live evidence.

    stream-mlops cards                                   latest version of every card
    stream-mlops cards FUNCTION [--format md|json|html] [--out DIR] [--regenerate]
    stream-mlops cards diff FUNCTION [V1 V2]             what changed, numbers first
    stream-mlops cards spec FUNCTION FILE                validate and store the spec
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stream_mlops.cards.build import diff_cards, render_markdown
from stream_mlops.cards.generate import (
    CardVersion,
    function_known,
    generate,
    versions,
    with_version,
)
from stream_mlops.cards.html import render_html
from stream_mlops.cards.spec import load_spec
from stream_mlops.cards.store import ConnectionRows
from stream_mlops.cli.common import AddCommand, database, nonempty, number, settings, utc
from stream_mlops.errors import MlopsError

EXT = {"md": "md", "json": "json", "html": "html"}


def _render(card: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(card, indent=2, sort_keys=True) + "\n"
    return render_html(card) if fmt == "html" else render_markdown(card)


def _file_name(card: dict[str, Any], fmt: str) -> str:
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", str(card[k])) for k in ("function", "model")]
    return f"{safe[0]}--{safe[1]}.{EXT[fmt]}"


def write_all(directory: str, files: dict[str, str]) -> list[Path]:
    """Write every file or none: each goes to a temporary name in ``directory`` first and
    is renamed into place only once all were written."""
    out = Path(directory)
    if not out.is_dir():
        raise MlopsError(f"--out {directory}: not a directory")
    if not os.access(out, os.W_OK | os.X_OK):
        raise MlopsError(f"--out {directory}: not writable")
    written: list[tuple[str, Path]] = []
    try:
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(prefix=".card-", dir=out)
            written.append((tmp, out / name))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
    except OSError as exc:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        raise MlopsError(f"--out {directory}: cannot write: {exc.strerror or exc}") from None
    for tmp, final in written:
        os.replace(tmp, final)
    return [final for _, final in written]


def cmd_cards(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    if words and words[0] == "diff":
        return _diff(args, words[1:])
    if words and words[0] == "spec":
        return _spec(args, words[1:])
    if len(words) > 1:
        raise MlopsError(f"expected at most one FUNCTION, got {' '.join(words)!r} (or: cards "
                         "diff FUNCTION [V1 V2], cards spec FUNCTION FILE)")
    s = settings(args)
    tenant = args.tenant or "default"
    with database(s, autocommit=True) as conn:
        db = ConnectionRows(conn)
        if not words:
            return _list(db, args.tenant)
        function = words[0]
        if not function_known(db, tenant, function):
            raise MlopsError(f"unknown function {function!r} for tenant {tenant!r}: no "
                             "request, spec or card (`stream-mlops cards` lists the cards)")
        stored = _latest(db, tenant, function, args.model)
        if args.regenerate or not stored:
            made = generate(db, tenant, function, now=time.time(), trigger="manual",
                            window_days=args.window_days)
            for g in made:
                if g.version is None:
                    print(f"{function} ({g.card['model']}): unchanged, no new version",
                          file=sys.stderr)
            stored = _latest(db, tenant, function, args.model)
    if not stored:
        raise MlopsError(f"no card of {function} for model {args.model!r}")
    _output([with_version(v) for v in stored], args)
    return 0


def _output(cards: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if args.out:
        for path in write_all(args.out, {_file_name(c, args.format): _render(c, args.format)
                                         for c in cards}):
            print(path)
    elif args.format == "json":
        print(json.dumps(cards[0] if len(cards) == 1 else cards, indent=2, sort_keys=True))
    else:
        print("\n".join(_render(c, args.format) for c in cards), end="")


def _latest(db: ConnectionRows, tenant: str, function: str,
            model: str | None) -> list[CardVersion]:
    seen: dict[str, CardVersion] = {}
    for v in versions(db, tenant, function, model=model):
        seen.setdefault(v.model, v)
    return list(seen.values())


def _list(db: ConnectionRows, tenant: str | None) -> int:
    found = db.rows("card_list", CardVersion, tenant=tenant)
    if not found:
        print("no model card yet (the processor makes one per function within a minute of "
              "its first traffic; `stream-mlops cards FUNCTION` makes one now)")
        return 0
    print(f"{'tenant/function':32s} {'model':24s} {'version':>7s}  {'trigger':12s} "
          "generated (UTC)")
    for v in found:
        print(f"{v.tenant_id + '/' + v.function_name:32s} {v.model:24s} {v.version:7d}  "
              f"{v.trigger:12s} {utc(v.generated_at)}")
    return 0


def _diff(args: argparse.Namespace, words: list[str]) -> int:
    if len(words) not in (1, 3):
        raise MlopsError("usage: cards diff FUNCTION [V1 V2]")
    function = words[0]
    wanted: list[int] | None = None
    if len(words) == 3:
        try:
            wanted = [int(words[1]), int(words[2])]
        except ValueError:
            raise MlopsError(f"versions are whole numbers, got {words[1]!r} and "
                             f"{words[2]!r}") from None
    tenant = args.tenant or "default"
    with database(settings(args), autocommit=True) as conn:
        all_versions = versions(ConnectionRows(conn), tenant, function, model=args.model)
    if not all_versions:
        raise MlopsError(f"no card of {function!r} for tenant {tenant!r}")
    by_model: dict[str, list[CardVersion]] = {}
    for v in all_versions:
        by_model.setdefault(v.model, []).append(v)
    for model, vs in by_model.items():
        if wanted is None:
            if len(vs) < 2:
                print(f"{function} ({model}): only version {vs[0].version}, nothing to compare")
                continue
            new, old = vs[0], vs[1]
        else:
            found = {v.version: v for v in vs}
            missing = [w for w in wanted if w not in found]
            if missing:
                raise MlopsError(f"{function} ({model}) has no version "
                                 f"{missing[0]} (versions 1 to {vs[0].version})")
            old, new = found[wanted[0]], found[wanted[1]]
        print(f"{function} ({model}): version {old.version} ({old.trigger}, "
              f"{utc(old.generated_at)}) -> {new.version} ({new.trigger}, "
              f"{utc(new.generated_at)})")
        changes = diff_cards(old.card, new.card)
        if not changes:
            print("  no change")
        for key, a, b in changes:
            print(f"  {key}: {_short(a)} -> {_short(b)}")
    return 0


def _short(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    text = text.replace("\n", " ")
    return text if len(text) <= 70 else text[:67] + "..."


def _spec(args: argparse.Namespace, words: list[str]) -> int:
    if len(words) != 2:
        raise MlopsError("usage: cards spec FUNCTION FILE")
    function, path = words
    spec = load_spec(path)
    if spec.function is not None and spec.function != function:
        raise MlopsError(f"{path}: the spec is for function {spec.function!r}, not "
                         f"{function!r}")
    tenant = args.tenant or "default"
    with database(settings(args), autocommit=True) as conn:
        ConnectionRows(conn).put_spec(tenant, function, spec, os.path.basename(path))
    print(f"{function}: spec stored from {path}; its next card carries it "
          "(`stream-mlops cards " + function + " --regenerate` makes one now)")
    return 0


def add_commands(add: AddCommand) -> None:
    cards = add("cards", "model cards from live evidence: show, export, regenerate, diff "
                "versions, store a function's spec")
    cards.add_argument("words", nargs="*", metavar="FUNCTION",
                       help="FUNCTION | diff FUNCTION [V1 V2] | spec FUNCTION FILE "
                            "(none: list the latest cards)")
    cards.add_argument("--tenant", type=nonempty, help="tenant (default: default)")
    cards.add_argument("--model", type=nonempty, help="only this model's card")
    cards.add_argument("--format", choices=sorted(EXT), default="md",
                       help="md (Hugging Face layout), json or html (default md)")
    cards.add_argument("--out", metavar="DIR",
                       help="write FUNCTION--MODEL.EXT files into DIR (all or none)")
    cards.add_argument("--regenerate", action="store_true",
                       help="generate from the evidence now (a new version if it changed)")
    cards.add_argument("--window-days", type=number(float, 0.01, 366), default=7.0,
                       help="--regenerate: the window measured (default 7)")
    cards.set_defaults(fn=cmd_cards)
