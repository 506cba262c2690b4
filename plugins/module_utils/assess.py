# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assessment before the migration: volumes, sizes, the pg_stat_user_tables baseline, a preflight verdict.

Everything here reads the catalog and the statistics views; nothing is written to the database.
The functions take a cursor so that the module (and the tests) decide about transactions.

Preflight checks return ``{"check", "ok", "severity", "message", "details"}``; ``severity`` is
``error`` (blocks the migration: the verdict is ``no-go``) or ``warning`` (reported, does not block).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import shutil

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module
    sql = None

MIN_SERVER_VERSION = 130000

# pg_stat_user_tables columns kept in the baseline (the plan's "operations, seq vs index scans").
STAT_COLUMNS = (
    "seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_ins", "n_tup_upd", "n_tup_del",
    "n_tup_hot_upd", "n_live_tup", "n_dead_tup",
)
STAT_TIMES = ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze")


def _iso(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def index_usage_percent(seq_scan, idx_scan):
    """The plan's index usage: 100 * idx_scan / (seq_scan + idx_scan); None when the table was never scanned."""
    seq_scan, idx_scan = seq_scan or 0, idx_scan or 0
    if seq_scan + idx_scan == 0:
        return None
    return round(100.0 * idx_scan / (seq_scan + idx_scan), 1)


def server_version(cur):
    cur.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version')")
    num, text = cur.fetchone()
    return {"num": num, "text": text}


def schema_tables(cur, schema):
    """Ordinary and partitioned tables of ``schema``, by name."""
    cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname", (schema,))
    return [r[0] for r in cur.fetchall()]


def table_volumes(cur, schema, exact=True, tables=None):
    """Rows and sizes per table: ``{table: {rows, rows_estimate, total_bytes, table_bytes, index_bytes, toast_bytes}}``.

    ``rows`` is an exact ``count(*)`` when ``exact`` (a sequential scan of every table), else None.
    """
    cur.execute(
        "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
        "pg_indexes_size(c.oid), COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname", (schema,))
    out = {}
    for name, estimate, total, heap, indexes, toast in cur.fetchall():
        if tables is not None and name not in tables:
            continue
        out[name] = {"rows": None, "rows_estimate": max(int(estimate), 0) if estimate is not None else None,
                     "total_bytes": total, "table_bytes": heap, "index_bytes": indexes, "toast_bytes": toast}
    if exact:
        for name in out:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name)))
            out[name]["rows"] = cur.fetchone()[0]
    return out


def stat_baseline(cur, schema):
    """The pg_stat_user_tables baseline per table, with the index usage percent."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in STAT_COLUMNS + STAT_TIMES)
    cur.execute(sql.SQL("SELECT relname, {} FROM pg_stat_user_tables WHERE schemaname = %s ORDER BY relname")
                .format(cols), (schema,))
    names = STAT_COLUMNS + STAT_TIMES
    out = {}
    for row in cur.fetchall():
        rec = {k: _iso(v) for k, v in zip(names, row[1:])}
        rec["index_usage_percent"] = index_usage_percent(rec["seq_scan"], rec["idx_scan"])
        out[row[0]] = rec
    return out


def index_baseline(cur, schema):
    """pg_stat_user_indexes per index: scans, size, and whether it was never used."""
    cur.execute("SELECT s.relname, s.indexrelname, s.idx_scan, s.idx_tup_read, s.idx_tup_fetch, "
                "pg_relation_size(s.indexrelid) FROM pg_stat_user_indexes s WHERE s.schemaname = %s "
                "ORDER BY s.relname, s.indexrelname", (schema,))
    return [{"table": t, "index": i, "idx_scan": n, "idx_tup_read": r, "idx_tup_fetch": f, "bytes": b,
             "unused": (n or 0) == 0} for t, i, n, r, f, b in cur.fetchall()]


def database_totals(stats):
    """Sums over the baseline's tables: operations, scans and the overall index usage percent."""
    seq = sum(s.get("seq_scan") or 0 for s in stats.values())
    idx = sum(s.get("idx_scan") or 0 for s in stats.values())
    return {
        "seq_scan": seq, "idx_scan": idx, "index_usage_percent": index_usage_percent(seq, idx),
        "inserts": sum(s.get("n_tup_ins") or 0 for s in stats.values()),
        "updates": sum(s.get("n_tup_upd") or 0 for s in stats.values()),
        "deletes": sum(s.get("n_tup_del") or 0 for s in stats.values()),
        "dead_tuples": sum(s.get("n_dead_tup") or 0 for s in stats.values()),
    }


# ------------------------------------------------------------------------------- preflight
def _check(name, ok, message, severity="error", **details):
    return {"check": name, "ok": bool(ok), "severity": severity, "message": message, "details": details}


def check_version(cur, minimum=MIN_SERVER_VERSION):
    version = server_version(cur)
    ok = version["num"] >= minimum
    return _check("server_version", ok, "PostgreSQL %s (%s required)" % (
        version["text"], "%d or newer" % (minimum // 10000)), version_num=version["num"], version=version["text"])


def check_extensions(cur, required, recommended=()):
    """Each extension: installed, creatable (available and this role may create it), or missing.

    Required ones that are missing fail the check; recommended ones only warn.
    """
    cur.execute("SELECT rolsuper, has_database_privilege(current_database(), 'CREATE') FROM pg_roles "
                "WHERE rolname = current_user")
    superuser, may_create = cur.fetchone()
    may_create = bool(superuser or may_create)
    states, problems, warnings = {}, [], []
    for name in list(required) + [r for r in recommended if r not in required]:
        cur.execute("SELECT e.extversion, a.default_version, a.name IS NOT NULL, "
                    "COALESCE((SELECT bool_or(v.trusted) FROM pg_available_extension_versions v "
                    "          WHERE v.name = %s), false) "
                    "FROM (SELECT 1) one LEFT JOIN pg_extension e ON e.extname = %s "
                    "LEFT JOIN pg_available_extensions a ON a.name = %s", (name, name, name))
        installed, default_version, available, trusted = cur.fetchone()
        if installed:
            state = "installed %s" % installed
        elif available and may_create and (superuser or trusted):
            state = "creatable (%s available)" % default_version
        elif available:
            state = "available, but %s may not create it" % ("this role" if not superuser else "nobody")
        else:
            state = "missing (not available on the server)"
        states[name] = state
        if not installed and not (available and may_create and (superuser or trusted)):
            (problems if name in required else warnings).append("%s: %s" % (name, state))
    if problems:
        return _check("extensions", False, "required extensions unavailable: %s" % "; ".join(problems),
                      extensions=states)
    if warnings:
        return _check("extensions", False, "recommended extensions unavailable: %s" % "; ".join(warnings),
                      severity="warning", extensions=states)
    return _check("extensions", True, ", ".join("%s %s" % kv for kv in sorted(states.items())) or "none required",
                  extensions=states)


def existing_parent(path):
    """``path`` or its nearest existing parent (the backup directory may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def estimated_dump_bytes(volumes):
    """What a dump of the legacy tables may take: heap + TOAST (indexes are not dumped, only their DDL).

    Uncompressed (a plain or directory dump without compression), so the estimate errs on the safe side.
    """
    return sum((v.get("table_bytes") or 0) + (v.get("toast_bytes") or 0) for v in volumes.values())


def check_disk(backup_dir, needed_bytes, safety_factor, disk_usage=shutil.disk_usage):
    where = existing_parent(backup_dir)
    free = disk_usage(where).free
    required = int(needed_bytes * safety_factor)
    ok = free >= required
    return _check("backup_disk", ok, "%s free at %s, %s needed (estimated dump %s x %.1f)" % (
        human_bytes(free), where, human_bytes(required), human_bytes(needed_bytes), safety_factor),
        backup_dir=backup_dir, checked_path=where, free_bytes=free, required_bytes=required,
        estimated_dump_bytes=needed_bytes, safety_factor=safety_factor)


def check_long_transactions(cur, max_seconds):
    """Transactions (and prepared transactions) open longer than ``max_seconds``: they hold back the
    xmin horizon and would block the cutover's DDL. Query texts are not returned (they may hold personal data)."""
    cur.execute(
        "SELECT pid, usename, application_name, state, wait_event_type, "
        "round(extract(epoch FROM now() - xact_start)::numeric, 1)::float AS age "
        "FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND now() - xact_start > make_interval(secs => %s) "
        "ORDER BY xact_start", (max_seconds,))
    names = [d[0] for d in cur.description]
    found = [dict(zip(names, r)) for r in cur.fetchall()]
    cur.execute("SELECT gid, owner, database, round(extract(epoch FROM now() - prepared)::numeric, 1)::float "
                "FROM pg_prepared_xacts WHERE now() - prepared > make_interval(secs => %s)", (max_seconds,))
    prepared = [{"gid": g, "owner": o, "database": d, "age": a} for g, o, d, a in cur.fetchall()]
    ok = not found and not prepared
    if ok:
        message = "no transaction open longer than %d s" % max_seconds
    else:
        parts = ["pid %s (%s, %s, %s s)" % (f["pid"], f["application_name"] or "?", f["state"], f["age"])
                 for f in found[:5]]
        parts += ["prepared %s (%s s)" % (p["gid"], p["age"]) for p in prepared[:5]]
        message = "%d transactions open longer than %d s: %s" % (len(found) + len(prepared), max_seconds,
                                                                 ", ".join(parts))
    return _check("long_transactions", ok, message, transactions=found, prepared=prepared,
                  max_seconds=max_seconds)


def check_primary_keys(cur, schema):
    cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') ORDER BY 1",
                (schema,))
    missing = [r[0] for r in cur.fetchall()]
    total = len(schema_tables(cur, schema))
    if not total:
        return _check("primary_keys", False, "schema %s has no tables" % schema, tables_without_pk=[])
    if missing:
        return _check("primary_keys", False, "%d of %d tables in %s have no primary key (the keyset copy and "
                      "the sync need one): %s" % (len(missing), total, schema, ", ".join(missing)),
                      tables_without_pk=missing)
    return _check("primary_keys", True, "all %d tables in %s have a primary key" % (total, schema),
                  tables_without_pk=[])


def role_settings(cur):
    """Every ALTER ROLE ... SET / ALTER DATABASE ... SET that applies in this database."""
    cur.execute(
        "SELECT COALESCE(r.rolname, '') AS role, COALESCE(d.datname, '') AS database, unnest(s.setconfig) "
        "FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
        "LEFT JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) "
        "ORDER BY 1, 2")
    out = []
    for role, database, setting in cur.fetchall():
        name, value = setting.partition("=")[::2]
        out.append({"role": role or None, "database": database or None, "name": name, "value": value})
    return out


def check_role_settings(cur, blocking=("search_path",)):
    """Role-level settings win over database-level ones (role+db > role > db > server). A role-level
    ``search_path`` would override the ``ALTER DATABASE ... SET search_path`` of the cutover."""
    settings = role_settings(cur)
    role_level = [s for s in settings if s["role"]]
    blockers = [s for s in role_level if s["name"] in blocking]
    if blockers:
        text = ", ".join("%s%s: %s=%s" % (s["role"], " in %s" % s["database"] if s["database"] else "",
                                          s["name"], s["value"]) for s in blockers)
        return _check("role_settings", False, "role-level settings that would override the database-level ones "
                      "at cutover: %s (ALTER ROLE ... RESET %s)" % (text, blockers[0]["name"]),
                      settings=settings, blocking=list(blocking))
    text = "; ".join("%s: %s=%s" % (s["role"], s["name"], s["value"]) for s in role_level)
    return _check("role_settings", True, ("role-level settings (none blocking): %s" % text) if role_level
                  else "no role-level settings", settings=settings, blocking=list(blocking))


def verdict(checks):
    """``go`` when no error-severity check failed; the reasons are the failed checks' messages."""
    errors = [c for c in checks if not c["ok"] and c["severity"] == "error"]
    warnings = [c for c in checks if not c["ok"] and c["severity"] != "error"]
    return {
        "verdict": "no-go" if errors else "go",
        "reasons": ["%s: %s" % (c["check"], c["message"]) for c in errors],
        "warnings": ["%s: %s" % (c["check"], c["message"]) for c in warnings],
    }


# ------------------------------------------------------------------------------- baseline file
def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def baseline_file(path, taken_at):
    """Where the baseline goes: ``path`` itself, or a timestamped file inside it when it is a directory."""
    stamp = taken_at.strftime("%Y%m%dT%H%M%SZ")
    if path.endswith(os.sep) or os.path.isdir(path):
        return os.path.join(path, "baseline-%s.json" % stamp)
    return path


def write_baseline(path, document):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = "%s.tmp" % path
    with open(tmp, "w") as handle:
        json.dump(document, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def human_bytes(num):
    num = float(num or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(num) < 1024 or unit == "TB":
            return ("%d %s" % (num, unit)) if unit == "B" else ("%.1f %s" % (num, unit))
        num /= 1024.0
    return "%.1f TB" % num  # pragma: no cover


# ------------------------------------------------------------------------------- the whole assessment
def assess(cur, schema, backup_dir, required_extensions=(), recommended_extensions=(), safety_factor=1.5,
           max_transaction_seconds=300, exact_counts=True, blocking_role_settings=("search_path",),
           disk_usage=shutil.disk_usage):
    """Volumes, sizes, the baseline and the preflight checks of ``schema``, as one document."""
    taken_at = now_utc()
    version = server_version(cur)
    # the baseline first: the exact counts below are sequential scans of their own
    stats = stat_baseline(cur, schema)
    indexes = index_baseline(cur, schema)
    volumes = table_volumes(cur, schema, exact=exact_counts)
    checks = [
        check_version(cur),
        check_extensions(cur, required_extensions, recommended_extensions),
        check_disk(backup_dir, estimated_dump_bytes(volumes), safety_factor, disk_usage=disk_usage),
        check_long_transactions(cur, max_transaction_seconds),
        check_primary_keys(cur, schema),
        check_role_settings(cur, blocking_role_settings),
    ]
    cur.execute("SELECT current_database(), pg_database_size(current_database()), "
                "(SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())")
    database, db_bytes, stats_reset = cur.fetchone()
    totals = {
        "tables": len(volumes),
        "rows": sum(v["rows"] or 0 for v in volumes.values()) if exact_counts else None,
        "total_bytes": sum(v["total_bytes"] for v in volumes.values()),
        "table_bytes": sum(v["table_bytes"] + v["toast_bytes"] for v in volumes.values()),
        "index_bytes": sum(v["index_bytes"] for v in volumes.values()),
        "database_bytes": db_bytes,
    }
    totals.update(database_totals(stats))
    doc = {
        "taken_at": taken_at.isoformat(),
        "database": database,
        "schema": schema,
        "server_version": version["text"],
        "server_version_num": version["num"],
        "stats_reset": _iso(stats_reset),
        "totals": totals,
        "tables": volumes,
        "pg_stat_user_tables": stats,
        "indexes": indexes,
        "preflight": checks,
    }
    doc.update(verdict(checks))
    return doc


def report_part(doc, baseline_path=None):
    """The assessment's part of the migration report (``carbot_report``)."""
    rows = {}
    for name, vol in sorted(doc["tables"].items()):
        stat = doc["pg_stat_user_tables"].get(name, {})
        rows[name] = {"rows": vol["rows"] if vol["rows"] is not None else vol["rows_estimate"],
                      "size": human_bytes(vol["total_bytes"]), "seq_scan": stat.get("seq_scan"),
                      "idx_scan": stat.get("idx_scan"), "index_usage_percent": stat.get("index_usage_percent")}
    validation = [{"check": "preflight: %s" % c["check"], "ok": c["ok"] or c["severity"] != "error",
                   "message": ("WARNING: " if not c["ok"] else "") + c["message"]} for c in doc["preflight"]]
    notes = ["Assessment of %s.%s at %s: verdict %s%s" % (
        doc["database"], doc["schema"], doc["taken_at"], doc["verdict"].upper(),
        (": " + "; ".join(doc["reasons"])) if doc["reasons"] else "")]
    if baseline_path:
        notes.append("Baseline written to %s" % baseline_path)
    return {
        "validation": validation,
        "notes": notes,
        "assessment": {
            "verdict": doc["verdict"], "reasons": doc["reasons"], "warnings": doc["warnings"],
            "server_version": doc["server_version"], "baseline_file": baseline_path,
            "totals": doc["totals"], "tables": rows,
        },
    }
