"""The deployment lifecycle as the database enforces it (sql/0013_deployments.sql): every
transition, the refused ones, one active deployment per function, history, RLS, routing."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from stream_mlops.client import Router
from stream_mlops.deployments import store as deployments
from stream_mlops.deployments.store import DeploymentSpec
from tests.conftest import Roles

START = ("INSERT INTO mlops.deployments (tenant_id, function_name, version)"
         " VALUES (%s, %s, %s) RETURNING id")


def _start(conn: psycopg.Connection[Any], version: str = "v2", function: str = "f",
           tenant: str = "default") -> int:
    row = conn.execute(START, (tenant, function, version)).fetchone()
    assert row is not None
    return int(row[0])


def _move(conn: psycopg.Connection[Any], dep: int, status: str, reason: str,
          **extra: Any) -> None:
    sets = ", ".join(f"{k} = %({k})s" for k in extra)
    conn.execute(f"UPDATE mlops.deployments SET status = %(s)s, reason = %(r)s"
                 f"{', ' + sets if sets else ''} WHERE id = %(id)s",
                 {"s": status, "r": reason, "id": dep, **extra})


def _row(conn: psycopg.Connection[Any], dep: int) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM mlops.deployments WHERE id = %s", (dep,))
    names = [d.name for d in cur.description or ()]
    row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def _route(conn: psycopg.Connection[Any], unit: str, function: str = "f",
           tenant: str | None = "default") -> tuple[str, str | None]:
    row = conn.execute("SELECT slot, version FROM mlops.route(%s, %s, %s)",
                       (function, unit, tenant)).fetchone()
    assert row is not None
    return row[0], row[1]


def test_the_full_lifecycle_records_every_transition_and_share(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert _route(conn, "u1") == ("blue", None)  # never deployed: blue, no version
        dep = _start(conn, "v1")
        r = _row(conn, dep)
        assert (r["status"], r["slot"], r["previous_slot"], r["traffic_percent"]) == (
            "pending", "green", "blue", 0)
        _move(conn, dep, "shifting", "step 1 of 4: 10 %", traffic_percent=10, step_index=0)
        conn.execute("UPDATE mlops.deployments SET traffic_percent = 25, step_index = 1"
                     " WHERE id = %s", (dep,))
        _move(conn, dep, "promoted", "no harm after the last step")
        assert _row(conn, dep)["traffic_percent"] == 100
        assert _route(conn, "u1") == ("green", "v1")
        _move(conn, dep, "retired", "validated for one more period")
        conn.execute("UPDATE mlops.deployments SET gate = '{\"n\": 1}' WHERE id = %s", (dep,))
        r = _row(conn, dep)
        assert r["finished_at"] is not None and r["retired_at"] is not None
        transitions = conn.execute(
            "SELECT from_status, to_status, traffic_percent, reason"
            " FROM mlops.deployment_transitions WHERE deployment_id = %s ORDER BY id",
            (dep,)).fetchall()
        shares = [s for s, in conn.execute(
            "SELECT traffic_percent FROM mlops.deployment_traffic WHERE deployment_id = %s"
            " ORDER BY id", (dep,))]
        audited = conn.execute("SELECT count(*) FROM mlops.audit_log"
                               " WHERE table_name = 'deployments'").fetchone()
        # The next deployment goes to the other slot, and rolls back to this one.
        dep2 = _start(conn, "v2")
        assert (_row(conn, dep2)["slot"], _row(conn, dep2)["previous_version"]) == (
            "blue", "v1")
        _move(conn, dep2, "rolled_back", "error_rate worse")
        assert _route(conn, "u1") == ("green", "v1")
    assert transitions == [
        (None, "pending", 0, "started"),
        ("pending", "shifting", 10, "step 1 of 4: 10 %"),
        ("shifting", "promoted", 100, "no harm after the last step"),
        ("promoted", "retired", 100, "validated for one more period")]
    assert shares == [0, 10, 25, 100]
    assert audited is not None and audited[0] == 5  # insert + 4 changes; the gate's writes are not


@pytest.mark.parametrize(("path", "refused"), [
    (["rolled_back"], "promoted"),          # promote a rolled-back deployment
    (["failed"], "shifting"),
    (["shifting", "promoted", "retired"], "rolled_back"),
    ([], "retired"),                        # pending cannot retire
    (["shifting"], "pending"),
    (["shifting", "promoted"], "shifting"),
])
def test_invalid_transitions_are_refused(db_url: str, path: list[str], refused: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        dep = _start(conn)
        for i, s in enumerate(path):
            _move(conn, dep, s, f"reason {i}")
        with pytest.raises(psycopg.errors.CheckViolation, match="cannot"):
            _move(conn, dep, refused, "by hand")
        assert _row(conn, dep)["status"] == (path[-1] if path else "pending")


def test_shares_only_grow_reasons_are_required_and_the_plan_is_fixed(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        dep = _start(conn)
        with pytest.raises(psycopg.errors.CheckViolation, match="no traffic"):
            conn.execute("UPDATE mlops.deployments SET traffic_percent = 5 WHERE id = %s",
                         (dep,))
        with pytest.raises(psycopg.errors.CheckViolation, match="needs its reason"):
            conn.execute("UPDATE mlops.deployments SET status = 'shifting' WHERE id = %s",
                         (dep,))
        _move(conn, dep, "shifting", "step 1", traffic_percent=50)
        with pytest.raises(psycopg.errors.CheckViolation, match="only grows"):
            conn.execute("UPDATE mlops.deployments SET traffic_percent = 25 WHERE id = %s",
                         (dep,))
        with pytest.raises(psycopg.errors.CheckViolation, match="fixed"):
            conn.execute("UPDATE mlops.deployments SET version = 'v3' WHERE id = %s", (dep,))
        with pytest.raises(psycopg.errors.CheckViolation, match="new deployment starts"):
            conn.execute("INSERT INTO mlops.deployments (function_name, version, status)"
                         " VALUES ('g', 'v1', 'promoted')")
        _move(conn, dep, "rolled_back", "bad")
        assert _row(conn, dep)["traffic_percent"] == 0


def test_one_active_deployment_per_function(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        dep = _start(conn)
        with pytest.raises(psycopg.errors.UniqueViolation):
            _start(conn, "v3")
        _start(conn, "v3", function="other")  # another function
        _start(conn, "v3", tenant="t2")  # another tenant
        _move(conn, dep, "rolled_back", "bad")
        _start(conn, "v3")  # once the first is over


@pytest.mark.parametrize(("column", "value", "constraint"), [
    ("steps", [10, 10, 100], "steps_must_increase"),
    ("steps", [50, 25], "steps_must_increase"),
    ("steps", [0, 50], "steps_must_increase"),
    ("steps", [50, 150], "steps_must_increase"),
    ("steps", [], "steps_must_increase"),
    ("min_samples", -5, "min_samples"),
    ("step_seconds", -1, "step_seconds"),
    ("version", "v\x1b[2J", "version"),
    ("version", "", "version"),
    ("health_url", "file:///etc/passwd", "health_url"),
])
def test_bad_plans_are_refused_by_name(db_url: str, column: str, value: Any,
                                       constraint: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        params = {"function_name": "f", "version": "v2", column: value}
        cols = ", ".join(params)
        with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
            conn.execute(f"INSERT INTO mlops.deployments ({cols})"
                         f" VALUES ({', '.join('%s' for _ in params)})",
                         list(params.values()))
        assert conn.execute("SELECT count(*) FROM mlops.deployments").fetchone() == (0,)


def test_routing_is_stable_per_unit_and_follows_the_share(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        dep = _start(conn, "v2")
        units = [f"user-{i}" for i in range(2000)]
        routed: dict[float, set[str]] = {}
        for share in (10.0, 25.0, 50.0):
            _move(conn, dep, "shifting", f"to {share}", traffic_percent=share) \
                if share == 10.0 else conn.execute(
                    "UPDATE mlops.deployments SET traffic_percent = %s WHERE id = %s",
                    (share, dep))
            got: dict[str, str] = dict(conn.execute(
                "SELECT u, (SELECT slot FROM mlops.route('f', u, 'default'))"
                " FROM unnest(%s::text[]) u", (units,)).fetchall())
            routed[share] = {u for u, s in got.items() if s == "green"}
            assert abs(len(routed[share]) / len(units) - share / 100) < 0.03
        # A unit on the new version stays on it as the share grows.
        assert routed[10.0] <= routed[25.0] <= routed[50.0]


def test_tenants_see_and_move_only_their_own_deployments(roles: Roles) -> None:
    with psycopg.connect(roles.url, autocommit=True) as su:
        dep_b = _start(su, "v9", tenant="b")
    with roles.as_(roles.writer_a) as wa:
        dep = _start(wa, "v2", tenant="a")
        assert _route(wa, "u1", tenant=None) == ("blue", None)  # its one tenant
        wa.execute("UPDATE mlops.deployments SET status = 'rolled_back', reason = 'x'"
                   " WHERE id = %s", (dep_b,))  # invisible: nothing happens
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            wa.execute("UPDATE mlops.deployments SET gate = '{}' WHERE id = %s", (dep,))
        wa.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            wa.execute("INSERT INTO mlops.deployment_transitions (tenant_id, deployment_id,"
                       " to_status, traffic_percent) VALUES ('a', %s, 'retired', 100)", (dep,))
        wa.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _start(wa, "v2", tenant="b")
    with roles.as_(roles.reader_b) as rb:
        seen = rb.execute("SELECT id FROM mlops.deployments").fetchall()
        history = rb.execute("SELECT DISTINCT deployment_id FROM mlops.deployment_transitions"
                             ).fetchall()
    with psycopg.connect(roles.url) as su:
        assert _row(su, dep_b)["status"] == "pending"
    assert seen == [(dep_b,)] and history == [(dep_b,)]


def test_python_routing_gives_the_sql_answer_and_is_cached(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        dep = _start(conn, "v2")
        _move(conn, dep, "shifting", "step 1", traffic_percent=12.5)
        units = [f"session-{i}" for i in range(3000)]
        sql: dict[str, str] = dict(conn.execute(
            "SELECT u, (SELECT slot || '/' || coalesce(version, '-')"
            " FROM mlops.route('f', u, 'default')) FROM unnest(%s::text[]) u",
            (units,)).fetchall())
        clock = [0.0]
        router = Router(db_url, ttl_seconds=5.0, clock=lambda: clock[0])
        py = {u: "/".join(x or "-" for x in router.route("f", u, "default")) for u in units}
        assert py == sql
        assert router.reads == 1  # one read for 3000 units
        conn.execute("UPDATE mlops.deployments SET traffic_percent = 50 WHERE id = %s",
                     (dep,))
        clock[0] = 4.9
        assert router.current("f", "default").traffic_percent == 12.5  # cached
        clock[0] = 5.0
        assert router.current("f", "default").traffic_percent == 50  # read again
        _move(conn, dep, "rolled_back", "bad")
        clock[0] = 10.0
        assert router.route("f", "session-1", "default") == ("blue", None)


@pytest.mark.parametrize("path", [
    ["shifting", "promoted", "retired"], ["promoted", "retired"], ["rolled_back"],
    ["failed"], ["shifting", "rolled_back"], ["shifting", "failed"],
    ["shifting", "promoted", "rolled_back"], ["shifting", "promoted", "failed"],
    ["promoted", "rolled_back"]])
def test_every_valid_transition_is_taken_and_recorded(db_url: str, path: list[str]) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        dep = _start(conn)
        for i, s in enumerate(path):
            _move(conn, dep, s, f"move {i}", **({"traffic_percent": 10}
                                                if s == "shifting" else {}))
        r = _row(conn, dep)
        moved = [t for t, in conn.execute(
            "SELECT to_status FROM mlops.deployment_transitions WHERE deployment_id = %s"
            " ORDER BY id", (dep,))]
    assert moved == ["pending", *path]
    assert r["traffic_percent"] == (100 if path[-1] in ("promoted", "retired") else 0)
    assert (r["finished_at"] is not None) == (path[-1] in ("retired", "rolled_back",
                                                           "failed"))


def test_the_application_role_starts_and_rolls_back_its_deployment(roles: Roles) -> None:
    with roles.as_(roles.writer_a) as wa:
        wa.autocommit = True
        dep = deployments.start(wa, DeploymentSpec("f", "v2", tenant_id="a"))
        d = deployments.move(wa, "f", "rolled_back", "by hand", "a")
    assert (d.id, d.status) == (dep, "rolled_back")
