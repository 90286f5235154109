"""The privilege table of docs/security.md is the catalog's: generated from it, compared
with it (a grant that changes without the page changing fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROLES = ("mlops_writer", "mlops_reader", "mlops_processor")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def catalog_table(url: str) -> list[str]:
    """One markdown row per (role, object): its privileges, column lists where they are
    granted by column."""
    out = []
    with psycopg.connect(url) as conn:
        objects = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'mlops' AND c.relkind IN ('r', 'v') ORDER BY 1")]
        for role in ROLES:
            for obj in objects:
                granted = []
                for priv in PRIVILEGES:
                    row = conn.execute(
                        "SELECT has_table_privilege(%(r)s, %(o)s, %(p)s),"
                        " (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum)"
                        "  FROM pg_attribute a WHERE a.attrelid = %(o)s::regclass"
                        "  AND a.attnum > 0 AND NOT a.attisdropped AND %(p)s <> 'DELETE'"
                        "  AND has_column_privilege(%(r)s, %(o)s, a.attname, %(p)s))",
                        {"r": role, "o": f"mlops.{obj}", "p": priv}).fetchone()
                    assert row is not None
                    whole, columns = row
                    if whole:
                        granted.append(priv)
                    elif columns:
                        granted.append(f"{priv} ({columns})")
                if granted:
                    out.append(f"| `{role}` | `{obj}` | {'; '.join(granted)} |")
    return out


def page_table() -> list[str]:
    text = PAGE.read_text()
    block = text.split("<!-- privileges: generated -->", 1)[1].split("<!-- end -->", 1)[0]
    return [line for line in block.strip().splitlines()
            if re.match(r"^\| `mlops_", line)]


def test_the_page_lists_exactly_the_grants_the_migrations_make(db_url: str) -> None:
    want = catalog_table(db_url)
    assert page_table() == want, "docs/security.md is out of date; its table is:\n" + \
        "\n".join(want)


def test_every_object_is_owned_by_mlops_owner(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        others = conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'mlops'"
            " AND pg_get_userbyid(c.relowner) <> 'mlops_owner'"
            " UNION ALL SELECT p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'mlops'"
            " AND pg_get_userbyid(p.proowner) <> 'mlops_owner'").fetchall()
    assert others == []


def regenerate() -> None:
    """Rewrite the page's table from a freshly migrated database:
    ``.venv/bin/python -m tests.integration.test_privileges``."""
    from tests.conftest import TEMPLATE, running_server

    with running_server() as pg:
        rows = catalog_table(pg.url_for(TEMPLATE))
    head, rest = PAGE.read_text().split("<!-- privileges: generated -->", 1)
    old, tail = rest.split("<!-- end -->", 1)
    keep = [line for line in old.strip().splitlines() if not re.match(r"^\| `mlops_", line)]
    PAGE.write_text(head + "<!-- privileges: generated -->\n" + "\n".join(keep + rows)
                    + "\n<!-- end -->" + tail)


if __name__ == "__main__":
    regenerate()
