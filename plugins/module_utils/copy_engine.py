# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine: legacy rows -> carbot_v2, through the mapping views.

What it guarantees (docs/architecture.md is the contract it builds on):

* **Keyset batches, one transaction each.** Per target table the engine walks the driving
  legacy table's primary key in order. One batch is one statement: a CTE locks the next ``n``
  source keys (``FOR SHARE``), the projection view's rows for exactly those keys go into the
  target (``ON CONFLICT DO NOTHING``: a row the sync trigger already wrote is newer), rows
  with a ``_quarantine_reason`` go to ``migration_quarantine``, and the target's parent rows
  that the inserted rows point at (``references`` of the declaration) are locked
  ``FOR KEY SHARE``; the checkpoint (``last_key``) is written to ``migration_status`` in the
  same transaction. A crash at any moment (kill -9, dropped connection) loses at most the
  uncommitted batch together with its checkpoint, so a rerun resumes exactly where the last
  commit stopped.
* **What the batch read is what the sync sees, or the batch starts over.** The statement
  reads the view under its snapshot, and the application may change a row after that
  snapshot, before the batch's lock reaches it. So the statement also counts the source rows
  whose locked version is not the one it read (``xmin`` differs: the lock waited for an update)
  and the parents it could not lock (deleted, or moved to the quarantine); if there is any,
  the batch rolls back and runs again on a fresh snapshot (``BatchRaced``, counted in
  ``retries``). Once locked, a source row cannot change and a parent cannot leave the target
  until the batch commits: the application's write waits (at most one batch, ~1 s) and its
  sync trigger, which locks a target row ``FOR UPDATE`` before it re-syncs the row's children,
  then sees the copied rows. Without this, a row the app deleted or quarantined mid-batch came
  back, and a child kept the id of a parent that a GDPR erasure deleted mid-batch
  (tests/integration/test_copy_race.py makes each of these happen). Rows the sync inserts
  into the batch's range meanwhile (a parent's update re-syncs its children) are conflicts
  that ``DO NOTHING`` leaves to the sync. And the other direction: a parent that enters the
  target (new, or out of the quarantine) while a batch quarantines its children "orphan" or
  "parent quarantined" would leave them quarantined, because the parent's sync looks for its
  children in the quarantine before the batch committed them. So the batch takes the shared
  advisory lock that the parent's sync function takes exclusively (``pg_advisory_xact_lock``
  on the parent's key, sync.py), and after its statement checks, on a fresh snapshot, whether
  any of those parents is in the target now; if so it starts over. A sync that holds the lock
  first makes the batch wait and then start over; a batch that holds it first makes the sync
  wait and then find the batch's quarantined children.
* **Idempotent.** ``rows_copied`` counts what *this* run inserted (``RETURNING``), so
  a second run reports 0 and the module ``changed: false``.
* **Parallel, in dependency order.** One thread per worker, each with its own
  connection; a table starts when every table it ``depends_on`` is done.
* **Retries.** Every batch runs under ``lock_timeout`` (set on the session by
  db.connect) and is retried with jittered backoff on lock timeouts, deadlocks and
  dropped connections (reconnecting).
* **Progress.** rows done / total, rows per second and ETA per table are written to
  ``migration_status`` after each batch (and to an optional JSON-lines file).

``derived`` tables (aggregates such as organizations or chat_sessions) are copied in one
statement that locks only their parents (a missing parent starts it over): there are no
source rows to lock behind an aggregate, and keyset batches would evaluate the whole
aggregate once per batch. A crash repeats the statement, which is idempotent (ON CONFLICT
DO NOTHING); their freshness is the sync's job.

All identifiers go through psycopg2.sql.Identifier; all values are parameters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ansible_collections.carbot.migration.plugins.module_utils import db, schemas, tables
from ansible_collections.carbot.migration.plugins.module_utils.keys import key_hash, key_text_array
# the table metadata, re-exported: callers and tests use copy_engine.<name>
from ansible_collections.carbot.migration.plugins.module_utils.tables import (  # noqa: F401 pylint: disable=unused-import
    QUARANTINE_REASON, QUARANTINE_TABLE, STATUS_TABLE, TableSpec, load_declaration, order_tables, resolve,
    table_columns, view_key_columns)

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through db.HAS_PSYCOPG2
    psycopg2 = sql = None

DEFAULT_BATCH_SIZE = 10000
MIN_BATCH_SIZE = 500
MAX_BATCH_SIZE = 100000
# Adaptive batches aim at this duration: long enough to amortise the round trip and
# the commit, short enough that an application DELETE never waits long on our locks.
TARGET_BATCH_SECONDS = 1.0
# Values of carbot_v2's migration_state enum (sql/v2/010_types.sql).
STATE_PENDING, STATE_COPYING, STATE_DONE, STATE_FAILED = "pending", "copying", "copied", "failed"


# An operator-facing reason why the copy cannot run: one class with the metadata's (tables.py), which
# order_tables/resolve raise.
CopyError = tables.TableError


class BatchRaced(Exception):
    """The application changed a row the batch read, or deleted a parent its rows point at, while the
    batch's statement ran: the batch rolls back and runs again (retried like a lock timeout)."""


def default_workers():
    return max(1, os.cpu_count() or 1)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -------------------------------------------------------------- the status table
class StatusTable:
    """Writes to ``<target>.migration_status`` restricted to the columns it actually has.

    The table belongs to the schema step (sql/v2); the engine writes the columns of the
    contract it finds and leaves others alone, so an added column never breaks the copy.
    """

    def __init__(self, conn, target_schema):
        self.schema = target_schema
        with conn.cursor() as cur:
            self.columns = {c[0]: c[1] for c in table_columns(cur, target_schema, STATUS_TABLE)}
        self.rel = sql.SQL("{}.{}").format(sql.Identifier(target_schema), sql.Identifier(STATUS_TABLE))

    def has(self, column):
        return column in self.columns

    def ensure_rows(self, cur, specs, run_id):
        for spec in specs:
            values = {"target_table": spec.name, "source_table": spec.source, "kind": spec.kind,
                      "state": STATE_PENDING, "run_id": run_id}
            values = {k: v for k, v in values.items() if self.has(k)}
            cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                self.rel, sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder() * len(values))), list(values.values()))

    def read(self, cur, table, lock=False):
        wanted = [c for c in ("state", "last_key", "rows_copied", "rows_quarantined", "started_at",
                              "finished_at", "rows_total_estimate") if self.has(c)]
        cur.execute(sql.SQL("SELECT {} FROM {} WHERE target_table = %s{}").format(
            sql.SQL(", ").join(map(sql.Identifier, wanted)), self.rel,
            sql.SQL(" FOR UPDATE") if lock else sql.SQL("")), (table,))
        row = cur.fetchone()
        return dict(zip(wanted, row)) if row else None

    def update(self, cur, table, values, increments=None):
        """SET the given columns (those that exist), add ``increments``; ``now()`` for *_at=True."""
        parts, args = [], []
        for col, val in values.items():
            if not self.has(col):
                continue
            if val is True and col.endswith("_at"):
                parts.append(sql.SQL("{} = now()").format(sql.Identifier(col)))
            else:
                parts.append(sql.SQL("{} = %s").format(sql.Identifier(col)))
                args.append(val)
        for col, val in (increments or {}).items():
            if self.has(col):
                parts.append(sql.SQL("{0} = coalesce({0}, 0) + %s").format(sql.Identifier(col)))
                args.append(val)
        if self.has("updated_at") and "updated_at" not in values:
            parts.append(sql.SQL("updated_at = now()"))
        if not parts:
            return
        cur.execute(sql.SQL("UPDATE {} SET {} WHERE target_table = %s").format(
            self.rel, sql.SQL(", ").join(parts)), args + [table])


def read_progress(conn, target_schema, tables=None):
    """Progress rows from migration_status: rows done/total, rows/s, ETA (for the role's poll loop)."""
    status = StatusTable(conn, target_schema)
    if not status.columns:
        return []
    cols = [c for c in ("target_table", "source_table", "state", "rows_copied", "rows_quarantined",
                        "rows_total_estimate", "started_at", "updated_at", "finished_at", "last_error",
                        "rows_per_second", "eta_seconds") if status.has(c)]
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT {}, now() FROM {} ORDER BY target_table").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), status.rel))
        rows = cur.fetchall()
    out = []
    for row in rows:
        rec = dict(zip(cols, row[:-1]))
        if tables and rec["target_table"] not in tables:
            continue
        db_now = row[-1]
        done = int(rec.get("rows_copied") or 0) + int(rec.get("rows_quarantined") or 0)
        total = rec.get("rows_total_estimate")
        rate = rec.get("rows_per_second")
        if rate is None and rec.get("started_at") and rec.get("state") in (STATE_COPYING, STATE_DONE):
            end = rec.get("finished_at") or rec.get("updated_at") or db_now
            secs = max((end - rec["started_at"]).total_seconds(), 0.001)
            rate = done / secs
        eta = rec.get("eta_seconds")
        if eta is None and rate and total and rec.get("state") == STATE_COPYING:
            eta = max(int(total) - done, 0) / rate
        out.append({
            "table": rec["target_table"], "state": rec.get("state"), "rows_done": done,
            "rows_total": int(total) if total is not None else None,
            "rows_per_second": round(float(rate), 1) if rate else 0.0,
            "eta_seconds": round(float(eta), 1) if eta is not None else None,
            "last_error": rec.get("last_error"),
        })
    return out


def format_progress(records):
    """Human lines for the poll loop: one per table."""
    lines = ["%-22s %-8s %21s %5s %9s %7s" % ("table", "state", "rows done / total", "%", "rows/s", "ETA")]
    for r in records:
        pct = "-"
        if r["rows_total"]:
            pct = "%d%%" % min(100, int(100 * r["rows_done"] / max(r["rows_total"], 1)))
        eta = "-" if r["eta_seconds"] is None else "%ds" % r["eta_seconds"]
        total = "?" if r["rows_total"] is None else str(r["rows_total"])
        lines.append("%-22s %-8s %21s %5s %9.0f %7s" % (
            r["table"], r["state"] or "-", "%d / %s" % (r["rows_done"], total), pct, r["rows_per_second"], eta))
        if r.get("last_error") and r["state"] == STATE_FAILED:
            lines.append("    error: %s" % r["last_error"])
    return lines


# ------------------------------------------------------------------ SQL builders
def _cols(names, prefix=None):
    if prefix:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(prefix), sql.Identifier(n)) for n in names)
    return sql.SQL(", ").join(map(sql.Identifier, names))


def _row(names, prefix=None):
    """``(a, b)`` (or ``a`` for one column) for keyset comparisons."""
    inner = _cols(names, prefix)
    return sql.SQL("({})").format(inner) if len(names) > 1 else inner


def _params_row(values):
    """Literal parameters of a saved key; untyped literals take the key column's type."""
    inner = sql.SQL(", ").join(sql.Literal(v) for v in values)
    return sql.SQL("({})").format(inner) if len(values) > 1 else inner


def _desc(names):
    return sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(n)) for n in names)


class QuarantineWriter(tables.QuarantineKeys):
    """The INSERT into migration_quarantine (sql/v2/040_migration_tables.sql); the columns and key
    expressions are tables.QuarantineKeys."""

    def row_data_expr(self, spec):
        """The legacy row of a quarantined view row ``q`` (row tables); the view row for derived ones."""
        if spec.kind == "row":
            match = sql.SQL(" AND ").join(
                sql.SQL("s.{} = q.{}").format(sql.Identifier(k), sql.Identifier(v))
                for k, v in zip(spec.source_key, spec.view_key))
            return sql.SQL("coalesce((SELECT to_jsonb(s) FROM {} s WHERE {}), to_jsonb(q))").format(
                spec.source_rel, match)
        return sql.SQL("to_jsonb(q) - {}").format(sql.Literal(QUARANTINE_REASON))

    def insert_sql(self, spec, src_cte, run_id):
        """``INSERT .. SELECT .. FROM <src_cte> WHERE _quarantine_reason IS NOT NULL`` with RETURNING 1."""
        exprs = []
        for col in self.columns:
            if col == "target_table":
                exprs.append((col, sql.Literal(spec.name)))
            elif col == "source_table":
                exprs.append((col, sql.Literal(spec.source)))
            elif col == self.key_col:
                exprs.append((col, self.key_expr(spec, "q")))
            elif col == "reason":
                exprs.append((col, sql.SQL("q.{}").format(sql.Identifier(QUARANTINE_REASON))))
            elif col == "row_data":
                exprs.append((col, self.row_data_expr(spec)))
            elif col == "run_id":
                exprs.append((col, sql.Literal(run_id)))
        # NOT EXISTS as well as ON CONFLICT: idempotent even without the unique key; cheap with it.
        return sql.SQL(
            "INSERT INTO {rel} ({cols}) SELECT {exprs} FROM {src} q "
            "WHERE q.{reason} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {rel} x WHERE x.target_table = {t} "
            "AND x.{kcol} = {xkey}) ON CONFLICT DO NOTHING RETURNING 1"
        ).format(
            rel=self.rel, cols=_cols([e[0] for e in exprs]), exprs=sql.SQL(", ").join(e[1] for e in exprs),
            src=sql.Identifier(src_cte), reason=sql.Identifier(QUARANTINE_REASON),
            t=sql.Literal(spec.name), kcol=sql.Identifier(self.key_col), xkey=self.key_expr(spec, "q"),
        )


def _to_target(spec, alias=None):
    """``WHERE [alias.]_quarantine_reason IS NULL`` when the view has the column: the rows for the target."""
    if not spec.has_reason:
        return sql.SQL("")
    if alias:
        return sql.SQL("WHERE {}.{} IS NULL").format(sql.Identifier(alias), sql.Identifier(QUARANTINE_REASON))
    return sql.SQL("WHERE {} IS NULL").format(sql.Identifier(QUARANTINE_REASON))


def batch_statement(spec, quarantine, last_key, limit, run_id):
    """The one statement of a batch. It returns one row: rows scanned, inserted, quarantined, the last key
    (text[]), rows that changed under the statement (stale), parent keys named and parent rows locked."""
    cols = _cols(spec.columns)
    vkey = spec.view_key
    if spec.kind == "row":
        skey = spec.source_key
        lower_src = sql.SQL("WHERE {} > {}").format(_row(skey, "s"), _params_row(last_key)) if last_key \
            else sql.SQL("")
        lower_view = sql.SQL("AND {} > {}").format(_row(vkey, "m"), _params_row(last_key)) if last_key \
            else sql.SQL("")
        join = sql.SQL(" AND ").join(
            sql.SQL("m.{} = l.{}").format(sql.Identifier(v), sql.Identifier(k)) for v, k in zip(vkey, skey))
        # locked: the next `limit` source keys, locked against UPDATE and DELETE until commit.
        # src: the view's rows for exactly those keys; the key range lets the planner use the
        # source's primary-key index instead of evaluating the whole view.
        head = sql.SQL(
            "WITH locked AS MATERIALIZED ("
            " SELECT {skey_s}, s.xmin AS _xmin FROM {source} s {lower_src} ORDER BY {skey_s} LIMIT {limit}"
            " FOR SHARE OF s),"
            " bound AS MATERIALIZED (SELECT {skey} FROM locked ORDER BY {skey_desc} LIMIT 1),"
            " src AS MATERIALIZED ("
            " SELECT m.* FROM {view} m JOIN locked l ON {join}"
            " WHERE {vrow} <= (SELECT {skey} FROM bound) {lower_view}),"
        ).format(
            skey_s=_cols(skey, "s"), source=spec.source_rel, lower_src=lower_src, limit=sql.Literal(int(limit)),
            skey=_cols(skey), skey_desc=_desc(skey), view=spec.view_rel, join=join,
            vrow=_row(vkey, "m"), lower_view=lower_view,
        )
        scanned = sql.SQL("(SELECT count(*) FROM locked)")
        last = sql.SQL("(SELECT {} FROM bound)").format(key_text_array(skey))
        # rows whose locked version is not the one the statement's snapshot (and so the view) saw: the lock
        # waited for an update that committed after the snapshot
        # (the batch's key range keeps the probe on the primary key's index: without it the planner hashes
        # the whole source table once per batch)
        lower_s2 = sql.SQL("AND {} > {}").format(_row(skey, "s2"), _params_row(last_key)) if last_key \
            else sql.SQL("")
        stale = sql.SQL("(SELECT count(*) FROM locked l WHERE NOT EXISTS (SELECT 1 FROM {source} s2 WHERE {m}"
                        " AND s2.xmin = l._xmin AND {row} <= (SELECT {skey} FROM bound) {lower}))").format(
            source=spec.source_rel, m=sql.SQL(" AND ").join(
                sql.SQL("s2.{k} = l.{k}").format(k=sql.Identifier(k)) for k in skey),
            row=_row(skey, "s2"), skey=_cols(skey), lower=lower_s2)
    else:
        lower = sql.SQL("WHERE {} > {}").format(_row(vkey, "m"), _params_row(last_key)) if last_key \
            else sql.SQL("")
        head = sql.SQL(
            "WITH src AS MATERIALIZED (SELECT m.* FROM {view} m {lower} ORDER BY {vkey} LIMIT {limit}),"
            " bound AS MATERIALIZED (SELECT {vkey} FROM src ORDER BY {vdesc} LIMIT 1),"
        ).format(view=spec.view_rel, lower=lower, vkey=_cols(vkey), vdesc=_desc(vkey),
                 limit=sql.Literal(int(limit)) if limit else sql.SQL("ALL"))
        scanned = sql.SQL("(SELECT count(*) FROM src)")
        last = sql.SQL("(SELECT {} FROM bound)").format(key_text_array(vkey))
        stale = sql.SQL("0")
    where_ok = _to_target(spec)
    # the conflict target is the primary key: a row the sync already wrote is skipped; any other unique clash (a
    # slug) is an error that names the row, never a silent skip (and deferrable unique keys cannot be arbiters)
    ins = sql.SQL(" ins AS (INSERT INTO {target} ({cols}) SELECT {cols} FROM src {where_ok}"
                  " ON CONFLICT ({tkey}) DO NOTHING RETURNING 1)").format(
        target=spec.target_rel, cols=cols, where_ok=where_ok, tkey=_cols(spec.target_key))
    if spec.has_reason:
        q = sql.SQL(", q AS ({})").format(quarantine.insert_sql(spec, "src", run_id))
        qcount = sql.SQL("(SELECT count(*) FROM q)")
    else:
        q, qcount = sql.SQL(""), sql.SQL("0")
    # the parents the copied rows point at, locked against DELETE until commit (see the module docstring)
    # (wanted: the distinct parent keys the rows name, read once; locked: those found and locked)
    plocks, wanted, locked = [], [], []
    for i, (column, parent, pkey) in enumerate(spec.parent_locks):
        keys, cte = sql.Identifier("parent_keys_%d" % i), sql.Identifier("parent_%d" % i)
        plocks.append(sql.SQL(", {keys} AS MATERIALIZED (SELECT DISTINCT x.{col} AS k FROM src x {where_ok})"
                              ", {cte} AS MATERIALIZED (SELECT 1 FROM {prel} p WHERE p.{pkey} IN"
                              " (SELECT k FROM {keys}) FOR KEY SHARE OF p)").format(
            keys=keys, cte=cte, prel=spec.ident(spec.target, parent), pkey=sql.Identifier(pkey),
            col=sql.Identifier(column), where_ok=_to_target(spec, "x")))
        wanted.append(sql.SQL("(SELECT count(k) FROM {})").format(keys))
        locked.append(sql.SQL("(SELECT count(*) FROM {})").format(cte))
    wanted = sql.SQL(" + ").join(wanted) if wanted else sql.SQL("0")
    locked = sql.SQL(" + ").join(locked) if locked else sql.SQL("0")
    # Rows quarantined because their required parent is missing or quarantined: the shared advisory lock of
    # that parent's sync (a parent entering the target holds it exclusively while it moves such children
    # out of the quarantine), and the parents' keys, which the engine checks again after the statement.
    entering = []
    for i, (column, _parent, _pkey, lock_id) in enumerate(spec.entering_locks):
        cte = sql.Identifier("entering_%d" % i)
        because = sql.SQL("x.{reason} IN ({orphan}, {quarantined}) AND x.{col} IS NOT NULL").format(
            reason=sql.Identifier(QUARANTINE_REASON), col=sql.Identifier(column),
            orphan=sql.Literal("orphan: %s not found" % column),
            quarantined=sql.Literal("parent quarantined: %s" % column))
        plocks.append(sql.SQL(", {cte} AS MATERIALIZED (SELECT d.k, pg_advisory_xact_lock_shared({lock}, {hash})"
                              " FROM (SELECT DISTINCT x.{col}::text AS k FROM src x WHERE {because}) d)").format(
            cte=cte, lock=sql.Literal(lock_id), hash=key_hash([sql.SQL("d.k")]), col=sql.Identifier(column),
            because=because))
        entering.append(sql.SQL(", (SELECT coalesce(array_agg(k), '{{}}') FROM {})").format(cte))
    return sql.SQL("{head}{ins}{q}{plocks} SELECT {scanned}, (SELECT count(*) FROM ins), {qcount}, {last},"
                   " {stale}, {wanted}, {locked}{entering}").format(
        head=head, ins=ins, q=q, plocks=sql.SQL("").join(plocks), scanned=scanned, qcount=qcount, last=last,
        stale=stale, wanted=wanted, locked=locked, entering=sql.SQL("").join(entering))


def unmappable_message(conn, spec, last_key, limit, exc, max_rows=5):
    """Which legacy rows of a failed batch the mapping cannot map: each key of the batch's range is read through
    the view on its own (a savepoint each; only on this error path), and the first ``max_rows`` that fail are
    named with their error. A rerun cannot help until the value or the rule is fixed, and the message says so."""
    error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    found = []
    if spec.kind == "row":
        skey = spec.source_key
        where = sql.SQL("WHERE {} > {}").format(_row(skey, "s"), _params_row(last_key)) if last_key else sql.SQL("")
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT {keys} FROM {src} s {where} ORDER BY {keys} {lim}").format(
                keys=_cols(skey, "s"), src=spec.source_rel, where=where,
                lim=sql.SQL("LIMIT {}").format(sql.Literal(int(limit))) if limit else sql.SQL("")),
                list(last_key or []))
            keys = cur.fetchall()
            # the row as the batch would write it (view and target constraints), always undone
            probe = sql.SQL("INSERT INTO {target} ({cols}) SELECT {cols} FROM {view} m WHERE {match} "
                            "AND m.{reason} IS NULL ON CONFLICT ({tkey}) DO NOTHING").format(
                target=spec.target_rel, cols=_cols(spec.columns), view=spec.view_rel, tkey=_cols(spec.target_key),
                reason=sql.Identifier(QUARANTINE_REASON), match=sql.SQL(" AND ").join(
                    sql.SQL("m.{} = %s").format(sql.Identifier(v)) for v in spec.view_key))
            for key in keys:
                cur.execute("SAVEPOINT carbot_probe")
                try:
                    cur.execute(probe, list(key))
                    cur.execute("ROLLBACK TO SAVEPOINT carbot_probe")
                except (psycopg2.DataError, psycopg2.IntegrityError) as row_exc:
                    cur.execute("ROLLBACK TO SAVEPOINT carbot_probe")
                    found.append("%s (%s)" % ("/".join(str(k) for k in key), str(row_exc).strip().splitlines()[0]))
                    if len(found) >= max_rows:
                        break
        conn.rollback()
    rows = ("legacy %s row(s) %s" % (spec.source, ", ".join(found))) if found else "a row of this batch"
    return ("%s: the mapping cannot map %s: %s. A rerun fails the same way: fix the value in %s or the rule "
            "in sql/mapping (docs/mapping.md), then rerun to resume" % (spec.name, rows, error, spec.source))


def entered_statement(spec, keys_per_ref):
    """How many of the parents a batch quarantined children for are in the target now (a fresh snapshot)."""
    parts, args = [], []
    for (_column, parent, pkey, _lock), keys in zip(spec.entering_locks, keys_per_ref):
        if keys:
            parts.append(sql.SQL("(SELECT count(*) FROM {} p WHERE p.{}::text = ANY(%s))").format(
                spec.ident(spec.target, parent), sql.Identifier(pkey)))
            args.append(list(keys))
    if not parts:
        return None, []
    return sql.SQL("SELECT {}").format(sql.SQL(" + ").join(parts)), args


def pending_statement(spec, quarantine):
    """Check mode: how many rows a copy would insert / quarantine now (read-only)."""
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = m.{}").format(sql.Identifier(t), sql.Identifier(v))
        for t, v in zip(spec.target_key, spec.view_key))
    if spec.has_reason:
        return sql.SQL(
            "SELECT count(*) FILTER (WHERE m.{reason} IS NULL AND NOT EXISTS (SELECT 1 FROM {target} t WHERE {match})),"
            " count(*) FILTER (WHERE m.{reason} IS NOT NULL AND NOT {quarantined}), count(*) FROM {view} m"
        ).format(reason=sql.Identifier(QUARANTINE_REASON), target=spec.target_rel, match=match,
                 quarantined=quarantine.exists_sql(spec, "m"), view=spec.view_rel)
    return sql.SQL(
        "SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {match})), 0, count(*) FROM {view} m"
    ).format(target=spec.target_rel, match=match, view=spec.view_rel)


# ------------------------------------------------------------------- the engine
class CopyEngine:
    """Copies the mapped tables; see the module docstring for the guarantees."""

    def __init__(self, conn_params, legacy_schema=schemas.LEGACY_SCHEMA, mapping_schema=schemas.MAPPING_SCHEMA,
                 target_schema=schemas.TARGET_SCHEMA, tables=None, selected=None, batch_size=None, workers=None,
                 progress_file=None, max_retries=10, adaptive=None, on_progress=None, retry_base=0.2):
        self.conn_params = dict(conn_params)
        self.legacy_schema, self.mapping_schema, self.target_schema = legacy_schema, mapping_schema, target_schema
        self.declaration = list(tables) if tables is not None else load_declaration()
        self.selected = list(selected or [])
        self.batch_size = int(batch_size or DEFAULT_BATCH_SIZE)
        # Adaptive unless the operator fixed a batch size.
        self.adaptive = (batch_size is None) if adaptive is None else bool(adaptive)
        self.workers = max(1, int(workers or default_workers()))
        self.progress_file = progress_file
        self.max_retries = max(1, int(max_retries))
        self.retry_base = retry_base
        self.on_progress = on_progress
        self.run_id = "%s-%s" % (datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
                                 uuid.uuid4().hex[:8])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.retries = 0

    # connections -----------------------------------------------------------------
    def connect(self, purpose="copy"):
        conn = db.connect(self.conn_params, application_name="carbot.migration %s" % purpose)
        with conn.cursor() as cur:
            # A batch's commit carries its own checkpoint, so losing the last commits in a server
            # crash loses rows and checkpoint together: the rerun copies them again. Safe, and faster.
            cur.execute("SET synchronous_commit TO off")
            # The mapping views are costly to plan, so every batch statement would cross jit_above_cost
            # and spend ~0.5 s compiling code for a 10000-row batch: more than the batch itself.
            cur.execute("SET jit TO off")
        conn.commit()
        return conn

    def plan(self, conn):
        ordered = order_tables(self.declaration, self.selected)
        return resolve(conn, ordered, self.legacy_schema, self.mapping_schema, self.target_schema,
                       self.declaration)

    # check mode ----------------------------------------------------------------------
    def preview(self):
        """What a run would do now, per table, without writing anything."""
        conn = self.connect("copy preview")
        try:
            specs = self.plan(conn)
            quarantine = QuarantineWriter(conn, self.target_schema)
            out = {}
            with conn.cursor() as cur:
                for spec in specs:
                    cur.execute(pending_statement(spec, quarantine))
                    would_copy, would_q, source_rows = cur.fetchone()
                    out[spec.name] = {"source_rows": source_rows, "would_copy": would_copy,
                                      "would_quarantine": would_q, "kind": spec.kind}
            conn.rollback()
            return out
        finally:
            conn.close()

    # the run ------------------------------------------------------------------------
    def run(self):
        """Copy every planned table; returns {"tables": {name: result}, "failed": [names], ...}."""
        started = time.monotonic()
        conn = self.connect("copy plan")
        try:
            specs = self.plan(conn)
            status = StatusTable(conn, self.target_schema)
            with conn.cursor() as cur:
                status.ensure_rows(cur, specs, self.run_id)
            conn.commit()
        finally:
            conn.close()
        results, failed, skipped = self._schedule(specs)
        return {
            "run_id": self.run_id,
            "tables": results,
            "failed": failed,
            "skipped": skipped,
            "rows_copied": sum(r.get("copied", 0) for r in results.values()),
            "rows_quarantined": sum(r.get("quarantined", 0) for r in results.values()),
            "retries": self.retries,
            "elapsed": round(time.monotonic() - started, 3),
            "workers": self.workers,
        }

    def _schedule(self, specs):
        by_name = {s.name: s for s in specs}
        pending = [s.name for s in specs]
        done, failed, skipped, results = set(), [], [], {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="carbot-copy")
        running = {}
        try:
            while pending or running:
                for name in list(pending):
                    deps = [d for d in by_name[name].depends_on if d in by_name]
                    if any(d in failed or d in skipped for d in deps):
                        pending.remove(name)
                        skipped.append(name)
                        results[name] = {"state": "skipped",
                                         "reason": "a table it depends on failed: %s"
                                         % ", ".join(d for d in deps if d in failed or d in skipped)}
                        continue
                    if len(running) < self.workers and all(d in done for d in deps):
                        pending.remove(name)
                        running[pool.submit(self._copy_table, by_name[name])] = name
                if not running:
                    continue
                finished = wait(list(running), return_when=FIRST_COMPLETED)[0]
                for fut in finished:
                    name = running.pop(fut)
                    try:
                        results[name] = fut.result()
                        done.add(name)
                    except Exception as exc:  # noqa: BLE001 - reported per table, others go on
                        failed.append(name)
                        results[name] = {"state": STATE_FAILED, "error": "%s: %s" % (type(exc).__name__, exc)}
        except BaseException:
            # Interrupted (KeyboardInterrupt, SystemExit): workers stop after their current batch,
            # which commits with its checkpoint or rolls back; a rerun resumes from there.
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results, failed, skipped

    # one table ------------------------------------------------------------------------
    def _copy_table(self, spec):
        return _TableCopy(self, spec).run()

    @staticmethod
    def _adapt(limit, took):
        if took < TARGET_BATCH_SECONDS / 2:
            return min(MAX_BATCH_SIZE, limit * 2)
        if took > TARGET_BATCH_SECONDS * 3:
            return max(MIN_BATCH_SIZE, limit // 2)
        return limit

    def _note_retry(self, spec, attempt, exc, delay):
        with self._lock:
            self.retries += 1
        self._write_progress({"ts": now_iso(), "run_id": self.run_id, "table": spec.name, "event": "retry",
                              "attempt": attempt, "delay": round(delay, 2),
                              "error": "%s: %s" % (type(exc).__name__, str(exc).strip()[:300])})

    def _mark_failed(self, spec, exc):
        try:
            c = self.connect("copy status")
            try:
                with c.cursor() as cur:
                    StatusTable(c, self.target_schema).update(
                        cur, spec.name, {"state": STATE_FAILED, "last_error": "%s: %s" % (type(exc).__name__, exc)})
                c.commit()
            finally:
                c.close()
        except Exception:  # noqa: BLE001 - the original error is what the operator needs
            pass
        self._write_progress({"ts": now_iso(), "run_id": self.run_id, "table": spec.name, "event": "failed",
                              "error": "%s: %s" % (type(exc).__name__, str(exc).strip()[:500])})

    def _emit(self, spec, state, done, total, scanned, rate, t0):
        remaining = max((total or 0) - done, 0)
        rec = {
            "ts": now_iso(), "run_id": self.run_id, "table": spec.name, "state": state,
            "rows_done": done, "rows_total": total, "rows_this_run": scanned,
            "rows_per_second": round(rate, 1), "eta_seconds": round(remaining / rate, 1) if rate else None,
            "elapsed": round(time.monotonic() - t0, 3),
        }
        if self.on_progress:
            self.on_progress(rec)
        self._write_progress(rec)
        return rec

    def _write_progress(self, rec):
        if not self.progress_file:
            return
        line = json.dumps(rec, default=str, sort_keys=True)
        with self._lock:
            with open(self.progress_file, "a") as handle:
                handle.write(line + "\n")


class _TableCopy:
    """One table's copy, on one connection of its own (reopened after a drop): ``start`` marks it copying and
    counts its source rows, ``batch`` runs one keyset batch with its checkpoint, ``finish`` marks it copied.
    Each runs through :meth:`attempt`: one transaction (db.transaction), retried with backoff on lock timeouts,
    dropped connections and raced batches (BatchRaced)."""

    def __init__(self, engine, spec):
        self.engine, self.spec = engine, spec
        self.conn = self.quarantine = self.status = None
        self.copied = self.quarantined = self.scanned = self.batches = 0

    def connection(self):
        if self.conn is None or self.conn.closed:
            self.conn = self.engine.connect("copy %s" % self.spec.name)
            self.quarantine = QuarantineWriter(self.conn, self.engine.target_schema)
            self.status = StatusTable(self.conn, self.engine.target_schema)
        return self.conn

    def attempt(self, func, *args):
        def call():
            c = self.connection()
            with db.transaction(c):  # a connection that cannot roll back is closed: reconnect next time
                return func(c, *args)
        engine = self.engine
        result, _used = db.with_retries(call, attempts=engine.max_retries, base=engine.retry_base,
                                        also=(BatchRaced,),
                                        on_retry=lambda a, e, d: engine._note_retry(self.spec, a, e, d))
        return result

    def start(self, c):
        spec = self.spec
        with c.cursor() as cur:
            row = self.status.read(cur, spec.name, lock=True) or {}
            # the total, for progress: exact for row tables (the key count); derived tables are
            # aggregates that cost a full pass to count, so their last total is kept
            if spec.kind == "row":
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(spec.source_rel))
                total = cur.fetchone()[0]
            else:
                total = row.get("rows_total_estimate")
            values = {"state": STATE_COPYING, "finished_at": None, "rows_total_estimate": total,
                      "run_id": self.engine.run_id, "last_error": None}
            if not row.get("started_at"):
                # kept over reruns: rows/s in migration_status is the average since the first start
                values["started_at"] = True
            self.status.update(cur, spec.name, values)
        return row, total

    def batch(self, c, limit, live):
        spec = self.spec
        with c.cursor() as cur:
            # Read the checkpoint under a row lock: two runs (say, an orphaned async job and
            # its rerun) then take turns per batch instead of racing on the same keys.
            row = self.status.read(cur, spec.name, lock=True) or {}
            last_key = row.get("last_key")
            try:
                cur.execute(batch_statement(spec, self.quarantine, last_key, limit, self.engine.run_id))
            except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
                # a value the mapping cannot take: retrying would fail the same way, so name the rows
                c.rollback()
                raise CopyError(unmappable_message(c, spec, last_key, limit, exc))
            row = cur.fetchone()
            n_scanned, n_ins, n_q, new_last, n_stale, n_wanted, n_locked = row[:7]
            n_entered = 0
            check, check_args = entered_statement(spec, row[7:])
            if check is not None:
                cur.execute(check, check_args)
                n_entered = cur.fetchone()[0]
            if n_stale or n_locked < n_wanted or n_entered:
                # start over on a fresh snapshot (the module docstring says why)
                raise BatchRaced(
                    "%s: %d row(s) changed, %d of %d parent row(s) gone and %d parent(s) entered "
                    "while the batch ran" % (spec.name, n_stale, n_wanted - n_locked, n_wanted, n_entered))
            if n_scanned:
                self.status.update(cur, spec.name, dict(live, last_key=new_last),
                                   {"rows_copied": n_ins, "rows_quarantined": n_q})
        return n_scanned, n_ins, n_q

    def finish(self, c):
        spec = self.spec
        with c.cursor() as cur:
            values = {"state": STATE_DONE, "finished_at": True}
            if spec.kind != "row" and self.scanned:
                values["rows_total_estimate"] = self.scanned
            self.status.update(cur, spec.name, values)
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(spec.target_rel))
            return cur.fetchone()[0]

    def run(self):
        engine, spec = self.engine, self.spec
        t0 = time.monotonic()
        try:
            before, total = self.attempt(self.start)
            done_before = int(before.get("rows_copied") or 0) + int(before.get("rows_quarantined") or 0)
            # Derived tables go in one statement: their view is an aggregate that every keyset batch
            # would evaluate in full again (quadratic); rerunning it after a crash is idempotent.
            limit = engine.batch_size if spec.kind == "row" else None
            live = {}  # rows/s and ETA so far, written with the checkpoint when the table has the columns
            engine._emit(spec, STATE_COPYING, done_before, total, 0, 0.0, t0)
            while True:
                if engine._stop.is_set():
                    raise CopyError("stopped on request after %d batches; rerun to resume" % self.batches)
                b0 = time.monotonic()
                n_scanned, n_ins, n_q = self.attempt(self.batch, limit, live)
                took = time.monotonic() - b0
                self.batches += 1
                self.scanned += n_scanned
                self.copied += n_ins
                self.quarantined += n_q
                elapsed = time.monotonic() - t0
                rate = self.scanned / elapsed if elapsed > 0 else 0.0
                rec = engine._emit(spec, STATE_COPYING, done_before + self.copied + self.quarantined, total,
                                   self.scanned, rate, t0)
                live = {"rows_per_second": rec["rows_per_second"], "eta_seconds": rec["eta_seconds"]}
                if limit is None or n_scanned < limit:
                    break
                if engine.adaptive:
                    limit = engine._adapt(limit, took)
            target_rows = self.attempt(self.finish)
            elapsed = time.monotonic() - t0
            scanned, copied = self.scanned, self.copied
            result = {
                "state": STATE_DONE, "kind": spec.kind, "source": spec.source,
                "source_rows": total if spec.kind == "row" or (total and not scanned) else scanned,
                "copied": copied, "quarantined": self.quarantined, "scanned": scanned,
                "already_present": max(target_rows - copied, 0), "target_rows": target_rows,
                "batches": self.batches, "elapsed": round(elapsed, 3),
                "rows_per_second": round(scanned / elapsed, 1) if elapsed > 0 else 0.0,
            }
            engine._emit(spec, STATE_DONE, done_before + copied + self.quarantined, total, scanned,
                         result["rows_per_second"], t0)
            return result
        except Exception as exc:
            engine._mark_failed(spec, exc)
            raise
        finally:
            if self.conn is not None and not self.conn.closed:
                self.conn.close()
