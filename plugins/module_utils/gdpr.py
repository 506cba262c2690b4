# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GDPR checks and jobs on both schemas: verify, retention, erasure (docs/gdpr.md).

Results carry counts, never personal data: no email, name, client key or IP address leaves
these functions. Every identifier goes through ``psycopg2.sql``; every value is a parameter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils import db

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module
    sql = None

# (legacy table, legacy column, target table, target column): consent carried over, never fabricated.
CONSENT_COLUMNS = (
    ("customers", "marketing_consent", "customers", "gdpr_consent_given"),
    ("leads", "consent_given", "leads", "consent_given"),
    ("consent_log", "granted", "consent_log", "granted"),
)

# The records of history that must arrive complete: (legacy table, target table, key column).
TRAIL_TABLES = (("audit_logs", "audit_logs", "id"), ("consent_log", "consent_log", "id"))

# Retention: tables whose rows expire, and tables whose ip_address is cleared after a while.
RETENTION_DELETE = ("analytics_events",)
RETENTION_IP = ("analytics_events", "audit_logs")

QUARANTINE = "migration_quarantine"


def _rel(schema, table):
    return sql.Identifier(schema, table)


def table_exists(cur, schema, table):
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, table).as_string(cur),))
    return cur.fetchone()[0]


def _norm(email):
    return email.strip().lower() if email else None


# ------------------------------------------------------------------------------- verify
def consent_figures(cur, legacy, target, pairs=CONSENT_COLUMNS):
    """True/false/NULL per table on both sides, and row by row what changed (joined on the kept primary key)."""
    out = {}
    for ltable, lcol, ttable, tcol in pairs:
        if not (table_exists(cur, legacy, ltable) and table_exists(cur, target, ttable)):
            out[ttable] = {"ok": None, "message": "table missing"}
            continue
        figures = sql.SQL("SELECT count(*) FILTER (WHERE {c} IS TRUE), count(*) FILTER (WHERE {c} IS FALSE), "
                          "count(*) FILTER (WHERE {c} IS NULL) FROM {t}")
        cur.execute(figures.format(c=sql.Identifier(lcol), t=_rel(legacy, ltable)))
        lf = dict(zip(("true", "false", "null"), cur.fetchone()))
        cur.execute(figures.format(c=sql.Identifier(tcol), t=_rel(target, ttable)))
        tf = dict(zip(("true", "false", "null"), cur.fetchone()))
        cur.execute(sql.SQL(
            "SELECT count(*) FILTER (WHERE t.{tc} IS TRUE AND s.{lc} IS NOT TRUE), "
            "count(*) FILTER (WHERE s.{lc} IS NULL AND t.{tc} IS NOT NULL), "
            "count(*) FILTER (WHERE s.{lc} IS TRUE AND t.{tc} IS NOT TRUE), "
            "count(*) FILTER (WHERE s.id IS NULL AND t.{tc} IS TRUE) "
            "FROM {t} t LEFT JOIN {s} s ON s.id = t.id").format(
            tc=sql.Identifier(tcol), lc=sql.Identifier(lcol), t=_rel(target, ttable), s=_rel(legacy, ltable)))
        fabricated, null_changed, lost, without_source = cur.fetchone()
        ok = fabricated == 0 and null_changed == 0 and tf["true"] <= lf["true"]
        out[ttable] = {
            "legacy_column": "%s.%s" % (ltable, lcol), "target_column": "%s.%s" % (ttable, tcol),
            "legacy": lf, "target": tf,
            "fabricated": fabricated,                 # target true, legacy not true (same row)
            "target_true_exceeds_legacy": tf["true"] > lf["true"],
            "null_changed": null_changed,             # legacy NULL ("never asked") became a value
            "consent_lost": lost,                     # legacy true, target not (quarantined rows not counted)
            "true_without_legacy_row": without_source,
            "ok": ok,
        }
    return out


def trail_completeness(cur, legacy, target, tables=TRAIL_TABLES):
    """Audit trail and consent log: every legacy record in the target, counts equal."""
    has_q = table_exists(cur, target, QUARANTINE)
    out = {}
    for ltable, ttable, key in tables:
        if not (table_exists(cur, legacy, ltable) and table_exists(cur, target, ttable)):
            out[ttable] = {"ok": False, "message": "table missing"}
            continue
        cur.execute(sql.SQL("SELECT (SELECT count(*) FROM {s}), (SELECT count(*) FROM {t}), "
                            "(SELECT count(*) FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE t.{k} = s.{k})), "
                            "(SELECT count(*) FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k}))")
                    .format(s=_rel(legacy, ltable), t=_rel(target, ttable), k=sql.Identifier(key)))
        lcount, tcount, missing, extra = cur.fetchone()
        reasons = {}
        if has_q:
            cur.execute(sql.SQL("SELECT reason, count(*) FROM {} WHERE target_table = %s GROUP BY 1 ORDER BY 1")
                        .format(_rel(target, QUARANTINE)), (ttable,))
            reasons = dict(cur.fetchall())
        out[ttable] = {"legacy": lcount, "target": tcount, "missing": missing, "extra": extra,
                       "quarantined": sum(reasons.values()), "quarantine_reasons": reasons,
                       "counts_equal": lcount == tcount, "ok": lcount == tcount and missing == 0}
    return out


def _subject_presence(cur, legacy, target, emails):
    """Rows per table that still match any of ``emails`` (normalised), in both schemas and the quarantine."""
    checks = [(legacy, "customers", "email"), (legacy, "leads", "email"),
              (target, "customers", "email"), (target, "leads", "email")]
    out = {}
    for schema, table, col in checks:
        if not table_exists(cur, schema, table):
            continue
        cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE lower(btrim({})) = ANY(%s)").format(
            _rel(schema, table), sql.Identifier(col)), (emails,))
        out["%s.%s" % (schema, table)] = cur.fetchone()[0]
    if table_exists(cur, target, QUARANTINE):
        cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE lower(btrim(row_data->>'email')) = ANY(%s)").format(
            _rel(target, QUARANTINE)), (emails,))
        out["%s.%s" % (target, QUARANTINE)] = cur.fetchone()[0]
    return out


def erasure_requests(cur, legacy, target):
    """Erasure requests marked done whose requester's data is still there (counts per table, no emails)."""
    cur.execute(sql.SQL("SELECT id::text, lower(btrim(requester_email)) FROM {} WHERE request_type = 'erasure' "
                        "AND status = 'done' AND requester_email IS NOT NULL").format(_rel(legacy, "gdpr_requests")))
    requests = cur.fetchall()
    still, per_table = [], {}
    for req_id, email in requests:
        found = _subject_presence(cur, legacy, target, [email])
        if any(found.values()):
            still.append(req_id)
            for k, v in found.items():
                per_table[k] = per_table.get(k, 0) + v
    return {"done_erasure_requests": len(requests), "with_remaining_data": len(still),
            "request_ids": still, "rows_remaining": {k: v for k, v in per_table.items() if v},
            "ok": not still}


def verify(cur, legacy, target):
    consent = consent_figures(cur, legacy, target)
    trail = trail_completeness(cur, legacy, target)
    erasures = erasure_requests(cur, legacy, target)
    failures = []
    for table, rec in consent.items():
        if rec.get("ok") is False:
            failures.append("consent %s: %d fabricated, %d NULL changed, target true %d vs legacy true %d" % (
                table, rec["fabricated"], rec["null_changed"], rec["target"]["true"], rec["legacy"]["true"]))
        elif rec.get("ok") is None:
            failures.append("consent %s: %s" % (table, rec["message"]))
    for table, rec in trail.items():
        if not rec["ok"]:
            failures.append("%s incomplete: %s legacy, %s target, %s missing, %s quarantined" % (
                table, rec.get("legacy"), rec.get("target"), rec.get("missing"), rec.get("quarantined")))
    if not erasures["ok"]:
        failures.append("%d erasure requests marked done still have data: %s" % (
            erasures["with_remaining_data"],
            ", ".join("%s %d" % kv for kv in sorted(erasures["rows_remaining"].items()))))
    return {"consent": consent, "trail": trail, "erasure_requests": erasures, "failures": failures,
            "ok": not failures}


# ------------------------------------------------------------------------------- retention
def _cutoff(cur, days, reference_time):
    if reference_time:
        cur.execute("SELECT %s::timestamptz - make_interval(days => %s)", (reference_time, days))
    else:
        cur.execute("SELECT now() - make_interval(days => %s)", (days,))
    return cur.fetchone()[0]


def _batched(conn, statement, params, batch_size):
    """Run ``statement`` (which handles at most ``batch_size`` rows) until it touches no row; commit per batch."""
    total = 0
    while True:
        with conn.cursor() as cur:
            cur.execute(statement, dict(params, limit=batch_size))
            n = cur.rowcount
        conn.commit()
        total += n
        if n < batch_size:
            return total


def retention(conn, schemas, analytics_days, ip_days, dry_run=True, batch_size=10000, reference_time=None,
              delete_tables=RETENTION_DELETE, ip_tables=RETENTION_IP):
    """Delete expired analytics events and clear old IP addresses in every schema of ``schemas``.

    Legacy first: with sync triggers active its changes reach the target, and the target pass finds
    nothing left to do. Returns counts per ``schema.table``; ``dry_run`` only counts.
    """
    with conn.cursor() as cur:
        delete_before = _cutoff(cur, analytics_days, reference_time)
        ip_before = _cutoff(cur, ip_days, reference_time)
        present = {(s, t): table_exists(cur, s, t) for s in schemas for t in set(delete_tables) | set(ip_tables)}
    conn.commit()
    out = {"analytics_events_before": delete_before.isoformat(), "ip_addresses_before": ip_before.isoformat(),
           "dry_run": dry_run, "tables": {}}
    for schema in schemas:
        for table in delete_tables:
            if not present[(schema, table)]:
                continue
            rel = _rel(schema, table)
            name = "%s.%s" % (schema, table)
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE created_at < %s").format(rel), (delete_before,))
                expired = cur.fetchone()[0]
            conn.commit()
            rec = out["tables"].setdefault(name, {})
            rec["expired_rows"] = expired
            if not dry_run:
                rec["deleted"] = _batched(conn, sql.SQL(
                    "DELETE FROM {r} WHERE id IN (SELECT id FROM {r} WHERE created_at < %(before)s "
                    "ORDER BY id LIMIT %(limit)s)").format(r=rel), {"before": delete_before}, batch_size)
        for table in ip_tables:
            if not present[(schema, table)]:
                continue
            rel = _rel(schema, table)
            name = "%s.%s" % (schema, table)
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE created_at < %s AND ip_address IS NOT NULL")
                            .format(rel), (ip_before,))
                old_ips = cur.fetchone()[0]
            conn.commit()
            rec = out["tables"].setdefault(name, {})
            rec["old_ip_addresses"] = old_ips
            if not dry_run:
                rec["ip_addresses_cleared"] = _batched(conn, sql.SQL(
                    "UPDATE {r} SET ip_address = NULL WHERE id IN (SELECT id FROM {r} WHERE created_at < %(before)s "
                    "AND ip_address IS NOT NULL ORDER BY id LIMIT %(limit)s)").format(r=rel),
                    {"before": ip_before}, batch_size)
    out["changed"] = (not dry_run) and any(r.get("deleted") or r.get("ip_addresses_cleared")
                                           for r in out["tables"].values())
    return out


# ------------------------------------------------------------------------------- erasure
def sync_triggers(cur, legacy, tables=("customers", "leads", "chat_messages", "analytics_events")):
    """Enabled user triggers on the legacy tables that look like the migration's sync (name contains 'sync')."""
    cur.execute("SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s) "
                "AND NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgname ILIKE '%%sync%%' ORDER BY 1, 2",
                (legacy, list(tables)))
    found = {}
    for table, trigger in cur.fetchall():
        found.setdefault(table, []).append(trigger)
    return found


def subject_keys(cur, schema, email, kunde_id, target=False):
    """The subject's customer ids, lead ids and client keys in ``schema`` (legacy or target column names)."""
    key_col = "client_key" if target else "kunde_id"
    customers, leads, keys = [], [], set([kunde_id] if kunde_id else [])
    if email and table_exists(cur, schema, "customers"):
        cur.execute(sql.SQL("SELECT id::text FROM {} WHERE lower(btrim(email)) = %s").format(
            _rel(schema, "customers")), (email,))
        customers = [r[0] for r in cur.fetchall()]
    if table_exists(cur, schema, "leads"):
        cur.execute(sql.SQL("SELECT id::text, {k} FROM {t} WHERE (%(email)s::text IS NOT NULL AND "
                            "lower(btrim(email)) = %(email)s) OR (%(key)s::text IS NOT NULL AND {k} = %(key)s)")
                    .format(k=sql.Identifier(key_col), t=_rel(schema, "leads")), {"email": email, "key": kunde_id})
        for lead_id, key in cur.fetchall():
            leads.append(lead_id)
            if key:
                keys.add(key)
    return {"customers": customers, "leads": leads, "client_keys": sorted(keys)}


def _merge_keys(a, b):
    return {k: sorted(set(a.get(k, [])) | set(b.get(k, []))) for k in ("customers", "leads", "client_keys")}


# (table, action, where) per schema; where uses %(c)s customers, %(l)s leads, %(k)s client keys (text arrays).
LEGACY_ERASURE = (
    ("appointment_services", "delete", "appointment_id IN (SELECT id FROM {s}.appointments "
                                       "WHERE customer_id::text = ANY(%(c)s) OR lead_id::text = ANY(%(l)s))"),
    ("appointments", "delete", "customer_id::text = ANY(%(c)s) OR lead_id::text = ANY(%(l)s)"),
    ("vehicles", "delete", "customer_id::text = ANY(%(c)s)"),
    ("reviews", "delete", "customer_id::text = ANY(%(c)s)"),
    ("lead_notes", "delete", "lead_id::text = ANY(%(l)s)"),
    ("chat_messages", "delete", "kunde_id = ANY(%(k)s) OR lead_id::text = ANY(%(l)s)"),
    ("analytics_events", "delete", "kunde_id = ANY(%(k)s)"),
    ("consent_log", "delete", "kunde_id = ANY(%(k)s)"),
    ("leads", "delete", "id::text = ANY(%(l)s)"),
    ("customers", "delete", "id::text = ANY(%(c)s)"),
    ("audit_logs", "anonymise", "entity_id = ANY(%(c)s || %(l)s) AND (changes IS NOT NULL OR ip_address IS NOT NULL)"),
)

TARGET_ERASURE = (
    ("appointment_services", "delete", "appointment_id IN (SELECT id FROM {s}.appointments "
                                       "WHERE customer_id::text = ANY(%(c)s) OR lead_id::text = ANY(%(l)s))"),
    ("appointments", "delete", "customer_id::text = ANY(%(c)s) OR lead_id::text = ANY(%(l)s)"),
    ("customer_vehicles", "delete", "customer_id::text = ANY(%(c)s)"),
    ("reviews", "delete", "customer_id::text = ANY(%(c)s)"),
    ("lead_notes", "delete", "lead_id::text = ANY(%(l)s)"),
    ("chat_messages", "delete", "session_id IN (SELECT id FROM {s}.chat_sessions WHERE client_key = ANY(%(k)s)) "
                                "OR lead_id::text = ANY(%(l)s)"),
    ("chat_sessions", "delete", "client_key = ANY(%(k)s)"),
    ("analytics_events", "delete", "client_key = ANY(%(k)s)"),
    ("consent_log", "delete", "client_key = ANY(%(k)s)"),
    ("leads", "delete", "id::text = ANY(%(l)s)"),
    ("customers", "delete", "id::text = ANY(%(c)s)"),
    ("audit_logs", "anonymise", "entity_id = ANY(%(c)s || %(l)s) AND (changes IS NOT NULL OR ip_address IS NOT NULL)"),
)

QUARANTINE_ERASURE = (
    "(source_table IN ('customers', 'leads') AND row_data->>'id' = ANY(%(c)s || %(l)s)) "
    "OR row_data->>'customer_id' = ANY(%(c)s) OR row_data->>'lead_id' = ANY(%(l)s) "
    "OR row_data->>'kunde_id' = ANY(%(k)s) "
    "OR (%(email)s::text IS NOT NULL AND lower(btrim(row_data->>'email')) = %(email)s)"
)


def _typed(where):
    """Key arrays as text[] (an empty list is an untyped '{}' otherwise)."""
    for name in ("c", "l", "k"):
        where = where.replace("%%(%s)s" % name, "%%(%s)s::text[]" % name)
    return where


def _run_plan(cur, schema, plan, keys, email, execute):
    """Count (and with ``execute`` delete/anonymise) the subject's rows of one schema; returns {table: n}."""
    params = {"c": keys["customers"], "l": keys["leads"], "k": keys["client_keys"], "email": email}
    out = {}
    for table, action, where in plan:
        if not table_exists(cur, schema, table):
            continue
        cond = sql.SQL(_typed(where).replace("{s}", "{schema}")).format(schema=sql.Identifier(schema))
        rel = _rel(schema, table)
        if not execute:
            cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE ").format(rel) + cond, params)
            n = cur.fetchone()[0]
        elif action == "delete":
            cur.execute(sql.SQL("DELETE FROM {} WHERE ").format(rel) + cond, params)
            n = cur.rowcount
        else:
            cur.execute(sql.SQL("UPDATE {} SET changes = NULL, ip_address = NULL WHERE ").format(rel) + cond, params)
            n = cur.rowcount
        out[table] = n
    return out


def _quarantine(cur, target, keys, email, execute):
    if not table_exists(cur, target, QUARANTINE):
        return None
    params = {"c": keys["customers"], "l": keys["leads"], "k": keys["client_keys"], "email": email}
    verb = "DELETE FROM {} WHERE " if execute else "SELECT count(*) FROM {} WHERE "
    cur.execute(sql.SQL(verb).format(_rel(target, QUARANTINE)) + sql.SQL(_typed(QUARANTINE_ERASURE)), params)
    return cur.rowcount if execute else cur.fetchone()[0]


def remaining(cur, legacy, target, keys, email):
    """What is left of the subject: rows per table in both schemas (must all be 0 after an erasure)."""
    left = {}
    for schema, plan, is_target in ((legacy, LEGACY_ERASURE, False), (target, TARGET_ERASURE, True)):
        if not table_exists(cur, schema, "customers"):
            continue
        fresh = _merge_keys(keys, subject_keys(cur, schema, email, None, target=is_target))
        counts = _run_plan(cur, schema, plan, fresh, email, execute=False)
        for table, n in counts.items():
            left["%s.%s" % (schema, table)] = n
    q = _quarantine(cur, target, keys, email, execute=False)
    if q is not None:
        left["%s.%s" % (target, QUARANTINE)] = q
    return left


def erase(conn, legacy, target, email=None, kunde_id=None, sync="auto", request_id=None, execute=True,
          retries=10):
    """Erase one data subject from the legacy schema (and, unless the sync carries it, from the target).

    Returns counts per ``schema.table``, whether the sync was active, what remains (all zero on success),
    and ``sync_propagated`` (None when the sync was not active). No personal data is returned.
    """
    email = _norm(email)
    if not email and not kunde_id:
        raise ValueError("erase needs an email or a kunde_id")
    with conn.cursor() as cur:
        triggers = sync_triggers(cur, legacy)
        target_exists = table_exists(cur, target, "customers")
        keys = subject_keys(cur, legacy, email, kunde_id)
        tkeys = _merge_keys(keys, subject_keys(cur, target, email, kunde_id, target=True)) if target_exists else keys
    conn.rollback()
    active = bool(triggers) if sync == "auto" else sync == "active"
    found = {"customers": len(tkeys["customers"]), "leads": len(tkeys["leads"]),
             "client_keys": len(tkeys["client_keys"])}
    result = {"sync_active": active, "sync_triggers": triggers, "subject_found": any(found.values()),
              "subject": found, "legacy": {}, "target": {}, "target_direct": False, "sync_propagated": None,
              "quarantine": None, "request_marked_done": False, "changed": False}

    def legacy_tx():
        with conn.cursor() as cur:
            counts = _run_plan(cur, legacy, LEGACY_ERASURE, keys, email, execute)
            if execute and request_id:
                cur.execute(sql.SQL("UPDATE {} SET status = 'done', completed_at = now() WHERE id::text = %s "
                                    "AND request_type = 'erasure' AND status <> 'done'")
                            .format(_rel(legacy, "gdpr_requests")), (request_id,))
                result["request_marked_done"] = cur.rowcount == 1
        conn.commit() if execute else conn.rollback()
        return counts

    def target_tx():
        with conn.cursor() as cur:
            counts = _run_plan(cur, target, TARGET_ERASURE, tkeys, email, execute)
            q = _quarantine(cur, target, tkeys, email, execute)
        conn.commit() if execute else conn.rollback()
        return counts, q

    def attempt(func):
        def wrapped():
            with db.transaction(conn):  # func commits (or, for a dry run, rolls back) itself
                return func()
        return db.with_retries(wrapped, attempts=retries)[0]

    result["legacy"] = attempt(legacy_tx)
    if target_exists:
        if execute and active:
            # The sync triggers ran inside the legacy transaction: prove that the target has nothing left.
            with conn.cursor() as cur:
                before = {t: n for t, n in remaining(cur, legacy, target, tkeys, email).items()
                          if t.startswith(target + ".") and not t.endswith(QUARANTINE)}
            conn.rollback()
            result["sync_propagated"] = not any(before.values())
            result["left_by_sync"] = {k: v for k, v in before.items() if v}
        if not active or not execute or not result["sync_propagated"]:
            result["target_direct"] = execute
            result["target"], result["quarantine"] = attempt(target_tx)
        else:
            with conn.cursor() as cur:
                result["quarantine"] = _quarantine(cur, target, tkeys, email, execute)
            conn.commit()
    with conn.cursor() as cur:
        left = remaining(cur, legacy, target, tkeys, email)
    conn.rollback()
    result["remaining"] = {k: v for k, v in left.items() if v}
    result["gone"] = not result["remaining"] if execute else None
    result["changed"] = execute and (any(result["legacy"].values()) or any((result["target"] or {}).values())
                                     or bool(result["quarantine"]) or result["request_marked_done"])
    return result


def report_verify(res):
    consent = {t: {"legacy true/false/null": "%(true)d/%(false)d/%(null)d" % r["legacy"],
                   "target true/false/null": "%(true)d/%(false)d/%(null)d" % r["target"],
                   "fabricated": r["fabricated"], "ok": r["ok"]}
               for t, r in res["consent"].items() if "legacy" in r}
    validation = [{"check": "gdpr: consent %s" % t, "ok": bool(r.get("ok")),
                   "message": ("legacy true %d, target true %d, fabricated %d, NULL changed %d" % (
                       r["legacy"]["true"], r["target"]["true"], r["fabricated"], r["null_changed"]))
                   if "legacy" in r else r.get("message", "")} for t, r in res["consent"].items()]
    validation += [{"check": "gdpr: %s complete" % t, "ok": r["ok"],
                    "message": "%s legacy, %s target, %s missing, %s quarantined" % (
                        r.get("legacy"), r.get("target"), r.get("missing"), r.get("quarantined"))}
                   for t, r in res["trail"].items()]
    e = res["erasure_requests"]
    validation.append({"check": "gdpr: erasure requests done", "ok": e["ok"],
                       "message": "%d done, %d still with data %s" % (
                           e["done_erasure_requests"], e["with_remaining_data"], e["rows_remaining"] or "")})
    return {"validation": validation, "gdpr: consent per table": consent}
