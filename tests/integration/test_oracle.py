"""An oracle that is not the mapping: hand-written cases (tests/oracle/cases.yml) against the views and the copy.

Every case is legacy rows in and, for one key, the expected carbot_v2 values or quarantine reason out, written
from docs/mapping.md. Each case is checked twice: in the projection view ``map_<table>`` (the mapping) and,
after the real copy engine ran over all cases, in the target table / ``migration_quarantine`` (the copy).

Where a rule is simple enough there is a second implementation in Python, compared with the SQL over generated
values (Hypothesis): postal code, email (ASCII), vehicle year, price and lead score.

Cases with ``pending`` expect a rule another change brings in; they run against the views only, in a
transaction that is rolled back, as strict expected failures, until that change lands and the field goes.
"""

import json
import re
import uuid

import pytest
import yaml
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg2 import sql
from psycopg2.extras import Json

CASES_FILE = REPO / "tests" / "oracle" / "cases.yml"
DATA = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
CASES = DATA["cases"]
T, M, L = "carbot_v2", "carbot_migration", "public"
UUID_PREFIX = "c0ffee00-0000-4000-8000-"


def resolve(value):
    """``u:NNN`` -> the case uuid; JSON-null markers kept; recursively through lists and dicts."""
    if isinstance(value, str) and re.fullmatch(r"u:[0-9]+", value):
        return UUID_PREFIX + "%012d" % int(value[2:])
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    return value


def case_param(case):
    marks = [pytest.mark.xfail(strict=True, reason="pending: %s" % case["pending"])] if case.get("pending") else []
    return pytest.param(case, id=case["id"], marks=marks)


def legacy_column_types(cur):
    cur.execute("SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped", (L,))
    types = {}
    for table, column, typ in cur.fetchall():
        types.setdefault(table, {})[column] = typ
    return types


def adapt(value, typ):
    if value is None:
        return None
    if typ == "jsonb":
        if isinstance(value, dict) and list(value) == ["$json"]:
            return Json(value["$json"])  # JSON null, not SQL NULL
        return Json(value)
    return value


def insert_rows(cur, tables, types):
    for table, rows in (tables or {}).items():
        for row in rows:
            row = resolve(row)
            cols = list(row)
            cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(L, table), sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                sql.SQL(", ").join(sql.Placeholder() * len(cols))),
                [adapt(row[c], types[table][c]) for c in cols])


def key_values(case):
    key = resolve(case["expect"]["key"])
    return [str(k) for k in (key if isinstance(key, list) else [key])]


def connect(db, autocommit=True):
    return db.connect(autocommit=autocommit, options="-c TimeZone=UTC")


@pytest.fixture(scope="module")
def oracle_db(make_database):
    """Legacy schema + the base rows + every case that is not pending, the mapping, then the real copy."""
    db = make_database("oracle")
    conn = connect(db, autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
        types = legacy_column_types(cur)
        insert_rows(cur, DATA["base"], types)
        for case in CASES:
            if not case.get("pending"):
                insert_rows(cur, case["legacy"], types)
    mapping.apply_all(conn, str(REPO / "sql"), T, M, L)
    conn.commit()
    conn.close()
    params = {"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
              "login_password": db.password, "ssl_mode": "disable", "lock_timeout_ms": 3000}
    result = copy_engine.CopyEngine(params, workers=2).run()
    assert result["failed"] == [], result
    return db, types, result


def view_row(cur, case):
    entry = mapping.by_target(case["expect"]["table"])
    match = sql.SQL(" AND ").join(sql.SQL("v.{}::text = %s").format(sql.Identifier(k)) for k in entry["view_key"])
    cur.execute(sql.SQL("SELECT to_jsonb(v) FROM {} v WHERE {}").format(sql.Identifier(M, entry["view"]), match),
                key_values(case))
    return [r[0] for r in cur.fetchall()]


def target_row(cur, case):
    entry = mapping.by_target(case["expect"]["table"])
    match = sql.SQL(" AND ").join(sql.SQL("t.{}::text = %s").format(sql.Identifier(k)) for k in entry["target_key"])
    cur.execute(sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE {}").format(sql.Identifier(T, entry["target"]), match),
                key_values(case))
    return [r[0] for r in cur.fetchall()]


def differences(case, found, expected):
    """Human-readable differences between expected column values and a row (a dict)."""
    out = []
    for col, want in resolve(expected).items():
        if col not in found:
            out.append("%s: no such column" % col)
        elif found[col] != want:
            out.append("%s: expected %s, found %s" % (col, json.dumps(want, ensure_ascii=False),
                                                      json.dumps(found[col], ensure_ascii=False)))
    return out


def check_view(cur, case):
    expect = case["expect"]
    rows = view_row(cur, case)
    where = "%s.%s key %s" % (M, "map_" + expect["table"], "/".join(key_values(case)))
    assert len(rows) == 1, "[%s] %s: %d rows in the view, expected exactly one" % (case["id"], where, len(rows))
    row = rows[0]
    if "quarantine" in expect:
        assert row["_quarantine_reason"] == expect["quarantine"], "[%s] %s: quarantine reason %r, expected %r" % (
            case["id"], where, row["_quarantine_reason"], expect["quarantine"])
        return
    assert row["_quarantine_reason"] is None, "[%s] %s: quarantined (%s), expected in the target" % (
        case["id"], where, row["_quarantine_reason"])
    diff = differences(case, row, expect["row"])
    assert not diff, "[%s] %s (rule %s): %s" % (case["id"], where, case["rule"], "; ".join(diff))


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_case_in_the_view(oracle_db, case):
    db, types, _result = oracle_db
    conn = connect(db, autocommit=False)
    try:
        with conn.cursor() as cur:
            if case.get("pending"):
                # not loaded with the others: the current mapping may not even evaluate the row
                insert_rows(cur, case["legacy"], types)
            check_view(cur, case)
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("case", [case_param(c) for c in CASES if not c.get("pending")])
def test_case_after_the_copy(oracle_db, case):
    db, _types, _result = oracle_db
    expect = case["expect"]
    where = "%s.%s key %s" % (T, expect["table"], "/".join(key_values(case)))
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            rows = target_row(cur, case)
            source_pk = key_values(case)
            source_pk = source_pk[0] if len(source_pk) == 1 else "{%s}" % ",".join(source_pk)
            cur.execute("SELECT reason FROM carbot_v2.migration_quarantine WHERE target_table = %s AND source_pk = %s",
                        (expect["table"], source_pk))
            quarantined = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    if "quarantine" in expect:
        assert rows == [], "[%s] %s: copied, expected quarantined (%s)" % (case["id"], where, expect["quarantine"])
        assert quarantined == [expect["quarantine"]], "[%s] %s: quarantine holds %r, expected %r" % (
            case["id"], where, quarantined, expect["quarantine"])
        return
    assert quarantined == [], "[%s] %s: quarantined (%s), expected copied" % (case["id"], where, quarantined)
    assert len(rows) == 1, "[%s] %s: %d rows in the target, expected one" % (case["id"], where, len(rows))
    expected = dict(expect["row"], **(expect.get("target_row") or {}))
    diff = differences(case, rows[0], expected)
    assert not diff, "[%s] %s after the copy (rule %s): %s" % (case["id"], where, case["rule"], "; ".join(diff))


def test_the_copy_counts_every_case_row(oracle_db):
    """legacy rows = copied + quarantined for every row table the cases fill; the copy's counters say so."""
    db, _types, result = oracle_db
    for entry in mapping.TABLES:
        if entry["kind"] != "row":
            continue
        legacy = db.scalar(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(L, entry["source"])))
        stats = result["tables"][entry["target"]]
        assert stats["copied"] + stats["quarantined"] == legacy, (entry["target"], stats, legacy)


def test_every_rule_of_the_doc_has_a_case():
    """Each rule of docs/mapping.md's rule table and each quarantine reason has at least one case."""
    doc = (REPO / "docs" / "mapping.md").read_text(encoding="utf-8")
    table = doc.split("## Rules", 1)[1].split("###", 1)[0]
    rules = []
    for line in table.splitlines():
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| rule "):
            rules.extend(r.strip() for r in line.split("|")[1].split(","))
    assert len(rules) >= 20, rules
    case_rules = " / ".join(c["rule"] for c in CASES)
    aliases = {"local time → instant": "local time to instant"}
    missing = [r for r in rules if aliases.get(r, r) not in case_rules]
    assert not missing, "rules of docs/mapping.md without an oracle case: %s" % missing
    reasons = " / ".join(c["expect"].get("quarantine", "") for c in CASES)
    for reason in ("orphan:", "parent quarantined:", "unknown ", "missing chat_messages.kunde_id",
                   "missing services.name", "missing appointments.appointment_date",
                   "missing workshop_closures.closed_on", "rating out of range 1..5"):
        assert reason in reasons, "quarantine reason without an oracle case: %s" % reason


def test_no_case_is_pending():
    """Every rule the cases describe is in the mapping now (a new rule's cases may be marked pending while it is
    being brought in; none is left)."""
    assert [c["id"] for c in CASES if c.get("pending")] == []


# ----------------------------------------------------------- second implementations (Hypothesis)
def py_postal_code(raw):
    s = raw.strip(" ")
    return s if re.fullmatch(r"[0-9]{5}", s) else None


def py_email(raw):
    s = raw.strip(" \t\r\n").lower()
    return s if re.fullmatch(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+", s) else None


def py_vehicle_year(year, created_year):
    return year if 1886 <= year <= min(2100, created_year + 1) else None


@pytest.fixture(scope="module")
def rules_conn(oracle_db):
    db = oracle_db[0]
    conn = connect(db, autocommit=False)
    yield conn
    conn.rollback()
    conn.close()


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                 database=None)


@PROPS
@given(st.text(alphabet="0123456789 a-\t", max_size=8))
def test_postal_code_rule_agrees_with_python(rules_conn, raw):
    with rules_conn.cursor() as cur:
        cur.execute("SELECT carbot_migration.normalise_postal_code(%s)", (raw,))
        assert cur.fetchone()[0] == py_postal_code(raw), repr(raw)


@PROPS
@given(st.text(alphabet="aZ9.@ -_\t", max_size=14))
def test_email_rule_agrees_with_python(rules_conn, raw):
    with rules_conn.cursor() as cur:
        cur.execute("SELECT carbot_migration.normalise_email(%s)", (raw,))
        assert cur.fetchone()[0] == py_email(raw), repr(raw)


@PROPS
@given(st.integers(1800, 2200), st.integers(1990, 2030))
def test_vehicle_year_rule_agrees_with_python(rules_conn, year, created_year):
    with rules_conn.cursor() as cur:
        cur.execute("SELECT carbot_migration.valid_vehicle_year(%s, make_timestamptz(%s, 6, 1, 12, 0, 0, 'UTC'))",
                    (year, created_year))
        assert cur.fetchone()[0] == py_vehicle_year(year, created_year), (year, created_year)


@PROPS
@given(st.integers(-3, 3) | st.integers(-100000, 100000), st.integers(-5, 5) | st.integers(-200, 200))
def test_service_money_rules_in_the_view_agree_with_python(rules_conn, price, score):
    """services.price_cents (< 0 -> NULL + raw, 0 kept) and leads.lead_score (0..100) through the views."""
    sid, lid = str(uuid.uuid4()), str(uuid.uuid4())
    with rules_conn.cursor() as cur:
        cur.execute("SAVEPOINT prop")
        try:
            cur.execute("INSERT INTO public.services (id, workshop_id, name, price_cents, duration_minutes) "
                        "VALUES (%s, %s, 'P', %s, 30)", (sid, resolve("u:201"), price))
            cur.execute("INSERT INTO public.leads (id, workshop_id, kunde_id, status, source, lead_score) "
                        "VALUES (%s, %s, 'kp', 'new', 'widget', %s)", (lid, resolve("u:201"), score))
            cur.execute("SELECT price_cents, legacy_raw FROM carbot_migration.map_services WHERE _src_key = %s",
                        (sid,))
            assert cur.fetchone() == ((price, None) if price >= 0 else (None, {"price_cents": price})), price
            cur.execute("SELECT lead_score, legacy_raw FROM carbot_migration.map_leads WHERE _src_key = %s", (lid,))
            assert cur.fetchone() == ((score, None) if 0 <= score <= 100 else (None, {"lead_score": score})), score
        finally:
            cur.execute("ROLLBACK TO SAVEPOINT prop")


def test_python_twins_are_not_constant():
    """The second implementations themselves tell valid from invalid (so agreement proves something)."""
    assert py_postal_code(" 10115") == "10115" and py_postal_code("1234") is None
    assert py_email("MAX@WEB.DE ") == "max@web.de" and py_email("max@web") is None
    assert py_vehicle_year(2025, 2024) == 2025 and py_vehicle_year(2026, 2024) is None

