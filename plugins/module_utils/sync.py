# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live sync between the legacy schema and carbot_v2, generated from the mapping declaration.

docs/sync.md is the long version. In short:

Forward (legacy -> carbot_v2, while the app writes to ``public``)
    One static plpgsql function per target table, ``carbot_sync_<target>(key.., deep)``, re-syncs one
    key from the projection view ``map_<target>``: upsert (``ON CONFLICT (pk) DO UPDATE``) when the view
    row has no ``_quarantine_reason``, delete + ``migration_quarantine`` row when it has one, delete from
    both when the view has no row. When a row *leaves* the target (deleted or quarantined) its children
    in the target (found through the target's indexed foreign-key columns, per ``references``) are
    re-synced first (so they move to quarantine or get their optional reference set NULL, before any
    ``ON DELETE CASCADE`` could remove them silently); when a row *enters* the target, children that
    were quarantined because of it are re-synced (looked up in ``migration_quarantine``) and, for
    updates, children whose optional reference was dangling (legacy scan). Derived tables are re-derived
    for the affected natural key: organizations of the old and the new owner of a workshop,
    chat_sessions of the conversation ``(workshop_id, kunde_id)`` of a message.
    One trigger function per legacy table, ``carbot_sync_stmt_<table>()``, calls those functions per statement for
    the keys of its transition tables (set-based for leaf tables, per key for the others, with the chat sessions
    and the extra dependencies re-derived from the statement's old and new rows); a ``BEFORE TRUNCATE`` trigger
    raises.
    Every sync of a key takes a transaction-level advisory lock on (target, key) and then reads the view
    with a fresh snapshot, so two transactions that affect the same target row apply in commit order.

Reverse (carbot_v2 -> legacy, after the switch)
    ``sql/sync/*.sql`` holds one reverse projection view ``rmap_<target>`` per row table (legacy column
    names, ``_dst_key``); one trigger function per target table upserts/deletes the legacy row from it, and
    ``BEFORE UPDATE OF`` triggers per set-aside key drop the set-aside original of a column the app writes.

Loops: the forward trigger function marks the transaction-local setting ``carbot.sync_origin`` while it writes
carbot_v2, and the reverse triggers do nothing while it is set. The reverse trigger does not mark it: its legacy
write fires the forward trigger, which re-projects the row into carbot_v2 (``map(legacy) = carbot_v2`` after every
write of the new app; docs/sync.md). Identity/bigserial
sequences are kept ahead of the ids written by the other side (``serial_columns``, ``align_sequences`` and the
bumps in the trigger functions below; the cutover shares them: the ``sequences`` module).

Installation takes ``SHARE ROW EXCLUSIVE`` per table (``CREATE TRIGGER``) or ``ACCESS EXCLUSIVE``
(``DROP TRIGGER``); while waiting for it every app write to that table queues behind it. So each table
is one short transaction under ``lock_timeout``, retried with jittered backoff; the attempts and the
seconds waited are reported per table.

This file installs and checks the sync (locks, lock_timeout retries, DDL, catalog reads, repair);
sync_sql.py generates its SQL from a Plan, without a database. The names of sync_sql are re-exported here.

All identifiers go through psycopg2.sql.Identifier; all values are literals or parameters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import time

from ansible_collections.carbot.migration.plugins.module_utils import db, schemas, sync_sql
# the generated SQL and its names, re-exported: modules and tests use sync.<name>
from ansible_collections.carbot.migration.plugins.module_utils.keys import (  # noqa: F401 pylint: disable=unused-import
    LOCK_BASE, key_hash, key_text as _key_text, lock_id)
from ansible_collections.carbot.migration.plugins.module_utils.sync_sql import (  # noqa: F401 pylint: disable=unused-import
    ALLOW_TRUNCATE_SETTING,
    CHANGE_LOG,
    CHAT_SESSIONS,
    DATA_ERRORS,
    DIRECTIONS,
    EXTRA_DEPENDENCIES,
    FORWARD,
    FUNCTION_PREFIX,
    ORIGIN_SETTING,
    QUARANTINE,
    RAW_TRIGGER,
    REVERSE,
    STATEMENT_TRIGGERS,
    STATUS,
    SYNC_FAILED,
    SYNC_RUN_ID,
    SyncError,
    TRIGGER_NAMES,
    _id,
    _join,
    chat_sessions_function,
    derived_sync_function,
    function_statements,
    keyed_statement_tables,
    keyed_statement_trigger_function,
    raw_trigger_function,
    raw_triggers,
    reverse_trigger_function,
    row_sync_function,
    set_based_tables,
    statement_tables,
    statement_trigger_function,
    trigger_names,
    trigger_tables,
    truncate_function,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through db.HAS_PSYCOPG2
    sql = None

SQL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sql", "sync")


# ---------------------------------------------------------------------------------------- plan
def reverse_views(conn, mapping_schema):
    """The targets whose reverse projection ``rmap_<target>`` exists in the mapping schema."""
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'v' AND c.relname LIKE 'rmap\\_%%'", (mapping_schema,))
        return {r[0][len("rmap_"):] for r in cur.fetchall()}


class Plan(sync_sql.Plan):
    """sync_sql.Plan, read from the catalog: the declaration resolved against the database (columns, key types,
    legacy columns, reverse projections); SyncError names what is missing."""

    def __init__(self, conn, legacy_schema=schemas.LEGACY_SCHEMA, mapping_schema=schemas.MAPPING_SCHEMA,
                 target_schema=schemas.TARGET_SCHEMA, tables=None):
        from ansible_collections.carbot.migration.plugins.module_utils import mapping
        tables = list(tables if tables is not None else mapping.TABLES)
        legacy_cols, view_cols, target_types = {}, {}, {}
        for legacy in mapping.LEGACY_TABLES:
            cols = mapping.column_types(conn, legacy_schema, legacy)
            if not cols:
                raise SyncError("legacy table %s.%s does not exist" % (legacy_schema, legacy))
            legacy_cols[legacy] = dict(cols)
        for t in tables:
            view_cols[t["target"]] = mapping.view_columns(conn, mapping_schema, t["view"])
            if not view_cols[t["target"]]:
                raise SyncError("mapping view %s.%s does not exist: apply the mapping first (roles/schema)"
                                % (mapping_schema, t["view"]))
            target_types[t["target"]] = dict(mapping.column_types(conn, target_schema, t["target"]))
            if not target_types[t["target"]]:
                raise SyncError("target table %s.%s does not exist: apply the carbot_v2 schema first"
                                % (target_schema, t["target"]))
        super(Plan, self).__init__(tables, mapping.LEGACY_TABLES, legacy_cols, view_cols, target_types,
                                   reverse_views(conn, mapping_schema), legacy_schema, mapping_schema, target_schema)


SQL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sql", "sync")


def ensure_change_log(cur, plan):
    """The change log table in the mapping schema (dropped with it at cleanup); the app role has no rights on it,
    the sync functions write it as the migration role (SECURITY DEFINER)."""
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (txid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
                        "target_table text NOT NULL, key text NOT NULL)").format(plan.rel("mapping", CHANGE_LOG)))


def reverse_sql_files():
    from ansible_collections.carbot.migration.plugins.module_utils import mapping
    return mapping.sql_files(SQL_DIR)


def apply_reverse_views(conn, plan, sql_dir=None):
    """Create the reverse projections (sql/sync/*.sql) in the mapping schema: search_path mapping, target.
    The views bind the target tables (same names as the legacy ones: the legacy schema is not on the path)."""
    from ansible_collections.carbot.migration.plugins.module_utils import mapping
    directory = os.path.join(sql_dir, "sync") if sql_dir else SQL_DIR
    if not mapping.sql_files(directory):
        raise SyncError("no reverse projections found in %s: give sql_dir (the collection's sql/ directory)"
                        % directory)
    applied = mapping.apply_sql_files(conn, directory, [plan.mapping, plan.target])
    plan.reverse_views = reverse_views(conn, plan.mapping)
    return applied


# --------------------------------------------------------------------------------------- sequences
def serial_columns(conn, plan):
    """{legacy table: [{column, target, legacy_seq, target_seq}]}: the id sequences on both sides."""
    out = {}
    with conn.cursor() as cur:
        for t in plan.tables:
            if t["kind"] != "row" or len(t["source_key"]) != 1:
                continue
            col = t["source_key"][0]
            cur.execute("SELECT pg_get_serial_sequence(%s, %s), pg_get_serial_sequence(%s, %s)",
                        (_id(plan.legacy, t["source"]).as_string(conn), col,
                         _id(plan.target, t["target"]).as_string(conn), t["target_key"][0]))
            legacy_seq, target_seq = cur.fetchone()
            if legacy_seq and target_seq:
                out.setdefault(t["source"], []).append({"column": col, "target": t["target"],
                                                        "legacy_seq": legacy_seq, "target_seq": target_seq})
    return out


def align_sequences(conn, plan, sequences, towards):
    """Move the sequences of ``towards`` (FORWARD: carbot_v2's, REVERSE: legacy's) past every id on both sides.
    Returns {sequence: new value}."""
    out = {}
    with conn.cursor() as cur:
        for legacy, items in sorted(sequences.items()):
            for s in items:
                seq = s["target_seq"] if towards == FORWARD else s["legacy_seq"]
                cur.execute(sql.SQL(
                    "SELECT setval(%s::regclass, greatest(pg_sequence_last_value(%s::regclass), "
                    "pg_sequence_last_value(%s::regclass), (SELECT max({c}) FROM {lt}), "
                    "(SELECT max({tc}) FROM {tt}), 1))"
                ).format(c=_id(s["column"]), lt=_id(plan.legacy, legacy),
                         tc=_id(plan.by_target[s["target"]]["target_key"][0]), tt=_id(plan.target, s["target"])),
                    (seq, s["legacy_seq"], s["target_seq"]))
                out[seq] = cur.fetchone()[0]
    return out


# ------------------------------------------------------------------------------------- catalog
def existing_triggers(conn, schema, names=None):
    """{table: {trigger name: enabled?}} of carbot sync triggers in ``schema``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal "
            "AND t.tgname LIKE 'carbot\\_sync\\_%%'", (schema,))
        out = {}
        for table, name, enabled in cur.fetchall():
            if names and name not in names:
                continue
            out.setdefault(table, {})[name] = enabled != "D"
        return out


def existing_functions(conn, schema):
    with conn.cursor() as cur:
        cur.execute("SELECT p.oid::regprocedure::text, p.proname FROM pg_proc p JOIN pg_namespace n "
                    "ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname LIKE 'carbot\\_sync\\_%%'", (schema,))
        return cur.fetchall()


def status(conn, legacy_schema=schemas.LEGACY_SCHEMA, mapping_schema=schemas.MAPPING_SCHEMA,
           target_schema=schemas.TARGET_SCHEMA):
    """Which tables carry which triggers, enabled or not: {direction: {table: {row, truncate, enabled}}}."""
    from ansible_collections.carbot.migration.plugins.module_utils import mapping
    out = {}
    raw = {t["target"]: tuple(raw_triggers(t)) for t in mapping.TABLES if t["kind"] == "row"}
    for direction, schema, tables in (
            (FORWARD, legacy_schema, list(mapping.LEGACY_TABLES)),
            (REVERSE, target_schema, [t["target"] for t in mapping.TABLES if t["kind"] == "row"])):
        have = existing_triggers(conn, schema)
        out[direction] = {}
        for table in tables:
            trig = have.get(table, {})
            needed = trigger_names(direction, raw.get(table, ()))
            rec = {"row": needed[0] in trig, "truncate": needed[1] in trig}
            if direction == REVERSE and raw.get(table):
                rec["raw"] = all(n in trig for n in raw[table])
            rec["enabled"] = bool(trig) and all(trig.values()) and all(n in trig for n in needed)
            out[direction][table] = rec
    return out


# ---------------------------------------------------------------------------- install / remove
class LockedStep:
    """Run one short transaction under lock_timeout with jittered retries; count attempts and waiting."""

    def __init__(self, conn_params, lock_timeout_ms=1000, max_attempts=30, base=0.2, cap=5.0, sleep=time.sleep,
                 rng=None):
        self.conn_params = dict(conn_params, lock_timeout_ms=lock_timeout_ms)
        self.lock_timeout_ms = int(lock_timeout_ms)
        self.max_attempts = int(max_attempts)
        self.base, self.cap, self.sleep = base, cap, sleep
        self.rng = rng or random.Random()
        self.conn = None

    def connect(self):
        if self.conn is None or self.conn.closed:
            self.conn = db.connect(self.conn_params, application_name="carbot.migration sync_triggers")
        return self.conn

    def close(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.close()

    def run(self, func):
        """``func(cursor)`` in its own transaction; returns (result, attempts, waited_seconds, errors)."""
        attempts, waited, errors = 0, 0.0, []
        while True:
            attempts += 1
            conn = self.connect()
            t0 = time.monotonic()
            try:
                with conn.cursor() as cur:
                    cur.execute("SET LOCAL lock_timeout = %s", ("%dms" % self.lock_timeout_ms,))
                    result = func(cur)
                conn.commit()
                waited += time.monotonic() - t0
                return result, attempts, round(waited, 3), errors
            except Exception as exc:  # noqa: BLE001 - filtered by db.is_retryable
                waited += time.monotonic() - t0
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the connection is gone; reconnect next time
                    conn.close()
                if not db.is_retryable(exc) or attempts >= self.max_attempts:
                    raise
                errors.append("%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0][:200]))
                delay = self.rng.uniform(0, min(self.cap, self.base * (2 ** attempts)))
                self.sleep(delay)
                waited += delay


def plan_changes(conn, plan, direction, state):
    """What install/remove would do: {"create": [table], "drop": [table], "keep": [table]}."""
    out = {"create": [], "drop": [], "keep": []}
    for schema, table, _fn in trigger_tables(plan, direction):
        have = existing_triggers(conn, schema).get(table, {})
        raw = raw_triggers(plan.by_target[table]) if direction == REVERSE else {}
        complete = all(n in have for n in trigger_names(direction, raw))
        if state == "present":
            out["keep" if complete else "create"].append(table)
        elif have:
            out["drop"].append(table)
    return out


# The schemas an installed sync was generated for, recorded in a COMMENT on the mapping schema (the
# functions live there, the schema outlives re-applying the mapping, and cleanup drops it with them).
RECORD_PREFIX = "carbot.migration sync installed for: "


_MAPPING_TRIGGERS_SQL = (
    "SELECT n.nspname, c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_proc p ON p.oid = t.tgfoid "
    "JOIN pg_namespace pn ON pn.oid = p.pronamespace "
    "WHERE pn.nspname = %s AND NOT t.tgisinternal AND t.tgname LIKE 'carbot\\_sync\\_%%'")


def recorded_schemas(cur, mapping_schema):
    """{"target_schema", "legacy_schema"} the sync in ``mapping_schema`` was installed for, or None."""
    cur.execute("SELECT pg_catalog.obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
                (mapping_schema,))
    row = cur.fetchone()
    if not row or not row[0] or not row[0].startswith(RECORD_PREFIX):
        return None
    try:
        record = json.loads(row[0][len(RECORD_PREFIX):])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def check_schemas(cur, mapping_schema, target_schema, legacy_schema):
    """Raise SyncError when the sync of ``mapping_schema`` is installed for other schemas than these.

    Installed = a trigger of ours calls a function of ``mapping_schema``. What it was installed for: the
    record (COMMENT on the mapping schema); without one (an install older than the record), the schemas
    that carry its triggers and whether its functions name ``target_schema`` at all.
    Returns (record found or None, number of triggers)."""
    wanted = {"target_schema": target_schema, "legacy_schema": legacy_schema}
    cur.execute(_MAPPING_TRIGGERS_SQL, (mapping_schema,))
    triggers = cur.fetchall()
    have = recorded_schemas(cur, mapping_schema)
    if not triggers:
        return have, 0
    found = dict(have or {})
    reverse = sorted({s for s, _t, name in triggers if name in TRIGGER_NAMES[REVERSE]} - {target_schema})
    forward = sorted({s for s, _t, name in triggers if name in TRIGGER_NAMES[FORWARD]} - {legacy_schema})
    if reverse:
        found["target_schema"] = reverse[0]
    if forward:
        found["legacy_schema"] = forward[0]
    if "target_schema" not in found:
        cur.execute("SELECT bool_or(strpos(p.prosrc, %s) > 0) FROM pg_proc p JOIN pg_namespace n "
                    "ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname LIKE 'carbot\\_sync\\_%%'",
                    (_id(target_schema).as_string(cur.connection) + ".", mapping_schema))
        if cur.fetchone()[0] is False:
            found["target_schema"] = "(another schema: its functions never name %s)" % target_schema
    if any(found.get(k, wanted[k]) != wanted[k] for k in wanted):
        raise SyncError(
            "the sync triggers in %s are installed for target schema %s and legacy schema %s (%d triggers); "
            "refusing to regenerate them for target schema %s and legacy schema %s: the legacy app's writes "
            "would go there and %s would go stale. Check carbot_target_schema / carbot_legacy_schema in the "
            "inventory. To move the sync on purpose, remove it first (sync_triggers state=absent "
            "direction=both with the schemas it was installed for), then install it again. Nothing was changed."
            % (mapping_schema, found.get("target_schema", target_schema), found.get("legacy_schema", legacy_schema),
               len(triggers), target_schema, legacy_schema, found.get("target_schema", target_schema)))
    return have, len(triggers)


def claim_schemas(cur, plan, record=True):
    """Refuse to re-point an installed sync (:func:`check_schemas`); with ``record``, record the schemas
    it is installed for. Every install regenerates the functions for ``plan.target``: over the triggers of
    an install for another schema, the legacy app's writes would silently go to the new schema."""
    have, _n = check_schemas(cur, plan.mapping, plan.target, plan.legacy)
    wanted = {"target_schema": plan.target, "legacy_schema": plan.legacy}
    if record and have != wanted:
        cur.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            _id(plan.mapping), sql.Literal(RECORD_PREFIX + json.dumps(wanted, sort_keys=True))))
    return wanted


def install(conn_params, plan, direction, lock_timeout_ms=1000, max_attempts=30, on_table=None, step=None,
            sql_dir=None):
    """Create the functions (no table locks) and the triggers table by table under lock_timeout.

    Returns {"functions": [names], "tables": {table: {"changed", "attempts", "waited_seconds", "errors"}},
    "sequences": {seq: value}}, and for the reverse direction "views": {"attempts", "waited_seconds", "errors"}
    (the reverse projections, replaced under the same lock_timeout and retries).
    """
    step = step or LockedStep(conn_params, lock_timeout_ms, max_attempts)
    result = {"functions": [], "tables": {}, "sequences": {}}
    try:
        step.run(lambda cur: claim_schemas(cur, plan))  # never re-point an installed sync
        if direction == REVERSE:
            # CREATE OR REPLACE VIEW takes an ACCESS EXCLUSIVE lock on each reverse projection, which every write
            # of the new app reads through the reverse trigger once the direction is live (a rerun of an online
            # cutover): under lock_timeout with retries like the triggers, never a wait that blocks the writes.
            _applied, attempts, waited, errors = step.run(
                lambda cur: apply_reverse_views(cur.connection, plan, sql_dir))
            result["views"] = {"attempts": attempts, "waited_seconds": waited, "errors": errors[-3:]}
        sequences, reverse_active = step.run(
            lambda cur: (serial_columns(cur.connection, plan),
                         bool(existing_triggers(cur.connection, plan.target, TRIGGER_NAMES[REVERSE]))))[0]
        statements = function_statements(plan, direction, sequences, reverse_active)
        step.run(lambda cur: ensure_change_log(cur, plan))
        if direction == FORWARD:
            step.run(lambda cur: ensure_quarantine_index(cur, plan))

        def create_functions(cur):
            for _name, stmt in statements:
                cur.execute(stmt)
            return [statement[0] for statement in statements]

        result["functions"], attempts, _w, _e = step.run(create_functions)
        row_name, trunc_name = TRIGGER_NAMES[direction]
        for schema, table, fn in trigger_tables(plan, direction):
            def create(cur, schema=schema, table=table, fn=fn):
                raw = raw_triggers(plan.by_target[table]) if direction == REVERSE else {}
                per_statement = fn.startswith("stmt_")
                cur.execute(
                    "SELECT t.tgname, (t.tgtype & 1) = 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
                    "AND t.tgname = ANY(%s)", (schema, table, list(trigger_names(direction, raw))))
                found = dict(cur.fetchall())
                have = set(found)
                done = False
                if per_statement and found.get(row_name):
                    # an installation from before statement-level sync: its row trigger makes way, in this transaction
                    cur.execute(sql.SQL("DROP TRIGGER {} ON {}").format(_id(row_name), _id(schema, table)))
                    cur.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(plan.fn("trg_" + table)))
                    have.discard(row_name)
                if per_statement:
                    for event, name in STATEMENT_TRIGGERS.items():
                        if name in have:
                            continue
                        transition = {"INSERT": "NEW TABLE AS nt", "UPDATE": "OLD TABLE AS ot NEW TABLE AS nt",
                                      "DELETE": "OLD TABLE AS ot"}[event]
                        cur.execute(sql.SQL("CREATE TRIGGER {} AFTER {} ON {} REFERENCING {} FOR EACH STATEMENT "
                                            "EXECUTE FUNCTION {}()").format(
                            _id(name), sql.SQL(event), _id(schema, table), sql.SQL(transition), plan.fn(fn)))
                        done = True
                    have.add(row_name)
                for name, (key, columns) in raw.items():
                    if name not in have:
                        cur.execute(sql.SQL("CREATE TRIGGER {} BEFORE UPDATE OF {} ON {} FOR EACH ROW "
                                            "EXECUTE FUNCTION {}({})").format(
                            _id(name), _join(_id(c) for c in columns), _id(schema, table), plan.fn("rev_raw"),
                            sql.Literal(key)))
                        done = True
                if row_name not in have:
                    cur.execute(sql.SQL("CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW "
                                        "EXECUTE FUNCTION {}()").format(_id(row_name), _id(schema, table), plan.fn(fn)))
                    done = True
                if trunc_name not in have:
                    cur.execute(sql.SQL("CREATE TRIGGER {} BEFORE TRUNCATE ON {} FOR EACH STATEMENT "
                                        "EXECUTE FUNCTION {}()").format(_id(trunc_name), _id(schema, table),
                                                                        plan.fn("no_truncate")))
                    done = True
                return done

            changed, attempts, waited, errors = step.run(create)
            rec = {"changed": changed, "attempts": attempts, "waited_seconds": waited, "errors": errors[-3:]}
            result["tables"][table] = rec
            if on_table:
                on_table(table, rec)
        if direction == REVERSE:
            # the switch: carbot_v2's identity sequences start past every id the legacy side handed out
            result["sequences"], _a, _w, _e = step.run(lambda cur: align_sequences(cur.connection, plan, sequences,
                                                                                    FORWARD))  # noqa: E127
    finally:
        step.close()
    return result


def remove(conn_params, plan, direction, lock_timeout_ms=1000, max_attempts=30, on_table=None, step=None):
    """Drop the triggers of ``direction`` table by table (ACCESS EXCLUSIVE: under lock_timeout, retried),
    then their functions. Idempotent. Removing the reverse triggers moves the legacy sequences past every
    id carbot_v2 handed out (a rollback's first inserts must not collide)."""
    step = step or LockedStep(conn_params, lock_timeout_ms, max_attempts)
    result = {"functions": [], "tables": {}, "sequences": {}}
    row_name, trunc_name = TRIGGER_NAMES[direction]
    try:
        conn = step.connect()
        for schema, table, _fn in trigger_tables(plan, direction):
            have = existing_triggers(conn, schema).get(table, {})
            conn.commit()
            if not have:
                result["tables"][table] = {"changed": False, "attempts": 0, "waited_seconds": 0.0, "errors": []}
                continue

            def drop(cur, schema=schema, table=table):
                raw = raw_triggers(plan.by_target[table]) if direction == REVERSE else ()
                for name in trigger_names(direction, raw):
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(_id(name), _id(schema, table)))
                return True

            changed, attempts, waited, errors = step.run(drop)
            rec = {"changed": changed, "attempts": attempts, "waited_seconds": waited, "errors": errors[-3:]}
            result["tables"][table] = rec
            if on_table:
                on_table(table, rec)
        if direction == REVERSE:
            sequences = serial_columns(conn, plan)
            conn.commit()
            result["sequences"], _a, _w, _e = step.run(lambda cur: align_sequences(cur.connection, plan, sequences,
                                                                                    REVERSE))  # noqa: E127
        # functions of this direction; the shared truncate guard goes when no trigger uses it any more
        prefixes = ("carbot_sync_rev_",) if direction == REVERSE else ("carbot_sync_",)

        def drop_functions(cur):
            dropped = []
            cur.execute("SELECT p.oid::regprocedure::text, p.proname FROM pg_proc p JOIN pg_namespace n "
                        "ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname LIKE 'carbot\\_sync\\_%%' "
                        "AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)", (plan.mapping,))
            for signature, name in cur.fetchall():
                if direction == FORWARD and name.startswith("carbot_sync_rev_"):
                    continue
                if not name.startswith(prefixes):
                    continue
                cur.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(sql.SQL(signature)))
                dropped.append(name)
            return dropped

        result["functions"], _a, _w, _e = step.run(drop_functions)
    finally:
        step.close()
    return result


def ensure_quarantine_index(cur, plan):
    """A GIN index on migration_quarantine.row_data (jsonb_path_ops): a parent entering the target finds the
    children quarantined because of it (``row_data @> {"<column>": key}``) without reading every quarantined
    row. The table is the migration's own bookkeeping and small; the index belongs in sql/v2 (docs/sync.md)."""
    cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (row_data jsonb_path_ops)").format(
        _id("migration_quarantine_row_data_idx"), plan.rel("target", QUARANTINE)))


# ---------------------------------------------------------------------------------------- resync
def resync_keys(conn, plan, target, keys):
    """Re-sync the given keys of one target table through its sync function (repairs; used by sync_check).
    ``keys``: list of key values (a list/tuple per composite key). Returns the number re-synced."""
    t = plan.by_target[target]
    n = 0
    with conn.cursor() as cur:
        # the repair writes carbot_v2 as the forward trigger does: with the loop setting marked, so that the reverse
        # triggers (after the switch) do not write the legacy rows back from what the repair just wrote
        cur.execute("SELECT set_config(%s, %s, true)", (ORIGIN_SETTING, FORWARD))
        for key in keys:
            values = list(key) if isinstance(key, (list, tuple)) else [key]
            if t["target"] == CHAT_SESSIONS:
                cur.execute(sql.SQL("SELECT workshop_id, client_key FROM {} WHERE id = %s").format(
                    plan.rel("target", CHAT_SESSIONS)), values)
                row = cur.fetchone()
                if row is None:
                    cur.execute(sql.SQL("SELECT workshop_id, client_key FROM {} WHERE _src_key = %s").format(
                        plan.rel("mapping", t["view"])), values)
                    row = cur.fetchone()
                if row:
                    cur.execute(sql.SQL("SELECT {}(%s, %s, NULL, false)").format(plan.fn(CHAT_SESSIONS)), list(row))
            elif t["kind"] == "derived":
                cur.execute(sql.SQL("SELECT {}(%s)").format(plan.fn(target)), values)
            else:
                casts = _join(sql.SQL("%s::{}").format(sql.SQL(ty)) for ty in plan.key_types[target])
                cur.execute(sql.SQL("SELECT {}({}, true)").format(plan.fn(target), casts), values)
            n += 1
        cur.execute("SELECT set_config(%s, '', true)", (ORIGIN_SETTING,))
    return n


def repair(conn, plan, report, truth):
    """Repair what validation found different, from the side that is the truth, and say what was repaired.

    ``truth``: ``legacy`` (before the switch, and for a cutover again after a rollback) re-syncs every named key
    from the legacy schema through the forward functions (:func:`resync_keys`). ``target`` (after the switch: the
    rollback) writes the legacy rows of carbot_v2's differing and extra keys back from carbot_v2 (a no-op update of
    the carbot_v2 row fires its reverse trigger, which writes the legacy row and re-projects it), and re-syncs
    forward what carbot_v2 lacks (a row that is only in the legacy schema is kept, never deleted) and the derived
    tables (they are derived from the legacy rows). A difference in the set-aside legacy values alone (``migration
    metadata only``) is re-derived from the legacy row in both cases.
    Returns ``{table: [{"key", "columns", "kind", "found", "action"}]}``.
    """
    checks = report["checks"]
    out = {}
    tables = dict(checks.get("checksums", {}).get("tables", {}))
    for table, rec in checks.get("changes", {}).get("tables", {}).items():
        if not rec.get("ok", True):
            tables[table] = rec
    for table, rec in checks.get("counts", {}).get("tables", {}).items():
        # a count difference without a checksum to name keys (counts only): re-derive the whole table's named keys
        if not rec.get("ok", True) and table not in tables:
            tables[table] = {}
    for table, rec in tables.items():
        items = []
        cols = rec.get("different_columns", {})
        kinds = rec.get("different_kinds", {})
        for label, keys in (("missing", rec.get("missing_keys", [])), ("extra", rec.get("extra_keys", [])),
                            ("different", rec.get("different_keys", []))):
            for key in keys:
                items.append({"key": key, "columns": cols.get(_key_label(key), []),
                              "kind": kinds.get(_key_label(key), "data" if label == "different" else "row " + label),
                              "found": label})
        for rec_failed in checks.get("counts", {}).get("tables", {}).get(table, {}).get("sync_failed", []):
            items.append({"key": rec_failed["key"], "columns": [], "kind": rec_failed["reason"],
                          "found": "sync failed"})
        if not items:
            continue
        t = plan.by_target[table]
        forward, backward = [], []
        for item in items:
            # only the set-aside legacy values differ (the data agrees): they are a copy of the legacy row, so they
            # are re-derived from it whichever side is the truth (writing the legacy row from carbot_v2 would drop
            # the original legacy value)
            metadata_only = item["kind"] == "migration metadata only"
            if (truth == "target" and t["kind"] == "row" and item["found"] in ("extra", "different")
                    and not metadata_only):
                backward.append(item)
            else:
                forward.append(item)
        if backward:
            touch_target_rows(conn, plan, table, [_key_values(i["key"]) for i in backward])
            for i in backward:
                i["action"] = "legacy row written from carbot_v2"
        if forward:
            keys = [_key_values(i["key"]) for i in forward]
            resync_keys(conn, plan, table, keys)
            for i in forward:
                i["action"] = ("carbot_v2 row re-synced from legacy" if i["found"] != "missing" or truth == "legacy"
                               else "kept: the row is only in the legacy schema; re-synced into carbot_v2")
        out[table] = items
    return out


def touch_target_rows(conn, plan, table, keys):
    """A no-op UPDATE of carbot_v2 rows by key: their reverse triggers write the legacy rows again (a repair
    after the switch). The loop setting is cleared for it, so the reverse triggers run."""
    t = plan.by_target[table]
    tkey = t["target_key"]
    types = [plan.target_types[table][c] for c in tkey]
    with conn.cursor() as cur:
        cur.execute("SELECT set_config(%s, '', true)", (ORIGIN_SETTING,))
        stmt = sql.SQL("UPDATE {rel} t SET {k0} = t.{k0} WHERE {m}").format(
            rel=plan.rel("target", table), k0=_id(tkey[0]),
            m=_join([sql.SQL("t.{} = %s::{}").format(_id(c), sql.SQL(ty)) for c, ty in zip(tkey, types)], " AND "))
        for key in keys:
            cur.execute(stmt, list(key))


def _key_label(key):
    return key if isinstance(key, str) else "/".join(str(k) for k in key)


def _key_values(key):
    """A key as validation names it (a value, or a list for composite keys) or as the quarantine stores it
    (``source_pk``: a text, ``{a,b}`` for composite keys) -> the list of its values."""
    if isinstance(key, (list, tuple)):
        return list(key)
    if key.startswith("{") and key.endswith("}"):
        return [v.strip('"') for v in key[1:-1].split(",")]
    return [key]


def prune_change_log(conn, plan, snapshot):
    """Delete the logged changes a full validation has covered: those of transactions visible in its snapshot
    (``pg_current_snapshot()`` of the validation's REPEATABLE READ transaction). Returns the rows deleted."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (_id(plan.mapping, CHANGE_LOG).as_string(conn),))
        if cur.fetchone()[0] is None:
            return 0
        cur.execute(sql.SQL("DELETE FROM {} WHERE pg_visible_in_snapshot(txid, %s::pg_snapshot)").format(
            plan.rel("mapping", CHANGE_LOG)), (snapshot,))
        return cur.rowcount
