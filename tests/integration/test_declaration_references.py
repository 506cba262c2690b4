"""The declaration's references agree with the carbot_v2 schema and with docs/mapping.md.

A required reference (the row is quarantined without its parent, ON DELETE CASCADE/RESTRICT) sits on a NOT NULL
column of carbot_v2; an optional one (set NULL when the parent does not migrate, ON DELETE SET NULL) on a nullable
column. A reference declared optional on a NOT NULL column would make the generated foreign key's SET NULL fail.
"""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping
from conftest import REPO

T = "carbot_v2"
REFERENCES = [(e["target"], r) for e in mapping.TABLES for r in e["references"]]


@pytest.fixture(scope="module")
def not_null(make_database):
    db = make_database("decl")
    conn = db.connect(autocommit=False)
    mapping.ensure_schema(conn, T)
    mapping.apply_sql_files(conn, str(REPO / "sql" / "v2"), [T])
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname, a.attname, a.attnotnull FROM pg_attribute a "
                    "JOIN pg_class c ON c.oid = a.attrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND a.attnum > 0", (T,))
        out = {(t, c): nn for t, c, nn in cur.fetchall()}
    conn.close()
    return out


@pytest.mark.parametrize("table,ref", REFERENCES, ids=["%s.%s" % (t, r["column"]) for t, r in REFERENCES])
def test_required_references_are_not_null_columns(not_null, table, ref):
    column = (table, ref["column"])
    assert column in not_null, "%s.%s is not a column of carbot_v2" % column
    assert not_null[column] == ref["required"], (
        "%s.%s is declared %s but the column is %s in carbot_v2" % (
            table, ref["column"], "required" if ref["required"] else "optional",
            "NOT NULL" if not_null[column] else "nullable"))
    expected = ("CASCADE", "RESTRICT") if ref["required"] else ("SET NULL",)
    assert ref["on_delete"] in expected, (table, ref)
