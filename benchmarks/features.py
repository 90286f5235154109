"""The feature store (issue 15). Prints JSON, keeps benchmarks/results/features.json.

    .venv/bin/python benchmarks/features.py [--entities 100000] [--features 20]
        [--versions 5] [--requests 100000] [--names 10]

On a private, durable Postgres (fsync on) holding entities x features x versions values:

1. Write throughput through the batch path (``FeatureStore.put_many``: validation, the
   idempotent upsert) against a raw COPY into the same table, in the same run.
2. Point-in-time retrieval of ``--requests`` (entity, timestamp) rows x ``--names``
   features with ``FeatureStore.get_historical`` (SQL on the primary key), against pandas
   ``merge_asof`` on the same data (one merge per feature, TTL as its tolerance), with the
   time to pull those features into pandas reported apart; the results must be identical.
   The query plan of the SQL is kept: one index scan per (row, feature), no sequential scan
   of the feature table.
3. Online reads: p50/p99 of ``get_online`` for 1 entity x 20 features and 100 entities x 10
   features.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report, start_server
from stream_mlops.features import FeatureStore

BASE = datetime(2026, 1, 1, tzinfo=UTC)
SLOT_DAYS = 6.0  # version v of a value falls in [v * 6 d, (v + 1) * 6 d): keys never collide
TTL = timedelta(days=4)  # even features expire after 4 days, odd ones never


def ttl_of(f: int) -> timedelta | None:
    return TTL if f % 2 == 0 else None


def load(url: str, entities: int, features: int, versions: int, seed: int
         ) -> tuple[pd.DataFrame, float]:
    """COPY the values in; returns them (entity, feature, time, value) and values/s."""
    rng = np.random.default_rng(seed)
    n = entities * features * versions
    ent = np.repeat(np.arange(entities), features * versions)
    feat = np.tile(np.repeat(np.arange(features), versions), entities)
    ver = np.tile(np.arange(versions), entities * features)
    offset_us = ((ver + rng.random(n)) * SLOT_DAYS * 86400e6).astype(np.int64)
    values = np.round(rng.normal(100.0, 15.0, n), 4)
    frame = pd.DataFrame({"entity": ent, "feature": feat, "offset_us": offset_us,
                          "value": values})
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        chunk = 500_000
        for lo in range(0, n, chunk):
            part = frame.iloc[lo:lo + chunk]
            times = (pd.Timestamp(BASE) + pd.to_timedelta(part["offset_us"], unit="us")
                     ).dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
            text = ("default\tuser\te" + part["entity"].astype(str) + "\tf"
                    + part["feature"].astype(str) + "\t" + part["value"].astype(str) + "\t"
                    + times + "\n")
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                    "COPY mlops.feature_store (tenant_id, feature_group, entity_id,"
                    " feature_name, value, event_time) FROM STDIN") as cp:
                cp.write("".join(text.tolist()))
    rate = n / (time.perf_counter() - started)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE mlops.feature_store")
    return frame, rate


def write_throughput(fs: FeatureStore, entities: int, features: int, seed: int) -> float:
    rng = np.random.default_rng(seed + 1)
    at = BASE + timedelta(days=SLOT_DAYS * 10)  # a new version after every stored one
    rows = [(f"e{e}", {f"f{f}": float(np.round(rng.normal(100, 15), 4))
                       for f in range(features)}, at) for e in range(entities)]
    started = time.perf_counter()
    r = fs.put_many("user", rows)
    elapsed = time.perf_counter() - started
    assert r.written == entities * features, r
    return entities * features / elapsed


def pull_seconds(url: str, names: list[int]) -> float:
    """What merge_asof needs first: the features' rows pulled out of Postgres into pandas."""
    started = time.perf_counter()
    buf = io.BytesIO()
    with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(
            "COPY (SELECT entity_id, feature_name, event_time, value::text::float8"
            " FROM mlops.feature_store WHERE feature_name = ANY(%s)) TO STDOUT",
            ([f"f{f}" for f in names],)) as cp:
        for block in cp:
            buf.write(block)
    buf.seek(0)
    frame = pd.read_csv(buf, sep="\t", header=None,
                        names=["entity_id", "feature", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--versions", type=int, default=5)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--names", type=int, default=10)
    ap.add_argument("--online-calls", type=int, default=300)
    ap.add_argument("--write-entities", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=15)
    a = ap.parse_args()
    pg = start_server()
    try:
        result = run(pg.url, a)
    finally:
        pg.stop("fast")
    report("features", result)


def run(url: str, a: argparse.Namespace) -> dict[str, Any]:
    fs = FeatureStore(url)
    for f in range(a.features):
        fs.define(f"f{f}", "user", "float", ttl=ttl_of(f))
    frame, copy_rate = load(url, a.entities, a.features, a.versions, a.seed)
    stored = len(frame)

    # 1. Writes through the batch path vs COPY.
    put_rate = write_throughput(fs, a.write_entities, a.features, a.seed)

    # 2. Point in time.
    rng = np.random.default_rng(a.seed + 2)
    span_us = int((a.versions * SLOT_DAYS + 2) * 86400e6)
    req_ent = rng.integers(0, a.entities, a.requests)
    req_off = rng.integers(0, span_us, a.requests)
    stamps = [BASE + timedelta(microseconds=int(o)) for o in req_off]
    rows = [(f"e{e}", t) for e, t in zip(req_ent, stamps, strict=True)]
    names = list(range(a.names))
    sql_times = []
    got: list[dict[str, Any]] = []
    for _ in range(2):
        started = time.perf_counter()
        got = fs.get_historical("user", rows, [f"f{f}" for f in names])
        sql_times.append(time.perf_counter() - started)

    # The reference: the same values in pandas (only the features asked for).
    base = pd.Timestamp(BASE)
    left = pd.DataFrame({"entity": req_ent, "ts": base + pd.to_timedelta(req_off, unit="us"),
                         "order": np.arange(a.requests)}).sort_values("ts")
    mine = frame[frame["feature"].isin(names)]
    started = time.perf_counter()
    right_all = pd.DataFrame({"entity": mine["entity"].to_numpy(),
                              "feature": mine["feature"].to_numpy(),
                              "ts": base + pd.to_timedelta(mine["offset_us"].to_numpy(),
                                                           unit="us"),
                              "value": mine["value"].to_numpy()})
    prep = time.perf_counter() - started
    pulled = pull_seconds(url, names)
    ref_times = []
    want: dict[int, np.ndarray[Any, Any]] = {}
    for _ in range(2):
        started = time.perf_counter()
        for f in names:
            right = right_all[right_all["feature"] == f].sort_values("ts")
            ttl = ttl_of(f)
            merged = pd.merge_asof(left, right[["entity", "ts", "value"]], on="ts",
                                   by="entity", direction="backward", allow_exact_matches=True,
                                   tolerance=None if ttl is None else pd.Timedelta(ttl))
            want[f] = merged.sort_values("order")["value"].to_numpy()
        ref_times.append(time.perf_counter() - started)
    mismatches = 0
    found = 0
    for f in names:
        for i, r in enumerate(got):
            w = want[f][i]
            g = r[f"f{f}"]
            if (g is None) != bool(np.isnan(w)) or (g is not None and g != w):
                mismatches += 1
            found += g is not None
    plan = explain(url, rows[:2_000], [f"f{f}" for f in names])

    # 3. Online reads.
    online = {}
    for label, n_ent, n_feat in (("1x20", 1, min(20, a.features)),
                                 ("100x10", 100, min(10, a.features))):
        lat = []
        for _ in range(a.online_calls):
            ids = [f"e{int(e)}" for e in rng.integers(0, a.entities, n_ent)]
            started = time.perf_counter()
            fs.get_online("user", ids, [f"f{f}" for f in range(n_feat)])
            lat.append((time.perf_counter() - started) * 1e3)
        lat.sort()
        online[label] = {"calls": len(lat), "p50_ms": round(statistics.median(lat), 3),
                         "p99_ms": round(lat[math.ceil(0.99 * len(lat)) - 1], 3)}
    fs.close()

    sql_best, ref_best = min(sql_times), min(ref_times)
    return {
        "machine": "2 shared cores, other engineers' tests and benchmarks running",
        "stored_values": stored, "entities": a.entities, "features": a.features,
        "versions": a.versions,
        "writes": {"put_many_values_per_s": round(put_rate), "copy_values_per_s":
                   round(copy_rate), "ratio_put_many_to_copy": round(put_rate / copy_rate, 3),
                   "batch_values": a.write_entities * a.features},
        "historical": {
            "requests": a.requests, "features": a.names,
            "sql_seconds": [round(t, 3) for t in sql_times],
            "merge_asof_seconds": [round(t, 3) for t in ref_times],
            "pandas_frame_build_seconds": round(prep, 3),
            "pull_into_pandas_seconds": round(pulled, 3),
            "ratio_sql_to_merge_asof": round(sql_best / ref_best, 2),
            "values_found": found, "mismatches_vs_merge_asof": mismatches,
            "plan_sample_rows": 2_000,
            "plan_seq_scan_of_feature_store": "Seq Scan on feature_store" in plan,
            "plan": plan.splitlines(),
        },
        "online": online,
    }


def explain(url: str, rows: list[tuple[str, datetime]], names: list[str]) -> str:
    """The plan of the query inside mlops.features_at, on real rows."""
    with psycopg.connect(url) as conn:
        body = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'features_at'"
                            ).fetchone()
        assert body is not None
        query = body[0].split("RETURN QUERY", 1)[1].rsplit(";", 1)[0]
        for name, value in (("p_tenant", "%(tenant)s::text"),
                            ("p_entity_type", "%(entity_type)s::text"),
                            ("p_entity_ids", "%(ids)s::text[]"),
                            ("p_at", "%(at)s::timestamptz[]"),
                            ("p_names", "%(names)s::text[]")):
            query = query.replace(name, value)
        plan = conn.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query,
                            {"tenant": "default", "entity_type": "user",
                             "ids": [e for e, _ in rows], "at": [t for _, t in rows],
                             "names": names}).fetchall()
    return "\n".join(r[0] for r in plan)


if __name__ == "__main__":
    main()
