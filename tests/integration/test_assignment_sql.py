"""mlops.assign_variant in SQL gives exactly the Python client's answer."""

from __future__ import annotations

import json

import psycopg
import pytest

from stream_mlops.experiments.assignment import assign


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.9, 0.1), (1, 2, 7), (0.2, 0.3, 0.5)])
def test_sql_and_python_agree(db_url: str, weights: tuple[float, ...]) -> None:
    arms = [(f"v{i}", w) for i, w in enumerate(weights)]
    variants = json.dumps([{"name": n, "weight": w} for n, w in arms])
    units = [f"user-{i}" for i in range(3000)]
    with psycopg.connect(db_url) as conn:
        got = [r[0] for r in conn.execute(
            "SELECT mlops.assign_variant_with('exp-seed', u, %s::jsonb)"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS t(u, o) ORDER BY o",
            (variants, units)).fetchall()]
    assert got == [assign("exp-seed", u, arms) for u in units]


def test_assign_by_experiment_id(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("INSERT INTO mlops.experiments (name, function_name, seed)"
                           " VALUES ('prompt-v2', 'summarize', 's1') RETURNING id").fetchone()
        assert row is not None
        got = conn.execute("SELECT mlops.assign_variant(%s, 'user-7')", (row[0],)).fetchone()
    assert got is not None
    assert got[0] == assign("s1", "user-7", [("control", 0.5), ("treatment", 0.5)])
