"""The feature store against a real Postgres: definitions, typed writes, online reads,
point-in-time correct history (crafted timelines and a merge_asof reference), tenants."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest

from stream_mlops.features import FeatureError, FeatureStore
from tests.conftest import Roles

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def fs(db_url: str) -> Any:
    with FeatureStore(db_url) as store:
        store.define("spend", "user", "float", ttl=timedelta(minutes=10))
        store.define("orders", "user", "int")
        store.define("vip", "user", "bool")
        store.define("country", "user", "string")
        store.define("embedding", "user", "float_list", vector_length=3)
        yield store


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM mlops.feature_store").fetchone()
        assert row is not None
        return int(row[0])


# -- definitions ---------------------------------------------------------------------------

def test_definitions_are_listed_audited_and_types_cannot_change(fs: FeatureStore,
                                                                db_url: str) -> None:
    defs = {d.name: d for d in fs.definitions("user")}
    assert set(defs) == {"spend", "orders", "vip", "country", "embedding"}
    assert defs["spend"].ttl == timedelta(minutes=10) and defs["orders"].ttl is None
    assert defs["embedding"].vector_length == 3
    fs.define("spend", "user", "float", ttl=timedelta(minutes=5), description="7-day spend")
    assert {d.name: d.description for d in fs.definitions("user")}["spend"] == "7-day spend"
    with pytest.raises(FeatureError, match="'spend': already defined for 'user' as float"):
        fs.define("spend", "user", "int")
    with pytest.raises(FeatureError, match="value_type must be one of"):
        fs.define("x", "user", "decimal")
    with pytest.raises(FeatureError, match="ttl must be positive"):
        fs.define("x", "user", "float", ttl=timedelta(0))
    with psycopg.connect(db_url) as conn:
        ops = conn.execute("SELECT operation FROM mlops.audit_log WHERE table_name ="
                           " 'feature_definitions' ORDER BY id").fetchall()
    assert [o for (o,) in ops] == ["INSERT"] * 5 + ["UPDATE"]


# -- writes --------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "message"), [
    ({"spend": "12"}, "row 1 feature 'spend' must be a number (float), got string"),
    ({"orders": 1.5}, "row 1 feature 'orders' must be an integer (int)"),
    ({"orders": True}, "row 1 feature 'orders' must be an integer (int), got true"),
    ({"vip": 1}, "row 1 feature 'vip' must be true or false (bool), got number"),
    ({"country": "x" * 5000}, "row 1 feature 'country' is a string of 5000 characters"),
    ({"embedding": [1.0, 2.0]}, "row 1 feature 'embedding' has 2 elements, the feature is "
                                "defined with 3"),
    ({"embedding": [1.0, "a", 2.0]}, "row 1 feature 'embedding' must be a list of numbers"),
    ({"nope": 1.0}, "row 1 feature 'nope' is not defined for entity type 'user'"),
    ({"spend": None}, "row 1 feature 'spend' is null"),
])
def test_a_bad_value_is_refused_naming_row_and_feature_and_nothing_is_written(
        fs: FeatureStore, db_url: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises(FeatureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fs.put_many("user", [("u1", {"spend": 1.0}, at(0)), ("u2", values, at(0))])
    assert stored(db_url) == 0


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "row 1 feature 'spend' is nan: values must be finite"),
    (float("inf"), "row 1 feature 'spend' is inf: values must be finite"),
    (object(), "row 1 feature 'spend' has type object"),
])
def test_non_finite_and_unknown_python_values_are_refused_before_sending(
        fs: FeatureStore, db_url: str, value: Any, message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        fs.put_many("user", [("u1", {"spend": 1.0}, at(0)), ("u2", {"spend": value}, at(0))])
    assert stored(db_url) == 0


def test_unknown_entity_type_and_bad_rows_are_named(fs: FeatureStore) -> None:
    with pytest.raises(FeatureError, match="unknown entity type 'item'"):
        fs.put("item", "i1", {"spend": 1.0})
    with pytest.raises(FeatureError, match="row 0: entity_id must be a string"):
        fs.put_many("user", [(7, {"spend": 1.0}, None)])  # type: ignore[list-item]
    with pytest.raises(FeatureError, match="unknown entity type 'item'"):
        fs.get_online("item", ["i1"], ["spend"])
    with pytest.raises(FeatureError, match="feature 'nope' is not defined for entity type"):
        fs.get_historical("user", [("u1", at(0))], ["nope"])


def test_a_batch_error_names_the_row_of_the_whole_batch(fs: FeatureStore, db_url: str,
                                                        monkeypatch: Any) -> None:
    monkeypatch.setattr("stream_mlops.features.store.CHUNK", 10)
    rows: list[tuple[str, dict[str, Any], datetime]] = [
        (f"u{i}", {"orders": i}, at(0)) for i in range(25)]
    rows[23] = ("u23", {"orders": "x"}, at(0))
    with pytest.raises(FeatureError, match="row 23 feature 'orders' must be an integer"):
        fs.put_many("user", rows)
    assert stored(db_url) == 0


def test_writes_are_idempotent_and_a_new_value_at_the_same_time_replaces(
        fs: FeatureStore, db_url: str) -> None:
    assert fs.put("user", "u1", {"orders": 1, "spend": 2.5}, at(0)).written == 2
    assert fs.put("user", "u1", {"orders": 1, "spend": 2.5}, at(0)).written == 0
    assert stored(db_url) == 2
    assert fs.put("user", "u1", {"orders": 2}, at(0)).written == 1
    assert stored(db_url) == 2
    assert fs.get_historical("user", [("u1", at(0))], ["orders"])[0]["orders"] == 2
    # One batch holding the same key twice: the later row wins.
    fs.put_many("user", [("u2", {"orders": 5}, at(1)), ("u2", {"orders": 6}, at(1))])
    assert fs.get_historical("user", [("u2", at(1))], ["orders"])[0]["orders"] == 6


def test_far_future_values_are_quarantined_with_the_reason(fs: FeatureStore,
                                                           db_url: str) -> None:
    now = datetime.now(UTC)
    r = fs.put_many("user", [("u1", {"orders": 1}, now),
                             ("u1", {"orders": 9}, now + timedelta(days=3))])
    assert (r.written, r.quarantined) == (1, 1)
    assert fs.get_online("user", ["u1"], ["orders"]) == {"u1": {"orders": 1}}
    with psycopg.connect(db_url) as conn:
        reason = conn.execute("SELECT reason FROM mlops.feature_quarantine").fetchone()
    assert reason is not None and "s in the future" in reason[0]


def test_values_round_trip_with_their_types(fs: FeatureStore) -> None:
    fs.put("user", "u1", {"spend": 3, "orders": 2**62, "vip": True, "country": "fr",
                          "embedding": [1, 2.5, -3]}, datetime.now(UTC))
    got = fs.get_online("user", ["u1"], ["spend", "orders", "vip", "country", "embedding"])
    assert got == {"u1": {"spend": 3.0, "orders": 2**62, "vip": True, "country": "fr",
                          "embedding": [1.0, 2.5, -3.0]}}
    assert isinstance(got["u1"]["spend"], float)


# -- online reads --------------------------------------------------------------------------

def test_online_reads_the_latest_value_within_ttl_and_says_missing(fs: FeatureStore,
                                                                   db_url: str) -> None:
    now = datetime.now(UTC)
    fs.put_many("user", [
        ("u1", {"spend": 1.0, "orders": 1}, now - timedelta(minutes=30)),
        ("u1", {"orders": 2}, now - timedelta(minutes=20)),  # late write of an older time
        ("u1", {"spend": 5.0}, now - timedelta(minutes=5)),
        ("u2", {"spend": 7.0, "orders": 3}, now - timedelta(minutes=11)),  # spend expired
    ])
    fs.put("user", "u1", {"orders": 0}, now - timedelta(minutes=25))  # out of order
    got = fs.get_online("user", ["u1", "u2", "u3"], ["spend", "orders"])
    assert got == {"u1": {"spend": 5.0, "orders": 2}, "u2": {"spend": None, "orders": 3},
                   "u3": {"spend": None, "orders": None}}
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT names, entities, missing FROM mlops.feature_reads").fetchone()
    assert row == (["spend", "orders"], 3, [2, 1])


# -- point-in-time correctness -------------------------------------------------------------

def test_history_is_point_in_time_correct_on_a_crafted_timeline(fs: FeatureStore) -> None:
    fs.put_many("user", [
        ("u1", {"spend": 1.0, "orders": 1}, at(0)),
        ("u1", {"spend": 2.0}, at(5)),
        ("u1", {"orders": 3}, at(20)),
    ])
    fs.put("user", "u1", {"spend": 1.5}, at(3))  # arrives late, belongs between 0 and 5
    rows = [("u1", at(-1)), ("u1", at(0)), ("u1", at(4)), ("u1", at(5)),
            ("u1", at(15)), ("u1", at(15.0001)), ("u1", at(20)), ("u2", at(20))]
    got = [(r["spend"], r["orders"]) for r in fs.get_historical("user", rows,
                                                                 ["spend", "orders"])]
    assert got == [
        (None, None),   # before any value
        (1.0, 1),       # equal timestamps: the value at exactly that time counts
        (1.5, 1),       # the late arrival
        (2.0, 1),
        (2.0, 1),       # TTL edge: 10 minutes old exactly is still valid
        (None, 1),      # ... and a moment later it has expired (orders has no TTL)
        (None, 3),
        (None, None),   # an entity with no value
    ]
    first = fs.get_historical("user", rows[:1], ["spend"])[0]
    assert first == {"entity_id": "u1", "timestamp": at(-1), "spend": None}


def test_history_agrees_with_merge_asof_on_random_timelines(fs: FeatureStore) -> None:
    rng = random.Random(15)
    entities = [f"e{i}" for i in range(30)]
    writes = []
    for e in entities:
        for _ in range(rng.randrange(0, 12)):
            writes.append((e, {"orders": rng.randrange(100)},
                           at(rng.randrange(0, 600) + rng.choice([0, 0.5]))))
    rng.shuffle(writes)  # out of order
    seen: dict[tuple[str, datetime], int] = {}
    for e, v, t in writes:
        seen[(e, t)] = v["orders"]  # the last write of a key wins
    fs.put_many("user", writes)
    requests = [(rng.choice([*entities, "nobody"]), at(rng.randrange(-10, 650)))
                for _ in range(400)]
    got = fs.get_historical("user", requests, ["orders"])

    left = pd.DataFrame(requests, columns=["entity_id", "timestamp"])
    left["order"] = range(len(left))
    right = pd.DataFrame([(e, t, v) for (e, t), v in seen.items()],
                         columns=["entity_id", "timestamp", "orders"])
    ref = pd.merge_asof(left.sort_values("timestamp"), right.sort_values("timestamp"),
                        on="timestamp", by="entity_id", direction="backward",
                        allow_exact_matches=True).sort_values("order")
    want = [None if pd.isna(v) else int(v) for v in ref["orders"]]
    assert [r["orders"] for r in got] == want
    assert sum(v is not None for v in want) > 200  # the reference found real values

    frame = fs.get_historical("user", left[["entity_id", "timestamp"]], ["orders"])
    assert [r["orders"] for r in frame] == want


# -- tenants -------------------------------------------------------------------------------

def test_tenants_are_isolated_with_real_roles(roles: Roles) -> None:
    with psycopg.connect(roles.url) as su:
        su.execute("INSERT INTO mlops.tenant_roles (role_name, tenant_id) VALUES (%s, 'b')",
                   (roles.processor,))
    url_of = {r: roles.pg.url_for(roles.dbname, user=r)
              for r in (roles.writer_a, roles.writer_b, roles.reader_a, roles.reader_b)}
    with FeatureStore(url_of[roles.writer_a]) as wa, FeatureStore(url_of[roles.writer_b]) as wb:
        wa.define("score", "user", "float")
        wb.define("score", "user", "int")  # the same name in another tenant, another type
        wa.put("user", "u1", {"score": 0.5}, at(0))
        wb.put("user", "u1", {"score": 7}, at(0))
        with pytest.raises(FeatureError, match="may not act for tenant 'b'"):
            FeatureStore(url_of[roles.writer_a], tenant_id="b").put(
                "user", "u1", {"score": 1}, at(1))
        with pytest.raises(FeatureError, match="may not act for tenant 'b'"):
            FeatureStore(url_of[roles.writer_a], tenant_id="b").define("x", "user", "int")
    with FeatureStore(url_of[roles.reader_a]) as ra, FeatureStore(url_of[roles.reader_b]) as rb:
        assert ra.get_historical("user", [("u1", at(1))], ["score"])[0]["score"] == 0.5
        assert rb.get_historical("user", [("u1", at(1))], ["score"])[0]["score"] == 7
        with pytest.raises(FeatureError, match="may not act for tenant 'b'"):
            FeatureStore(url_of[roles.reader_a], tenant_id="b").get_historical(
                "user", [("u1", at(1))], ["score"])
        with pytest.raises(FeatureError, match=r"permission denied|may not"):
            ra.put("user", "u1", {"score": 1.0}, at(2))
    with psycopg.connect(url_of[roles.reader_a]) as conn:
        tenants = {t for (t,) in conn.execute("SELECT tenant_id FROM mlops.feature_store")}
        assert tenants == {"a"}
        defs = {t for (t,) in conn.execute("SELECT tenant_id FROM mlops.feature_definitions")}
        assert defs == {"a"}
    with psycopg.connect(url_of[roles.writer_a]) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM mlops.feature_store")


def test_sql_functions_answer_without_python(fs: FeatureStore, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT mlops.define_feature('clicks', 'user', 'int')")
        row = conn.execute(
            "SELECT * FROM mlops.put_features('user', '[{\"entity_id\": \"u1\", \"event_time\":"
            " \"2026-01-01T00:00:00Z\", \"features\": {\"clicks\": 4}}]')").fetchone()
        assert row == (1, 0)
        got = conn.execute(
            "SELECT entity_id, features FROM mlops.get_historical_features('user',"
            " ARRAY['u1', 'u2'], ARRAY['2026-01-02Z', '2026-01-02Z']::timestamptz[],"
            " ARRAY['clicks'])").fetchall()
        assert got == [("u1", {"clicks": 4}), ("u2", {})]
        online = conn.execute("SELECT * FROM mlops.get_online_features('user', ARRAY['u1'],"
                              " ARRAY['clicks'])").fetchall()
        assert online == [("u1", {"clicks": 4})]
        with pytest.raises(psycopg.errors.CheckViolation, match="row 0 event_time is not"):
            conn.execute("SELECT mlops.put_features('user', '[{\"entity_id\": \"u1\","
                         " \"event_time\": \"yesterday-ish\", \"features\": {\"clicks\": 1}}]')")


# -- the command line ----------------------------------------------------------------------

def test_the_cli_defines_puts_gets_lists_and_reports(db_url: str) -> None:
    from tests.integration.test_cli import assert_one_line_error, cli

    env = {"DATABASE_URL": db_url}
    out = cli("features", "define", "spend", "user", "float", "--ttl", "2h",
              "--description", "7-day spend", env=env)
    assert out.returncode == 0, out.stderr
    assert cli("features", "define", "tags", "user", "string", env=env).returncode == 0
    out = cli("features", "put", "user", "u1", "spend=12.5", "tags=gold", "--event-time",
              "2026-01-01T00:00:00Z", env=env)
    assert (out.returncode, out.stdout.strip()) == (0, "2 value(s) written"), out.stderr
    out = cli("features", "get", "user", "u1", "u2", "--features", "spend,tags", "--at",
              "2026-01-01T01:00:00Z", env=env)
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"entity_id": "u1", "timestamp": "2026-01-01T01:00:00+00:00", "spend": 12.5,
         "tags": "gold"},
        {"entity_id": "u2", "timestamp": "2026-01-01T01:00:00+00:00", "spend": None,
         "tags": None}]
    out = cli("features", "get", "user", "u1", "--features", "spend", env=env)
    assert json.loads(out.stdout) == {"entity_id": "u1", "spend": None}  # 2 h TTL: expired
    out = cli("features", "list", "--json", env=env)
    assert [(d["name"], d["ttl_seconds"]) for d in json.loads(out.stdout)] == [
        ("spend", 7200.0), ("tags", None)]
    out = cli("features", "stats", env=env)
    assert out.returncode == 0 and "default/user.spend" in out.stdout, out.stderr
    assert_one_line_error(cli("features", "put", "user", "u1", "spend=cheap", env=env),
                          "feature 'spend' must be a number (float), got string")
    assert_one_line_error(cli("features", "get", "item", "i1", "--features", "x", env=env),
                          "unknown entity type 'item'")
    out = cli("features", "define", "x", "user", "float", "--ttl", "soon", env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(
        "argument --ttl: 'soon' is not a positive duration such as 90s, 15m, 2h or 7d")
