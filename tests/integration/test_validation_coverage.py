"""Validation proves its own coverage: every column of every carbot_v2 table is under the checksum.

For each target table of the declaration, one row of a real copy (generator data, the real mapping) gets each
of its columns changed in turn behind the sync's back (``legacy_raw`` included; the key columns too), and the
checksum check must fail naming that table and that row's key. The change is made in a transaction that is
rolled back after the check, so the copy stays intact for the next column.
"""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, validation
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data
from conftest import REPO
from psycopg2 import sql

T = "carbot_v2"
SHIFT_FROM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
SHIFT_TO = "1234567890bcdefghijklmnopqrstuvwxyzaBCDEFGHIJKLMNOPQRSTUVWXYZA"


@pytest.fixture(scope="module")
def copied(make_database):
    """Generated legacy data (scale 0.005), the real mapping, the real copy. No triggers: nothing syncs back."""
    db = make_database("valcov")
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    conn.commit()
    legacy_data.generate(conn, (REPO / "sql" / "legacy" / "generate.sql").read_text(), 42, 0.005, "public")
    mapping.apply_all(conn, str(REPO / "sql"))
    conn.commit()
    conn.close()
    params = {"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
              "login_password": db.password, "ssl_mode": "disable", "lock_timeout_ms": 3000}
    result = copy_engine.CopyEngine(params, workers=2).run()
    assert result["failed"] == [], result
    conn = db.connect(autocommit=False)
    clean = validation.Validator(conn).run(checks=("counts", "checksums"))
    conn.close()
    assert clean["failed"] is False, clean["msg"]
    return db


def columns(cur, table):
    """[(name, type, typtype)] of the target's insertable columns (generated ones left out)."""
    cur.execute("SELECT a.attname, a.atttypid::regtype::text, t.typtype FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
                "AND a.attgenerated = '' ORDER BY a.attnum", (T, table))
    return cur.fetchall()


def candidates(rel, col, typ, typtype):
    """New-value expressions for one column, tried in order until one is accepted and differs."""
    c = sql.Identifier(col)
    out = []
    if typtype == "e":
        out.append(sql.SQL("(SELECT x FROM unnest(enum_range(NULL::{t})) x WHERE x IS DISTINCT FROM {c} LIMIT 1)")
                   .format(t=sql.SQL(typ), c=c))
    elif typ in ("text", "character varying"):
        out += [sql.SQL("translate({}, {}, {})").format(c, sql.Literal(SHIFT_FROM), sql.Literal(SHIFT_TO)),
                sql.SQL("{} || '~'").format(c)]
        out += [sql.Literal(v) for v in ("changed@example.com", "12345", "ABC", "x")]
    elif typ in ("integer", "bigint", "smallint"):
        out += [sql.SQL("{} + 1").format(c), sql.SQL("{} - 1").format(c), sql.Literal(1), sql.Literal(0)]
    elif typ == "boolean":
        out += [sql.SQL("NOT {}").format(c), sql.Literal(True)]
    elif typ == "uuid":
        out.append(sql.SQL("gen_random_uuid()"))
    elif typ in ("timestamp with time zone", "timestamp without time zone", "date"):
        out += [sql.SQL("{} + interval '1 day'").format(c), sql.SQL("now()")]
    elif typ == "time without time zone":
        out += [sql.SQL("{} + interval '1 minute'").format(c), sql.SQL("'12:34'::time")]
    elif typ == "jsonb":
        out += [sql.SQL("coalesce({}, '{{}}'::jsonb) || '{{\"_changed\": 1}}'::jsonb").format(c),
                sql.SQL("jsonb_build_array({})").format(c)]
    elif typ == "text[]":
        out.append(sql.SQL("coalesce({}, '{{}}'::text[]) || '{{changed}}'::text[]").format(c))
    elif typ == "inet":
        out += [sql.SQL("'192.0.2.99'::inet"), sql.SQL("'192.0.2.98'::inet")]
    # another row's value (valid under the table's CHECKs by construction), then NULL
    out.append(sql.SQL("(SELECT o.{c} FROM {rel} o WHERE o.{c} IS NOT NULL AND o.{c}::text <> "
                       "coalesce((SELECT {rel}.{c}::text), '') LIMIT 1)").format(c=c, rel=rel))
    out.append(sql.SQL("NULL"))
    return out


def change_column(cur, rel, col, typ, typtype, match, key):
    """Change ``col`` of the row ``match`` (in a savepoint per attempt); returns the SQL used or None."""
    ident = sql.Identifier(col)
    cur.execute(sql.SQL("SELECT {}::text FROM {} WHERE {}").format(ident, rel, match), key)
    old = cur.fetchone()[0]
    for expr in candidates(rel, col, typ, typtype):
        cur.execute("SAVEPOINT change")
        try:
            cur.execute(sql.SQL("UPDATE {} SET {} = {} WHERE {} RETURNING {}::text").format(
                rel, ident, expr, match, ident), key)
            new = cur.fetchone()[0]
        except Exception:  # noqa: BLE001 - a CHECK, NOT NULL or unique key refused this value: try the next
            cur.execute("ROLLBACK TO SAVEPOINT change")
            continue
        if new != old:
            cur.execute("RELEASE SAVEPOINT change")
            return expr.as_string(cur.connection)
        cur.execute("ROLLBACK TO SAVEPOINT change")
    return None


@pytest.mark.parametrize("entry", mapping.TABLES, ids=lambda e: e["target"])
def test_every_column_change_fails_validation_naming_the_key(copied, entry):
    table = entry["target"]
    rel = sql.Identifier(T, table)
    conn = copied.connect(autocommit=False)
    undetected, unchangeable, checked = [], [], []
    try:
        with conn.cursor() as cur:
            order = sql.SQL(", ").join(sql.Identifier(k) for k in entry["target_key"])
            cur.execute(sql.SQL("SELECT {}::text[] FROM {} ORDER BY {} LIMIT 1").format(
                sql.SQL("ARRAY[{}]").format(order), rel, order))
            row = cur.fetchone()
            assert row is not None, "%s.%s has no rows: the generated data must fill every table" % (T, table)
            key = row[0]
            match = sql.SQL(" AND ").join(sql.SQL("{}::text = %s").format(sql.Identifier(k))
                                          for k in entry["target_key"])
            key_text = "/".join(key)
            for col, typ, typtype in columns(cur, table):
                how = change_column(cur, rel, col, typ, typtype, match, key)
                if how is None:
                    unchangeable.append(col)
                    conn.rollback()
                    continue
                validator = validation.Validator(conn, selected=[table])
                with conn.cursor() as vcur:
                    result = validator.check_checksums(vcur)
                conn.rollback()
                checked.append(col)
                named = [f for f in result["failures"] if f.startswith(table + ": ") and key_text in f]
                if result["ok"] or not named:
                    undetected.append("%s.%s (set to %s): %s" % (
                        table, col, how, "; ".join(result["failures"]) or "validation passed"))
    finally:
        conn.rollback()
        conn.close()
    assert not unchangeable, "%s: found no other valid value for %s (extend candidates())" % (table, unchangeable)
    assert "legacy_raw" in checked or table not in LEGACY_RAW_TABLES, "%s.legacy_raw was not changed" % table
    assert not undetected, "changes validation did not name (key %s): %s" % (key_text, " | ".join(undetected))


# docs/mapping.md: the tables with legacy_raw
LEGACY_RAW_TABLES = {"users", "workshops", "customers", "customer_vehicles", "leads", "services", "appointments",
                     "appointment_services", "gdpr_requests"}
