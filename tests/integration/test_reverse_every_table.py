"""The reverse direction tested like the forward one, for every target table with a legacy twin (issue 13).

After the switch the app writes carbot_v2; the reverse trigger writes the legacy row from ``rmap_<t>``, whose
write fires the forward trigger, which re-projects the row into carbot_v2 (docs/sync.md, "Reverse"). Per table,
as the app would (writes on carbot_v2, each in its own transaction):

* an update of every mapped column of one row, one column at a time, with a value the forward mapping would not
  have produced (generated from the catalog type, within carbot_v2's CHECK constraints; text sometimes with
  blanks around it or odd Unicode). After each: the legacy row is the reverse projection of the row the app
  wrote (column by column), carbot_v2 is the forward projection of the legacy row (column by column), and the
  write reached the legacy table once (``pg_stat_xact_user_tables`` inside the app's transaction: no loop);
* an insert with default ids (built from an existing row with a new key) and the delete of that row;
* a delete whose ``ON DELETE CASCADE / SET NULL`` in carbot_v2 reaches the legacy children;
* the derived tables (organizations, chat_sessions) validate clean after the writes of their sources.

"The reverse projection of the row the app wrote" is read from ``rmap_<t>`` itself: the row the app's statement
produced (``RETURNING``, after the BEFORE triggers) is put back in a savepoint with every trigger off, the
projection read, the savepoint rolled back. A value the forward mapping normalises (blanks around a
city, an upper-case plate) is therefore expected as the app wrote it in the legacy row and normalised in carbot_v2.
Because that expectation comes from rmap_ itself, a second check does not: the column the app wrote keeps the
app's value in carbot_v2 after the round through the legacy row, unless the forward mapping normalises or derives
that column (NORMALISED, with the rule); a column the reverse sync loses comes back as the old value or NULL.
Checked by hand once (issue 13): a reverse trigger that ignores UPDATE, an rmap_ view that drops a column, and a
reverse trigger without the loop check each make this file fail.
"""

import uuid

import psycopg2
import psycopg2.errors
import psycopg2.extras
import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping, sync, validation
from psycopg2 import sql
from test_sync import build_migrated, cut_over

LEGACY, MAPPING, TARGET = "public", "carbot_migration", "carbot_v2"
REVERSE_TABLES = [t["target"] for t in mapping.TABLES if t["kind"] == "row"]
# the constraint errors a candidate value may meet in carbot_v2: the value is skipped, the next one tried
REFUSED = (psycopg2.errors.CheckViolation, psycopg2.errors.UniqueViolation, psycopg2.errors.ForeignKeyViolation,
           psycopg2.errors.NotNullViolation, psycopg2.errors.ExclusionViolation)
# writes of one app statement that the legacy table of the row may see: the reverse upsert (a loop would repeat it)
MAX_LEGACY_WRITES = 1
# ... and carbot_v2's table: the app's own write and the forward trigger's re-projection of it
MAX_TARGET_WRITES = 2
# Columns whose value the forward mapping normalises or derives (docs/mapping.md, docs/sync.md "Reverse"): the app's
# value of these may be replaced in carbot_v2 by what the mapping makes of the legacy row.
NORMALISED = {
    ("customers", "title"): "name parts: re-split by the forward rule from the legacy name",
    ("customers", "first_name"): "name parts: re-split by the forward rule from the legacy name",
    ("customers", "last_name"): "name parts: re-split by the forward rule from the legacy name",
    ("customers", "city"): "clean_text: trimmed, NFKC",
    ("workshops", "city"): "clean_text: trimmed, NFKC",
    ("customer_vehicles", "license_plate"): "normalise_plate",
    ("workshops", "organization_id"): "derived from the owner email",
    ("leads", "subject"): "first line of description",
    ("appointments", "scheduled_datetime"): "scheduled_date + scheduled_time in Europe/Berlin",
    ("chat_messages", "session_id"): "derived from (workshop_id, kunde_id)",
}
ODD = ["Grüße 🚗", "e\u0301cole \u200b", "\ufeffBOM", "ß ＡＢＣ"]


@pytest.fixture(scope="module")
def rev(make_database):
    db = make_database("reverse_every")
    plan = build_migrated(db, scale=0.01)
    cut_over(db, plan)  # reverse sync and shared id sequences, as the cutover does
    conn = db.connect(autocommit=False)
    conn.cursor().execute("SET jit TO off")
    conn.commit()
    yield db, sync.Plan(conn), conn
    conn.close()


@pytest.fixture(autouse=True)
def _clean_transaction(rev):
    rev[2].rollback()  # a failed test leaves no aborted transaction to the next one
    yield
    rev[2].rollback()


def test_every_table_with_a_legacy_twin_is_covered(rev):
    _db, plan, _conn = rev
    assert plan.reverse_tables() == REVERSE_TABLES and len(REVERSE_TABLES) == 25


# ------------------------------------------------------------------------------------------ catalog
def target_columns(cur, table):
    """[(column, type name, type category, enum labels or None, generated?, identity?)] of a carbot_v2 table."""
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, "
        "(SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), "
        "a.attgenerated <> '', a.attidentity <> '' FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (sql.Identifier(TARGET, table).as_string(cur),))
    return cur.fetchall()


def unique_columns(cur, table):
    cur.execute("SELECT DISTINCT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary",
                (sql.Identifier(TARGET, table).as_string(cur),))
    return {r[0] for r in cur.fetchall()}


def key_match(cols, alias=None):
    return sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(alias, c) if alias else sql.Identifier(c)) for c in cols)


def legacy_columns(plan, table):
    return list(plan.legacy_cols[plan.by_target[table]["source"]])


def dst_keys(entry):
    return ["_dst_key"] if len(entry["source_key"]) == 1 else ["_dst_key%d" % (i + 1)
                                                              for i in range(len(entry["source_key"]))]


def as_text_row(cur, query, args, cols):
    cur.execute(query, args)
    rows = cur.fetchall()
    assert len(rows) <= 1, rows
    return dict(zip(cols, rows[0])) if rows else None


def legacy_row(cur, plan, table, key):
    entry = plan.by_target[table]
    cols = legacy_columns(plan, table)
    q = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
        sql.Identifier(LEGACY, entry["source"]), key_match(entry["source_key"]))
    return as_text_row(cur, q, key, cols)


def rmap_row(cur, plan, table, key):
    """rmap_<t> of the current carbot_v2 row, each column cast to the legacy column's type."""
    entry = plan.by_target[table]
    cols = legacy_columns(plan, table)
    types = plan.legacy_cols[entry["source"]]
    q = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.SQL("{}::{}::text").format(sql.Identifier(c), sql.SQL(types[c])) for c in cols),
        sql.Identifier(MAPPING, "rmap_" + table), key_match(dst_keys(entry)))
    return as_text_row(cur, q, key, cols)


def map_row(cur, plan, table, key):
    """map_<t> of the legacy row (target columns cast to carbot_v2's types) and its quarantine reason."""
    entry = plan.by_target[table]
    cols = plan.columns[table]
    types = plan.target_types[table]
    q = sql.SQL("SELECT {}, _quarantine_reason FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.SQL("{}::{}::text").format(sql.Identifier(c), sql.SQL(types[c])) for c in cols),
        sql.Identifier(MAPPING, entry["view"]), key_match(entry["view_key"]))
    return as_text_row(cur, q, key, cols + ["_quarantine_reason"])


def target_row(cur, plan, table, key):
    entry = plan.by_target[table]
    cols = plan.columns[table]
    q = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
        sql.Identifier(TARGET, table), key_match(entry["target_key"]))
    return as_text_row(cur, q, key, cols)


def rmap_of_written(cur, plan, table, key, written):
    """rmap_<t> of the row exactly as the app's statement wrote it (``written``: column -> value of RETURNING *):
    put back in a savepoint with every trigger off (session_replication_role), read, rolled back."""
    settable = [(c, ty) for c, ty, _cat, _en, gen, _ident in target_columns(cur, table)
                if not gen and c not in plan.by_target[table]["target_key"]]
    cur.execute("SAVEPOINT expected")
    # no trigger (sync, raw, foreign key: a parent the re-projection removed) fires; undone with the savepoint
    cur.execute("SET LOCAL session_replication_role = replica")
    cur.execute(sql.SQL("UPDATE {} SET {} WHERE {}").format(
        sql.Identifier(TARGET, table),
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c, _ty in settable),
        key_match(plan.by_target[table]["target_key"])),
        [psycopg2.extras.Json(written[c]) if ty == "jsonb" and written[c] is not None else written[c]
         for c, ty in settable] + list(key))
    expected = rmap_row(cur, plan, table, key)
    cur.execute("ROLLBACK TO SAVEPOINT expected")
    cur.execute("RELEASE SAVEPOINT expected")
    return expected


# ---------------------------------------------------------------------------------------- values
def candidates(cur, plan, table, column, type_name, category, labels, row, n):
    """New values for ``column`` of ``row`` (SQL expressions, in order of preference): each differs from the
    current value; the first that carbot_v2's constraints accept is written."""
    cur_val = sql.Identifier(column)
    lit = sql.Literal
    typ = sql.SQL(type_name)
    refs = {r["column"]: r["parent"] for r in plan.by_target[table]["references"]}
    if column in refs:
        parent = refs[column]
        pkey = plan.by_target[parent]["target_key"][0]
        same_ws = "workshop_id" in plan.target_types[parent] and row.get("workshop_id") and parent != "workshops"
        cur.execute(sql.SQL("SELECT {k} FROM {p} WHERE {k} IS DISTINCT FROM %s {w} ORDER BY {k} LIMIT 3").format(
            k=sql.Identifier(pkey), p=sql.Identifier(TARGET, parent),
            w=sql.SQL("AND workshop_id = %s") if same_ws else sql.SQL("")),
            [row[column]] + ([row["workshop_id"]] if same_ws else []))
        return [sql.SQL("{}::{}").format(lit(str(r[0])), typ) for r in cur.fetchall()]
    if labels:
        others = [x for x in labels if x != row[column]]
        return [sql.SQL("{}::{}").format(lit(x), typ) for x in others[n % len(others):] + others[:n % len(others)]]
    if category == "B":
        return [sql.SQL("NOT coalesce({}, false)").format(cur_val)]
    if category == "N":
        v = row[column]
        base = [int(v) + 1, int(v) - 1] if v is not None else []
        return [sql.SQL("{}::{}").format(lit(x), typ) for x in base + [1, 5, 42, 2000, 0] if x != v]
    if type_name == "date":
        return [sql.SQL("CASE WHEN isfinite({c}) THEN {c} + 1 ELSE DATE '2025-06-02' END").format(c=cur_val),
                sql.SQL("DATE '2025-06-02'")]
    if type_name.startswith("time without"):
        return [sql.SQL("coalesce({} + interval '1 hour 7 minutes', TIME '10:30')").format(cur_val)]
    if type_name.startswith("timestamp"):
        return [sql.SQL("CASE WHEN isfinite({c}) THEN {c} + interval '1 day 1 hour 7 minutes' "
                        "ELSE TIMESTAMPTZ '2025-06-01 10:00+00' END::{t}").format(c=cur_val, t=typ),
                sql.SQL("TIMESTAMPTZ '2025-06-01 10:00+00'::{}").format(typ)]
    if type_name == "jsonb":
        obj = sql.SQL("jsonb_build_object('rev', {}, 'ü', '🚗', 'nested', jsonb_build_array(1, 'x'))").format(lit(n))
        arr = sql.SQL("jsonb_build_array({}, 'zwei', jsonb_build_object('k', 'ß'))").format(lit(n))
        return [obj, arr] if n % 2 else [arr, obj]
    if category == "A":
        return [sql.SQL("coalesce({}, '{{}}') || ARRAY[{}]::{}").format(cur_val, lit("rev %d ü" % n), typ)]
    if type_name == "inet":
        return [sql.SQL("{}::inet").format(lit("10.13.%d.%d" % (n % 250, (n * 7) % 250 + 1))),
                sql.SQL("{}::inet").format(lit("2001:db8::%x" % (n + 1)))]
    if type_name == "uuid":
        return [sql.SQL("{}::uuid").format(lit(str(uuid.uuid5(uuid.NAMESPACE_URL, "rev:%s.%s" % (table, column)))))]
    if category == "S":
        word = "rev %s %d" % (column, n)
        variant = n % 4
        text = {0: word, 1: "  %s  " % word, 2: "%s %s" % (word, ODD[n % len(ODD)]), 3: word.upper()}[variant]
        out = [text, word]
        if "email" in column:
            out = ["rev.%s.%d@example.de" % (table, n)]
        out += ["%05d" % (10000 + n), "WVWZZZ1JZXW%06d" % n, "CHF", "USD"]
        return [sql.SQL("{}::{}").format(lit(x), typ) for x in out if x != row[column]]
    return []


# ----------------------------------------------------------------------------------------- checks
def differences(expected, found):
    return [(c, expected[c], found[c]) for c in expected if expected[c] != found[c]]


def check_row(cur, plan, table, key, written, what, written_cols):
    """The promises after one app write of ``table`` row ``key`` (``written_cols``: the columns the app set);
    returns failure lines naming the table, the column and both values."""
    failures = []
    legacy = legacy_row(cur, plan, table, key)
    if legacy is None:
        return ["%s %s (%s): no legacy row" % (table, key, what)]
    expected = rmap_of_written(cur, plan, table, key, written)
    for col, exp, got in differences(expected, legacy):
        failures.append("%s %s (%s): legacy %s = %r, the reverse projection of the app's row says %r"
                        % (table, key, what, col, got, exp))
    cur.execute(sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE {}").format(
        sql.Identifier(TARGET, table), key_match(plan.by_target[table]["target_key"])), key)
    current = (cur.fetchone() or [None])[0]
    # independent of rmap_: the app's value stays in carbot_v2 (a column the reverse sync loses comes back from
    # the legacy row as the old value or NULL), unless the forward mapping normalises or derives that column
    for col in written_cols:
        if current is not None and current[col] != written[col] and (table, col) not in NORMALISED:
            failures.append("%s %s (%s): carbot_v2 %s = %r after the sync, the app wrote %r"
                            % (table, key, what, col, current[col], written[col]))
    if current is not None and all(current[c] == written[c] for c in plan.columns[table]):
        # carbot_v2 kept the app's row as written (nothing normalised): the legacy row is rmap of carbot_v2's row
        for col, exp, got in differences(rmap_row(cur, plan, table, key), legacy):
            failures.append("%s %s (%s): legacy %s = %r, rmap_%s of the carbot_v2 row says %r"
                            % (table, key, what, col, got, table, exp))
    mapped = map_row(cur, plan, table, key)
    if mapped is None or mapped.pop("_quarantine_reason") is not None:
        failures.append("%s %s (%s): the legacy row does not map back (%r)" % (table, key, what, mapped))
        return failures
    target = target_row(cur, plan, table, key)
    for col, exp, got in differences(mapped, target):
        failures.append("%s %s (%s): carbot_v2 %s = %r, the forward projection of the legacy row says %r"
                        % (table, key, what, col, got, exp))
    return failures


def xact_writes(cur, schema, table):
    """Rows written to ``table`` by this backend and not yet flushed to the cumulative statistics (PostgreSQL 15
    flushes them when the backend is idle): the difference around one statement is what that statement wrote."""
    cur.execute("SELECT coalesce(n_tup_ins + n_tup_upd + n_tup_del, 0) FROM pg_stat_xact_user_tables "
                "WHERE schemaname = %s AND relname = %s", (schema, table))
    row = cur.fetchone()
    return row[0] if row else 0


def pick_row(cur, plan, table, offset=3):
    entry = plan.by_target[table]
    keys = sql.SQL(", ").join(sql.Identifier(c) for c in entry["target_key"])
    cur.execute(sql.SQL("SELECT to_jsonb(t), {k} FROM {t} t ORDER BY {k} LIMIT 1 OFFSET least(%s, "
                        "(SELECT count(*) - 1 FROM {t}))").format(k=keys, t=sql.Identifier(TARGET, table)), (offset,))
    row, *key = cur.fetchone()
    return row, key


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("table", REVERSE_TABLES)
def test_update_of_every_mapped_column(rev, table):
    _db, plan, conn = rev
    entry = plan.by_target[table]
    cur = conn.cursor()
    row, key = pick_row(cur, plan, table)
    legacy_table = entry["source"]
    failures, written_cols, skipped = [], [], []
    conn.commit()
    for n, (col, type_name, category, labels, generated, _ident) in enumerate(target_columns(cur, table)):
        if generated or col in entry["target_key"] or col == "legacy_raw":
            continue
        cur.execute(sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE {}").format(
            sql.Identifier(TARGET, table), key_match(entry["target_key"])), key)
        row = cur.fetchone()[0]
        done = False
        for value in candidates(cur, plan, table, col, type_name, category, labels, row, n):
            before = xact_writes(cur, LEGACY, legacy_table), xact_writes(cur, TARGET, table)
            cur.execute("SAVEPOINT app_write")
            try:
                cur.execute(sql.SQL("UPDATE {t} AS app SET {c} = {v} WHERE {m} AND {c} IS DISTINCT FROM {v} "
                                    "RETURNING to_jsonb(app)").format(
                    t=sql.Identifier(TARGET, table), c=sql.Identifier(col), v=value, m=key_match(entry["target_key"])),
                    key)
            except REFUSED:
                cur.execute("ROLLBACK TO SAVEPOINT app_write")
                continue
            got = cur.fetchall()
            if not got:
                cur.execute("ROLLBACK TO SAVEPOINT app_write")
                continue
            written = got[0][0]
            legacy_writes = xact_writes(cur, LEGACY, legacy_table) - before[0]
            target_writes = xact_writes(cur, TARGET, table) - before[1]
            conn.commit()
            done = True
            what = "update of %s to %r" % (col, written[col])
            failures += check_row(cur, plan, table, key, written, what, [col])
            conn.commit()
            if legacy_writes > MAX_LEGACY_WRITES or target_writes > MAX_TARGET_WRITES:
                failures.append("%s %s (%s): %d writes of legacy %s and %d of carbot_v2 %s in one app statement "
                                "(a sync loop?)" % (table, key, what, legacy_writes, legacy_table, target_writes,
                                                    table))
            break
        (written_cols if done else skipped).append(col)
        if not done:
            conn.rollback()
    assert not skipped or set(skipped) <= ALLOWED_SKIPS.get(table, set()), \
        "%s: no value carbot_v2 accepts for %s" % (table, skipped)
    assert written_cols, table
    assert not failures, "\n".join(failures)


# columns for which no generated value is a valid write (none expected; listed here with the reason if any)
ALLOWED_SKIPS = {}


def new_row_statement(cur, plan, table, source_key):
    """INSERT … SELECT of an existing row with a new key (defaults for uuid/identity keys) and new values for
    the columns under a unique index; returns (statement, args)."""
    entry = plan.by_target[table]
    cols = [(c, ty, cat) for c, ty, cat, _en, gen, _ident in target_columns(cur, table) if not gen]
    uniq = unique_columns(cur, table)
    tkey = entry["target_key"]
    out_cols, exprs, args = [], [], []
    new_key = {}
    if table == "appointment_services":
        cur.execute("SELECT a.id, s.id FROM carbot_v2.appointments a JOIN carbot_v2.services s "
                    "ON s.workshop_id = a.workshop_id WHERE NOT EXISTS (SELECT 1 FROM carbot_v2.appointment_services "
                    "x WHERE x.appointment_id = a.id AND x.service_id = s.id) ORDER BY 1, 2 LIMIT 1")
        new_key = dict(zip(tkey, cur.fetchone()))
    elif table == "chatbot_settings":
        # one settings row per workshop (the key): free a workshop first, as the app would (its delete is synced)
        cur.execute("DELETE FROM carbot_v2.chatbot_settings WHERE workshop_id = (SELECT workshop_id FROM "
                    "carbot_v2.chatbot_settings WHERE workshop_id <> %s ORDER BY 1 DESC LIMIT 1) RETURNING workshop_id",
                    (source_key[0],))
        new_key = {"workshop_id": cur.fetchone()[0]}
        cur.connection.commit()
        assert legacy_row(cur, plan, table, [new_key["workshop_id"]]) is None, "chatbot_settings: delete not synced"
    for c, _ty, cat in cols:
        if c in new_key:
            out_cols.append(c)
            exprs.append(sql.SQL("%s"))
            args.append(str(new_key[c]))
        elif c in tkey:
            continue  # the default picks the key (gen_random_uuid, identity)
        elif c in uniq and cat == "S":
            out_cols.append(c)
            exprs.append(sql.SQL("{} || '-ins'").format(sql.Identifier(c)))
        else:
            out_cols.append(c)
            exprs.append(sql.Identifier(c))
    stmt = sql.SQL("INSERT INTO {t} AS app ({cols}) SELECT {exprs} FROM {t} WHERE {m} "
                   "RETURNING to_jsonb(app), {k}").format(
        t=sql.Identifier(TARGET, table), cols=sql.SQL(", ").join(sql.Identifier(c) for c in out_cols),
        exprs=sql.SQL(", ").join(exprs), m=key_match(tkey),
        k=sql.SQL(", ").join(sql.Identifier(c) for c in tkey))
    return stmt, args + list(source_key)


@pytest.mark.parametrize("table", REVERSE_TABLES)
def test_insert_with_default_ids_then_delete(rev, table):
    _db, plan, conn = rev
    entry = plan.by_target[table]
    cur = conn.cursor()
    _row, source_key = pick_row(cur, plan, table, offset=5)
    stmt, args = new_row_statement(cur, plan, table, source_key)
    before = xact_writes(cur, LEGACY, entry["source"])
    cur.execute(stmt, args)
    written, *key = cur.fetchone()
    legacy_writes = xact_writes(cur, LEGACY, entry["source"]) - before
    conn.commit()
    failures = check_row(cur, plan, table, key, written, "insert",
                         [c for c in plan.columns[table] if c != "legacy_raw"])
    conn.commit()
    assert legacy_writes == 1, "%s %s: the insert wrote legacy %s %d times" % (table, key, entry["source"],
                                                                                legacy_writes)
    assert not failures, "\n".join(failures)
    cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(TARGET, table),
                                                         key_match(entry["target_key"])), key)
    conn.commit()
    assert legacy_row(cur, plan, table, key) is None, "%s %s: deleted in carbot_v2, still in legacy %s" % (
        table, key, entry["source"])
    assert target_row(cur, plan, table, key) is None, "%s %s: deleted, back in carbot_v2" % (table, key)
    conn.commit()


def test_a_customer_delete_cascades_to_the_legacy_children(rev):
    """ON DELETE CASCADE (vehicles) and SET NULL (appointments, reviews) in carbot_v2 reach the legacy side."""
    _db, plan, conn = rev
    cur = conn.cursor()
    cur.execute("SELECT c.id FROM carbot_v2.customers c WHERE EXISTS (SELECT 1 FROM carbot_v2.customer_vehicles v "
                "WHERE v.customer_id = c.id) AND EXISTS (SELECT 1 FROM carbot_v2.appointments a "
                "WHERE a.customer_id = c.id) ORDER BY c.id LIMIT 1")
    (customer,) = cur.fetchone()
    cur.execute("SELECT id FROM carbot_v2.customer_vehicles WHERE customer_id = %s", (customer,))
    vehicles = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT id FROM carbot_v2.appointments WHERE customer_id = %s", (customer,))
    appointments = [r[0] for r in cur.fetchall()]
    cur.execute("DELETE FROM carbot_v2.customers WHERE id = %s", (customer,))
    conn.commit()
    cur.execute("SELECT count(*) FROM public.customers WHERE id = %s", (customer,))
    assert cur.fetchone()[0] == 0, "customers %s: still in legacy" % customer
    cur.execute("SELECT id FROM public.vehicles WHERE id = ANY(%s::uuid[])", ([str(v) for v in vehicles],))
    assert cur.fetchall() == [], "customer_vehicles of %s: still in legacy vehicles" % customer
    cur.execute("SELECT id, customer_id FROM public.appointments WHERE id = ANY(%s::uuid[])",
                ([str(a) for a in appointments],))
    kept = cur.fetchall()
    assert len(kept) == len(appointments) and all(c is None for _a, c in kept), \
        "appointments of customer %s: legacy customer_id should be NULL: %r" % (customer, kept)
    for a in appointments:
        failures = check_row(cur, plan, "appointments", [a], _as_json(cur, "appointments", a), "cascade", [])
        assert not failures, "\n".join(failures)
    conn.commit()
    report = validation.Validator(conn, selected=["customers", "customer_vehicles", "appointments", "reviews"]).run(
        checks=("counts", "checksums"))
    assert report["failed"] is False, report["msg"]


def _as_json(cur, table, key):
    cur.execute(sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE id = %s").format(sql.Identifier(TARGET, table)), (key,))
    return cur.fetchone()[0]


@pytest.mark.parametrize("derived, sources", [("organizations", ["workshops"]), ("chat_sessions", ["chat_messages"])])
def test_derived_rows_validate_clean_after_the_writes(rev, derived, sources):
    """Runs after the per-table tests (pytest keeps file order): the derived rows of every write above."""
    _db, _plan, conn = rev
    report = validation.Validator(conn, selected=[derived] + sources).run(checks=("counts", "checksums"))
    assert report["failed"] is False, report["msg"]

