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
    One trigger function per legacy table, ``carbot_sync_trg_<table>()``, calls those functions for
    OLD and NEW keys; a ``BEFORE TRUNCATE`` trigger raises.
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

All identifiers go through psycopg2.sql.Identifier; all values are literals or parameters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import time

from ansible_collections.carbot.migration.plugins.module_utils import db
from ansible_collections.carbot.migration.plugins.module_utils.errors import PreconditionError
from ansible_collections.carbot.migration.plugins.module_utils.keys import (  # noqa: F401 pylint: disable=unused-import
    LOCK_BASE, key_hash, key_text as _key_text, lock_id)
from ansible_collections.carbot.migration.plugins.module_utils import schemas

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through db.HAS_PSYCOPG2
    sql = None

FORWARD, REVERSE = "forward", "reverse"
DIRECTIONS = (FORWARD, REVERSE)
ORIGIN_SETTING = "carbot.sync_origin"
ALLOW_TRUNCATE_SETTING = "carbot.sync_allow_truncate"
TRIGGER_NAMES = {
    FORWARD: ("carbot_sync_fwd", "carbot_sync_fwd_truncate"),
    REVERSE: ("carbot_sync_rev", "carbot_sync_rev_truncate"),
}
# BEFORE UPDATE OF <columns> on carbot_v2 tables with set-aside values (``set_aside`` in the declaration), one per
# set-aside key, reverse direction: a column the application writes (even to the value it had: clearing a field that
# shows NULL because its legacy value was set aside) drops that key's original from legacy_raw.
RAW_TRIGGER = "carbot_sync_rev_raw"
# Statement-level forward triggers (leaf tables, Plan.statement_tables): one per event, transition tables need that.
STATEMENT_TRIGGERS = {"INSERT": "carbot_sync_fwd", "UPDATE": "carbot_sync_fwd_upd", "DELETE": "carbot_sync_fwd_del"}
# Errors of a sync that come from the data (a value no rule maps, a constraint the mapped row breaks): the
# trigger quarantines the row ("sync failed: ...") instead of failing the application's write. Lock errors,
# deadlocks and serialization failures are not among them: they abort the write as always (the app retries).
DATA_ERRORS = "data_exception OR integrity_constraint_violation"
SYNC_FAILED = "sync failed: "
# The change log (mapping schema): every key a sync function writes, with its transaction id. The final sync check
# inside the write freeze compares only the keys logged since the full validation that ran before it (O(changes),
# not O(rows)); sync_check prunes what a clean full validation has covered.
CHANGE_LOG = "carbot_sync_changes"

FUNCTION_PREFIX = "carbot_sync_"
QUARANTINE = "migration_quarantine"
STATUS = "migration_status"
SYNC_RUN_ID = "sync"
SQL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sql", "sync")

# Dependencies that the declaration cannot express yet (docs/sync.md, "What the declaration lacks"):
# a write to a legacy table that changes *other* rows' projections although nothing flips between
# migrated and quarantined. Each entry: legacy table -> [(target, SQL selecting the affected legacy keys of
# the target's source, with {legacy} = legacy schema, {mapping} = mapping schema; OLD/NEW are the trigger's)].
EXTRA_DEPENDENCIES = {
    # organizations are keyed by the owner's email: a user's email change moves the workshops it owns;
    # users.email is unique only case-sensitively: the earliest user of a normalised email migrates.
    "users": [
        ("workshops", "SELECT w.id FROM {legacy}.workshops w WHERE w.owner_id = OLD.id OR w.owner_id = NEW.id"),
        ("users", "SELECT u.id FROM {legacy}.users u WHERE {mapping}.normalise_email(u.email) IN "
                  "({mapping}.normalise_email(OLD.email), {mapping}.normalise_email(NEW.email)) "
                  "AND u.id IS DISTINCT FROM OLD.id AND u.id IS DISTINCT FROM NEW.id"),
    ],
    # a slug 'x-v2' loses its suffix only while no workshop has the slug 'x'
    "workshops": [
        ("workshops", "SELECT w.id FROM {legacy}.workshops w WHERE w.slug IN (OLD.slug || '-v2', NEW.slug || '-v2')"),
    ],
}

# Derived tables keyed by a natural key of their source rows: chat_sessions by the legacy
# conversation (workshop_id, kunde_id). They get a hand-written sync function (an aggregate view cannot
# be evaluated for one key cheaply: the view's key is a hash of the grouping columns).
CHAT_SESSIONS = "chat_sessions"


class SyncError(PreconditionError):
    """An operator-facing reason why the sync cannot be installed or checked."""


def _id(*names):
    return sql.Identifier(*names)


def _join(parts, sep=", "):
    return sql.SQL(sep).join(parts)


# ---------------------------------------------------------------------------------------- plan
class Plan:
    """The declaration resolved against the catalog: columns, key types, legacy columns."""

    def __init__(self, conn, legacy_schema=schemas.LEGACY_SCHEMA, mapping_schema=schemas.MAPPING_SCHEMA,
                 target_schema=schemas.TARGET_SCHEMA, tables=None):
        from ansible_collections.carbot.migration.plugins.module_utils import mapping
        self.legacy, self.mapping, self.target = legacy_schema, mapping_schema, target_schema
        self.tables = list(tables if tables is not None else mapping.TABLES)
        self.by_target = {t["target"]: t for t in self.tables}
        self.legacy_tables = list(mapping.LEGACY_TABLES)
        self.columns, self.key_types, self.legacy_cols, self.target_types = {}, {}, {}, {}
        for legacy in self.legacy_tables:
            cols = mapping.column_types(conn, legacy_schema, legacy)
            if not cols:
                raise SyncError("legacy table %s.%s does not exist" % (legacy_schema, legacy))
            self.legacy_cols[legacy] = dict(cols)
        for t in self.tables:
            view_cols = mapping.view_columns(conn, mapping_schema, t["view"])
            if not view_cols:
                raise SyncError("mapping view %s.%s does not exist: apply the mapping first (roles/schema)"
                                % (mapping_schema, t["view"]))
            target = dict(mapping.column_types(conn, target_schema, t["target"]))
            if not target:
                raise SyncError("target table %s.%s does not exist: apply the carbot_v2 schema first"
                                % (target_schema, t["target"]))
            self.target_types[t["target"]] = target
            self.columns[t["target"]] = [c for c in view_cols if c in target]
            if t["kind"] == "row":
                self.key_types[t["target"]] = [self.legacy_cols[t["source"]][k] for k in t["source_key"]]
            else:
                self.key_types[t["target"]] = [target[k] for k in t["target_key"]]
        self.reverse_views = {}
        with conn.cursor() as cur:
            cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relkind = 'v' AND c.relname LIKE 'rmap\\_%%'", (mapping_schema,))
            self.reverse_views = {r[0][len("rmap_"):] for r in cur.fetchall()}

    # helpers ---------------------------------------------------------------------------
    def lock_id(self, target):
        return lock_id(self.tables, target)

    def rel(self, schema_kind, name):
        return _id({"legacy": self.legacy, "mapping": self.mapping, "target": self.target}[schema_kind], name)

    def fn(self, name):
        return _id(self.mapping, FUNCTION_PREFIX + name)

    def children(self, target):
        """[(child declaration, reference)] of every reference whose parent is ``target``."""
        out = []
        for t in self.tables:
            for ref in t["references"]:
                if ref["parent"] == target:
                    out.append((t, ref))
        return out

    def row_targets_of(self, legacy):
        return [t for t in self.tables if t["kind"] == "row" and t["source"] == legacy]

    def forward_tables(self):
        return list(self.legacy_tables)

    def reverse_tables(self):
        """Target tables with a legacy twin (row tables; derived ones have none). Each needs its reverse
        projection rmap_<target> (sql/sync) to be installed; removal does not (re-applying the mapping drops
        every view of the mapping schema, and the triggers must still go)."""
        return [t["target"] for t in self.tables if t["kind"] == "row"]

    def statement_tables(self):
        """Legacy tables synced per statement, set-based (see :func:`statement_tables`)."""
        return statement_tables(self.tables, self.legacy_tables)

    def raw_tables(self):
        """Target tables whose rows keep set-aside legacy values (``set_aside``): they get the raw trigger."""
        return [t["target"] for t in self.tables if t["kind"] == "row" and t.get("set_aside")]


def statement_tables(tables, legacy_tables):
    """Legacy tables synced per statement, set-based (:func:`statement_trigger_function`): the one target each
    drives is a ``row`` table without children in the declaration, without derived parents, without extra
    dependencies, and no other projection reads the legacy table. A multi-row write then costs one lock, view
    read, upsert and quarantine statement for all its rows instead of one function call per row."""
    out = []
    for legacy in legacy_tables:
        targets = [t for t in tables if t["kind"] == "row" and t["source"] == legacy]
        if len(targets) != 1 or legacy in EXTRA_DEPENDENCIES or targets[0]["target"] == "chat_messages":
            continue
        t = targets[0]
        by_target = {x["target"]: x for x in tables}
        if any(ref["parent"] == t["target"] for x in tables for ref in x["references"]):
            continue  # it has children
        if any(by_target[r["parent"]]["kind"] == "derived" for r in t["references"]):
            continue
        if any(legacy in x["reads"] for x in tables if x["source"] != legacy):
            continue
        out.append(legacy)
    return out


def _params(n):
    return [sql.Identifier("p_k%d" % (i + 1)) for i in range(n)]


def _match(alias, cols, exprs):
    return _join([sql.SQL("{}.{} = {}").format(_id(alias), _id(c), e) for c, e in zip(cols, exprs)], " AND ")


def _from_source_pk(types, var):
    """Key expressions from a quarantine source_pk text held in ``var``."""
    if len(types) == 1:
        return [sql.SQL("{}::{}").format(var, sql.SQL(types[0]))]
    return [sql.SQL("({}::text[])[{}]::{}").format(var, sql.Literal(i + 1), sql.SQL(ty)) for i, ty in enumerate(types)]


# ------------------------------------------------------------------------------ forward: row sync
def _call_sync(plan, child, key_exprs, deep):
    return sql.SQL("PERFORM {}({}, {});").format(plan.fn(child["target"]), _join(key_exprs), sql.SQL(deep))


def _children_leaving(plan, t, keys):
    """Statements run before a row leaves the target: its children in the target are re-synced."""
    out = []
    for child, ref in reversed(plan.children(t["target"])):
        if child["target"] == CHAT_SESSIONS:
            out.append(sql.SQL(
                "FOR v_ck IN SELECT c.workshop_id, c.client_key FROM {rel} c WHERE c.{col} = {k} LOOP "
                "PERFORM {fn}(v_ck.workshop_id, v_ck.client_key, NULL, false); END LOOP;").format(
                rel=plan.rel("target", child["target"]), col=_id(ref["column"]), k=keys[0], fn=plan.fn(CHAT_SESSIONS)))
            continue
        if child["kind"] != "row":
            continue
        cks = [sql.SQL("v_ck.{}").format(_id(c)) for c in child["target_key"]]
        out.append(sql.SQL("FOR v_ck IN SELECT {keys} FROM {rel} c WHERE c.{col} = {k} LOOP {call} END LOOP;").format(
            keys=_join(sql.SQL("c.{}").format(_id(c)) for c in child["target_key"]),
            rel=plan.rel("target", child["target"]), col=_id(ref["column"]), k=keys[0],
            call=_call_sync(plan, child, cks, "true")))
    return out


def _children_entering(plan, t, keys):
    """(always, deep_only) statements run after a row entered the target."""
    always, deep = [], []
    for child, ref in plan.children(t["target"]):
        if child["target"] == CHAT_SESSIONS:
            deep.append(sql.SQL(
                "FOR v_ck IN SELECT DISTINCT s.workshop_id, s.kunde_id FROM {src} s WHERE s.workshop_id = {k} "
                "AND s.kunde_id IS NOT NULL LOOP PERFORM {fn}(v_ck.workshop_id, v_ck.kunde_id, NULL, false); "
                "END LOOP;").format(src=plan.rel("legacy", child["source"]), k=keys[0], fn=plan.fn(CHAT_SESSIONS)))
            continue
        if child["kind"] != "row":
            continue
        legacy_col = ref["column"]
        if legacy_col not in plan.legacy_cols[child["source"]]:
            # the declaration does not say which legacy column holds the reference (docs/sync.md)
            continue
        if ref["required"]:
            keys_q = _from_source_pk(plan.key_types[child["target"]], sql.SQL("v_ck.source_pk"))
            always.append(sql.SQL(
                "FOR v_ck IN SELECT q.source_pk FROM {q} q WHERE q.target_table = {name} "
                "AND q.row_data @> jsonb_build_object({col}, {k}) LOOP {call} END LOOP;").format(
                q=plan.rel("target", QUARANTINE), name=sql.Literal(child["target"]), col=sql.Literal(legacy_col),
                k=keys[0], call=_call_sync(plan, child, keys_q, "true")))
        else:
            cks = [sql.SQL("v_ck.{}").format(_id(c)) for c in child["source_key"]]
            deep.append(sql.SQL(
                "FOR v_ck IN SELECT {keys} FROM {src} s WHERE s.{col} = {k} LOOP {call} END LOOP;").format(
                keys=_join(sql.SQL("s.{}").format(_id(c)) for c in child["source_key"]),
                src=plan.rel("legacy", child["source"]), col=_id(legacy_col), k=keys[0],
                call=_call_sync(plan, child, cks, "true")))
    return always, deep


def row_sync_function(plan, t):
    """CREATE FUNCTION carbot_sync_<target>(keys.., deep boolean) for a ``row`` table."""
    name = t["target"]
    types = plan.key_types[name]
    keys = _params(len(types))
    cols = plan.columns[name]
    tkey, vkey, skey = t["target_key"], t["view_key"], t["source_key"]
    derived_parents = [ref for ref in t["references"]
                       if plan.by_target[ref["parent"]]["kind"] == "derived" and ref["parent"] != CHAT_SESSIONS]
    declare = [sql.SQL("v_r record;"), sql.SQL("v_have boolean;"), sql.SQL("v_was boolean;"),
               sql.SQL("v_ck record;")]
    for i, ref in enumerate(derived_parents):
        ptype = plan.key_types[ref["parent"]][0]
        declare.append(sql.SQL("v_old_{i} {ty}; v_new_{i} {ty};").format(i=sql.SQL(str(i)), ty=sql.SQL(ptype)))
    body = [
        sql.SQL("PERFORM pg_advisory_xact_lock({}, {});").format(sql.Literal(plan.lock_id(name)), key_hash(keys)),
        _log_change(plan, name, _key_text(keys)),
        sql.SQL("SELECT {cols}, v._quarantine_reason INTO v_r FROM {view} v WHERE {match};").format(
            cols=_join(sql.SQL("v.{}").format(_id(c)) for c in cols), view=plan.rel("mapping", t["view"]),
            match=_match("v", vkey, keys)),
        sql.SQL("v_have := FOUND;"),
    ]
    old_cols = [sql.SQL("t.{}").format(_id(ref["column"])) for ref in derived_parents]
    old_vars = [sql.SQL("v_old_%d" % i) for i in range(len(derived_parents))]
    body.append(sql.SQL("SELECT true{oc} INTO v_was{ov} FROM {rel} t WHERE {match};").format(
        oc=sql.SQL("").join(sql.SQL(", ") + c for c in old_cols),
        ov=sql.SQL("").join(sql.SQL(", ") + v for v in old_vars),
        rel=plan.rel("target", name), match=_match("t", tkey, keys)))
    body.append(sql.SQL("v_was := coalesce(v_was, false);"))
    # derived parents (organizations): the old one first if it still exists (a slug may move), the new one
    # before the row (foreign key), the old one again after it (deleted once nothing refers to it)
    pre, post = [], []
    for i, ref in enumerate(derived_parents):
        fn = plan.fn(ref["parent"])
        pre.append(sql.SQL(
            "v_new_{i} := v_r.{col}; "
            "IF v_old_{i} IS NOT NULL AND v_old_{i} IS DISTINCT FROM v_new_{i} THEN PERFORM {fn}(v_old_{i}); "
            "END IF; IF v_new_{i} IS NOT NULL THEN PERFORM {fn}(v_new_{i}); END IF;").format(
            i=sql.SQL(str(i)), col=_id(ref["column"]), fn=fn))
        post.append(sql.SQL("IF v_old_{i} IS NOT NULL AND v_old_{i} IS DISTINCT FROM v_new_{i} THEN "
                            "PERFORM {fn}(v_old_{i}); END IF;").format(i=sql.SQL(str(i)), fn=fn))
    non_key = [c for c in cols if c not in tkey]
    # no new row version when the projection did not change (the reverse sync re-projects every row the new app
    # writes: most of those are already what the forward mapping gives)
    conflict = _on_conflict("t", non_key)
    q = plan.rel("target", QUARANTINE)
    qmatch = sql.SQL("target_table = {} AND source_pk = {}").format(sql.Literal(name), _key_text(keys))
    leaving = _children_leaving(plan, t, keys)
    always, deep = _children_entering(plan, t, keys)
    body.append(sql.SQL("IF v_have AND v_r._quarantine_reason IS NULL THEN"))
    body.extend(pre)
    body.append(sql.SQL("INSERT INTO {rel} AS t ({cols}) VALUES ({vals}) ON CONFLICT ({tk}) {conflict};").format(
        rel=plan.rel("target", name), cols=_join(_id(c) for c in cols),
        vals=_join(sql.SQL("v_r.{}").format(_id(c)) for c in cols), tk=_join(_id(c) for c in tkey), conflict=conflict))
    # also when the row was in the target: a "sync failed" quarantine row of it is over now
    body.append(sql.SQL("DELETE FROM {q} WHERE {m};").format(q=q, m=qmatch))
    body.append(sql.SQL("IF NOT v_was THEN"))
    body.extend(always)
    if deep:
        body.append(sql.SQL("IF deep THEN"))
        body.extend(deep)
        body.append(sql.SQL("END IF;"))
    body.append(sql.SQL("END IF;"))
    body.extend(post)
    body.append(sql.SQL("ELSE"))
    if leaving:
        body.append(sql.SQL("IF v_was THEN"))
        # FOR UPDATE first: it waits for a copy batch that holds this row FOR KEY SHARE (its rows point
        # here), so the children loop below, on a fresh snapshot, sees the rows that batch inserted.
        body.append(sql.SQL("PERFORM 1 FROM {rel} t WHERE {m} FOR UPDATE;").format(
            rel=plan.rel("target", name), m=_match("t", tkey, keys)))
        body.extend(leaving)
        body.append(sql.SQL("DELETE FROM {rel} t WHERE {m};").format(rel=plan.rel("target", name),
                                                                       m=_match("t", tkey, keys)))  # noqa: E127
        body.append(sql.SQL("END IF;"))
    else:
        body.append(sql.SQL("IF v_was THEN DELETE FROM {rel} t WHERE {m}; END IF;").format(
            rel=plan.rel("target", name), m=_match("t", tkey, keys)))
    body.extend(post)
    body.append(sql.SQL(
        "IF v_have THEN INSERT INTO {q} (target_table, source_table, source_pk, reason, row_data, run_id) "
        "SELECT {name}, {src}, {kt}, v_r._quarantine_reason, to_jsonb(s), {run} FROM {srel} s WHERE {sm} "
        "ON CONFLICT (target_table, source_pk) DO UPDATE SET reason = EXCLUDED.reason, row_data = EXCLUDED.row_data, "
        "run_id = EXCLUDED.run_id, quarantined_at = now(); "
        "ELSE DELETE FROM {q} WHERE {qm}; END IF;").format(
        q=q, name=sql.Literal(name), src=sql.Literal(t["source"]), kt=_key_text(keys), run=sql.Literal(SYNC_RUN_ID),
        srel=plan.rel("legacy", t["source"]), sm=_match("s", skey, keys), qm=qmatch))
    body.append(sql.SQL("END IF;"))
    args = _join(sql.SQL("{} {}").format(k, sql.SQL(ty)) for k, ty in zip(keys, types))
    return _function(plan.fn(name), sql.SQL("{}, deep boolean").format(args), sql.SQL("void"), declare, body)


def _log_change(plan, target, key_text):
    """The statement that logs one key a sync function writes (see CHANGE_LOG)."""
    return sql.SQL("INSERT INTO {log} (target_table, key) VALUES ({t}, {k});").format(
        log=plan.rel("mapping", CHANGE_LOG), t=sql.Literal(target), k=key_text)


def ensure_change_log(cur, plan):
    """The change log table in the mapping schema (dropped with it at cleanup); the app role has no rights on it,
    the sync functions write it as the migration role (SECURITY DEFINER)."""
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (txid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
                        "target_table text NOT NULL, key text NOT NULL)").format(plan.rel("mapping", CHANGE_LOG)))


def _on_conflict(alias, non_key, only_changed=True):
    """``DO UPDATE SET <non-key> = EXCLUDED.<non-key> WHERE <changed>``: no new row version when nothing changed
    (``DO NOTHING`` for a table that is all key). ``only_changed=False``: always a new row version (the reverse
    sync: its legacy write must fire the forward trigger, see :func:`reverse_trigger_function`)."""
    if not non_key:
        return sql.SQL("DO NOTHING")
    if not only_changed:
        return sql.SQL("DO UPDATE SET {}").format(
            _join(sql.SQL("{c} = EXCLUDED.{c}").format(c=_id(c)) for c in non_key))
    return sql.SQL("DO UPDATE SET {set} WHERE ({old}) IS DISTINCT FROM ({new})").format(
        set=_join(sql.SQL("{c} = EXCLUDED.{c}").format(c=_id(c)) for c in non_key),
        old=_join(sql.SQL("{}.{}").format(_id(alias), _id(c)) for c in non_key),
        new=_join(sql.SQL("EXCLUDED.{}").format(_id(c)) for c in non_key))


def _function(fn, args, returns, declare, body):
    # force_generic_plan: the statements read nested projection views by primary key; a custom plan would
    # be planned on every call (the planner keeps preferring it), ~2x the cost of the whole sync.
    # SECURITY DEFINER: the triggers fire in the application's own transactions, as the application's
    # role, which has no rights on the mapping and target schemas (nor should it); the functions run
    # as the migration role that created them. Every name in them is schema-qualified, and the fixed
    # search_path keeps a caller's search_path from redirecting anything (CVE-2018-1058 style).
    return sql.SQL("CREATE OR REPLACE FUNCTION {fn}({args}) RETURNS {ret} LANGUAGE plpgsql SECURITY DEFINER "
                   "SET search_path = pg_catalog, pg_temp "
                   "SET plan_cache_mode = force_generic_plan AS $carbot_sync$\n"
                   "DECLARE\n{decl}\nBEGIN\n{body}\nEND\n$carbot_sync$").format(
        fn=fn, args=args, ret=returns, decl=_join(declare, "\n"), body=_join(body, "\n"))


def derived_sync_function(plan, t):
    """carbot_sync_<derived>(key): upsert from the view by its key, or delete once nothing refers to it."""
    name = t["target"]
    types = plan.key_types[name]
    keys = _params(len(types))
    cols = plan.columns[name]
    non_key = [c for c in cols if c not in t["target_key"]]
    refs = list(plan.children(name))
    unreferenced = sql.SQL("").join(
        sql.SQL(" AND NOT EXISTS (SELECT 1 FROM {rel} c WHERE c.{col} = {k})").format(
            rel=plan.rel("target", child["target"]), col=_id(ref["column"]), k=keys[0]) for child, ref in refs)
    body = [
        sql.SQL("PERFORM pg_advisory_xact_lock({}, {});").format(sql.Literal(plan.lock_id(name)), key_hash(keys)),
        _log_change(plan, name, _key_text(keys)),
        sql.SQL("SELECT {cols} INTO v_r FROM {view} v WHERE {m} AND v._quarantine_reason IS NULL;").format(
            cols=_join(sql.SQL("v.{}").format(_id(c)) for c in cols), view=plan.rel("mapping", t["view"]),
            m=_match("v", t["view_key"], keys)),
        # FOR UPDATE before the delete: it waits for a copy batch whose rows point here (FOR KEY SHARE), and
        # the DELETE's fresh snapshot then sees them (NOT EXISTS below).
        sql.SQL("IF FOUND THEN INSERT INTO {rel} ({cols}) VALUES ({vals}) ON CONFLICT ({tk}) DO UPDATE SET {set}; "
                "ELSE PERFORM 1 FROM {rel} t WHERE {tm} FOR UPDATE; DELETE FROM {rel} t WHERE {tm}{unref}; "
                "END IF;").format(
            rel=plan.rel("target", name), cols=_join(_id(c) for c in cols),
            vals=_join(sql.SQL("v_r.{}").format(_id(c)) for c in cols), tk=_join(_id(c) for c in t["target_key"]),
            set=_join(sql.SQL("{c} = EXCLUDED.{c}").format(c=_id(c)) for c in non_key),
            tm=_match("t", t["target_key"], keys), unref=unreferenced),
    ]
    args = _join(sql.SQL("{} {}").format(k, sql.SQL(ty)) for k, ty in zip(keys, types))
    return _function(plan.fn(name), args, sql.SQL("void"), [sql.SQL("v_r record;")], body)


def chat_sessions_function(plan):
    """carbot_sync_chat_sessions(workshop_id, kunde_id, at, incremental).

    Incremental (a message inserted): widen started_at/last_message_at of the session if it exists, or
    create it from this message alone once the copy of chat_sessions is done (then a missing session is
    a new conversation). Otherwise the exact aggregate of the conversation from the view (a scan of the
    conversation's legacy messages: deletes and moves of messages only).
    """
    t = plan.by_target[CHAT_SESSIONS]
    rel = plan.rel("target", CHAT_SESSIONS)
    cols = plan.columns[CHAT_SESSIONS]
    non_key = [c for c in cols if c not in t["target_key"]]
    body = [
        sql.SQL("IF p_w IS NULL OR p_k IS NULL THEN RETURN; END IF;"),
        sql.SQL("v_id := {}(p_w, p_k);").format(_id(plan.mapping, "chat_session_uuid")),
        sql.SQL("PERFORM pg_advisory_xact_lock({}, hashtext(v_id::text));").format(
            sql.Literal(plan.lock_id(CHAT_SESSIONS))),
        _log_change(plan, CHAT_SESSIONS, sql.SQL("v_id::text")),
        sql.SQL(
            "IF p_incremental THEN "
            "UPDATE {rel} t SET started_at = LEAST(t.started_at, p_at),"
            " last_message_at = GREATEST(t.last_message_at, p_at) WHERE t.id = v_id; "
            "IF FOUND THEN RETURN; END IF; "
            "IF EXISTS (SELECT 1 FROM {status} s WHERE s.target_table = {name} AND s.state::text = 'copied') "
            "AND EXISTS (SELECT 1 FROM {mw} w WHERE w._src_key = p_w AND w._quarantine_reason IS NULL) THEN "
            "INSERT INTO {rel} (id, workshop_id, client_key, started_at, last_message_at)"
            " VALUES (v_id, p_w, p_k, p_at, p_at) ON CONFLICT (id) DO UPDATE"
            " SET started_at = LEAST({rel}.started_at, EXCLUDED.started_at),"
            " last_message_at = GREATEST({rel}.last_message_at, EXCLUDED.last_message_at); "
            "RETURN; END IF; END IF;").format(
            rel=rel, status=plan.rel("target", STATUS), name=sql.Literal(CHAT_SESSIONS),
            mw=plan.rel("mapping", "map_workshops")),
        sql.SQL("SELECT {cols} INTO v_r FROM {view} v WHERE v.workshop_id = p_w AND v.client_key = p_k "
                "AND v._quarantine_reason IS NULL;").format(
            cols=_join(sql.SQL("v.{}").format(_id(c)) for c in cols), view=plan.rel("mapping", t["view"])),
        sql.SQL("IF FOUND THEN INSERT INTO {rel} ({cols}) VALUES ({vals}) ON CONFLICT (id) DO UPDATE SET {set}; "
                "ELSE DELETE FROM {rel} t WHERE t.id = v_id; END IF;").format(
            rel=rel, cols=_join(_id(c) for c in cols), vals=_join(sql.SQL("v_r.{}").format(_id(c)) for c in cols),
            set=_join(sql.SQL("{c} = EXCLUDED.{c}").format(c=_id(c)) for c in non_key)),
    ]
    return _function(plan.fn(CHAT_SESSIONS), sql.SQL("p_w uuid, p_k text, p_at timestamptz, p_incremental boolean"),
                     sql.SQL("void"), [sql.SQL("v_r record;"), sql.SQL("v_id uuid;")], body)


def _guard(plan, mine, other):
    return [
        sql.SQL("IF current_setting({s}, true) = {o} THEN RETURN NULL; END IF;").format(
            s=sql.Literal(ORIGIN_SETTING), o=sql.Literal(other)),
        sql.SQL("PERFORM set_config({s}, {m}, true);").format(s=sql.Literal(ORIGIN_SETTING), m=sql.Literal(mine)),
    ]


def _unguard():
    return [sql.SQL("PERFORM set_config({}, '', true);").format(sql.Literal(ORIGIN_SETTING)), sql.SQL("RETURN NULL;")]


def _serial_bump(plan, rel, column, seq_text, row="NEW"):
    """Keep a sequence ahead of an id written by the other side (ids never collide). The sequence's name
    (from pg_get_serial_sequence, already quoted by the server) is a literal cast to regclass."""
    return sql.SQL(
        "IF {row}.{col} > coalesce(pg_sequence_last_value({seq}::regclass), 0) THEN "
        "PERFORM setval({seq}::regclass, {row}.{col}); END IF;").format(
        row=sql.SQL(row), col=_id(column), seq=sql.Literal(seq_text))


def forward_trigger_function(plan, legacy, sequences=None, reverse_active=False):
    """carbot_sync_trg_<legacy>(): the row trigger of one legacy table.

    The loop marker and the sequence bumps are only needed while the reverse direction is installed (its
    installation re-creates these functions with them), so that the forward-only phase pays for neither.
    """
    body = _guard(plan, FORWARD, REVERSE) if reverse_active else []
    targets = plan.row_targets_of(legacy)
    is_chat = any(t["target"] == "chat_messages" for t in targets) and CHAT_SESSIONS in plan.by_target
    if is_chat:
        body.append(sql.SQL(
            "IF TG_OP = 'INSERT' THEN PERFORM {fn}(NEW.workshop_id, NEW.kunde_id, NEW.created_at, true); "
            "ELSIF TG_OP = 'UPDATE' AND (NEW.workshop_id, NEW.kunde_id, NEW.created_at) IS DISTINCT FROM "
            "(OLD.workshop_id, OLD.kunde_id, OLD.created_at) THEN "
            "PERFORM {fn}(NEW.workshop_id, NEW.kunde_id, NULL, false); END IF;").format(fn=plan.fn(CHAT_SESSIONS)))
    for t in targets:
        old = [sql.SQL("OLD.{}").format(_id(c)) for c in t["source_key"]]
        new = [sql.SQL("NEW.{}").format(_id(c)) for c in t["source_key"]]
        body.append(sql.SQL(
            "IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ({o}) IS DISTINCT FROM ({n})) THEN {call_old} END IF;"
        ).format(o=_join(old), n=_join(new), call_old=_call_sync(plan, t, old, "true")))
        body.append(sql.SQL("IF TG_OP <> 'DELETE' THEN PERFORM {fn}({n}, TG_OP = 'UPDATE'); END IF;").format(
            fn=plan.fn(t["target"]), n=_join(new)))
    if is_chat:
        body.append(sql.SQL(
            "IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (NEW.workshop_id, NEW.kunde_id) IS DISTINCT FROM "
            "(OLD.workshop_id, OLD.kunde_id)) THEN PERFORM {fn}(OLD.workshop_id, OLD.kunde_id, NULL, false); "
            "END IF;").format(fn=plan.fn(CHAT_SESSIONS)))
    for target, query in EXTRA_DEPENDENCIES.get(legacy, []):
        if target not in plan.by_target:
            continue
        child = plan.by_target[target]
        body.append(sql.SQL("FOR v_ck IN {q} LOOP {call} END LOOP;").format(
            q=sql.SQL(query).format(legacy=_id(plan.legacy), mapping=_id(plan.mapping)),
            call=_call_sync(plan, child, [sql.SQL("v_ck.{}").format(_id(c)) for c in child["source_key"]], "true")))
    for seq in (sequences or {}).get(legacy, []) if reverse_active else []:
        body.append(sql.SQL("IF TG_OP = 'INSERT' THEN {} END IF;").format(
            _serial_bump(plan, None, seq["column"], seq["target_seq"])))
    body.extend(_unguard() if reverse_active else [sql.SQL("RETURN NULL;")])
    return _function(plan.fn("trg_" + legacy), sql.SQL(""), sql.SQL("trigger"),
                     [sql.SQL("v_ck record;"), sql.SQL("v_msg text;")], _quarantine_on_data_error(plan, legacy, body))


def statement_trigger_function(plan, legacy, sequences=None, reverse_active=False):
    """carbot_sync_stmt_<legacy>(): the statement-level trigger of a leaf legacy table (Plan.statement_tables).

    The rows of the statement (transition tables ``nt``/``ot``) are synced in one set-based step per target, with
    the same guarantees as the per-row function: the advisory lock of every key first (in key order: two
    statements never wait for each other crosswise), then one statement with a fresh snapshot that upserts what
    the view maps, deletes from the target what it no longer maps, quarantines what it quarantines and drops
    quarantine rows that are over, and logs every key. A data error falls back to the per-key function, key by
    key, each in its own block that quarantines only the key that fails (``sync failed: ...``).
    """
    body = _guard(plan, FORWARD, REVERSE) if reverse_active else []
    (t,) = plan.row_targets_of(legacy)
    name, skey, vkey, tkey = t["target"], t["source_key"], t["view_key"], t["target_key"]
    cols = plan.columns[name]
    non_key = [c for c in cols if c not in tkey]
    q = plan.rel("target", QUARANTINE)

    def kcols(alias):
        return _join(sql.SQL("{}.{}").format(_id(alias), _id(c)) for c in skey)

    def ktext(alias):
        return _key_text([sql.SQL("{}.{}").format(_id(alias), _id(c)) for c in skey])

    def step(keys_sql):
        k_match_v = _join([sql.SQL("v.{} = k.{}").format(_id(vc), _id(sc)) for vc, sc in zip(vkey, skey)], " AND ")
        conflict = _on_conflict("t", non_key)
        return [
            sql.SQL("PERFORM pg_advisory_xact_lock({lock}, {h}) FROM (SELECT DISTINCT {kc} FROM ({ks}) k0 "
                    "ORDER BY {kc}) k;").format(
                lock=sql.Literal(plan.lock_id(name)), h=key_hash([sql.SQL("k.{}").format(_id(c)) for c in skey]),
                kc=_join(_id(c) for c in skey), ks=keys_sql),
            sql.SQL(
                "WITH k AS (SELECT DISTINCT {kc} FROM ({ks}) k0), "
                "lg AS (INSERT INTO {log} (target_table, key) SELECT {name}, {kt} FROM k), "
                # a primary-key lookup of the view per key (the plan is generic: a join could scan the whole view)
                "v AS MATERIALIZED (SELECT v.* FROM k CROSS JOIN LATERAL (SELECT {vcols}, v._quarantine_reason "
                "FROM {view} v WHERE {kmv}) v), "
                "up AS (INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM v WHERE v._quarantine_reason IS NULL "
                "ON CONFLICT ({tk}) {conflict}), "
                "gone AS (DELETE FROM {target} t USING k WHERE {tkm} AND NOT EXISTS (SELECT 1 FROM v WHERE "
                "{vkm} AND v._quarantine_reason IS NULL)), "
                "qi AS (INSERT INTO {q} (target_table, source_table, source_pk, reason, row_data, run_id) "
                "SELECT {name}, {src}, {vt}, v._quarantine_reason, to_jsonb(s), {run} FROM v JOIN {srel} s ON {svm} "
                "WHERE v._quarantine_reason IS NOT NULL ON CONFLICT (target_table, source_pk) DO UPDATE SET "
                "reason = EXCLUDED.reason, row_data = EXCLUDED.row_data, run_id = EXCLUDED.run_id, "
                "quarantined_at = now()), "
                "qd AS (DELETE FROM {q} qq USING k WHERE qq.target_table = {name} AND qq.source_pk = {kt} "
                "AND NOT EXISTS (SELECT 1 FROM v WHERE {vkm} AND v._quarantine_reason IS NOT NULL)) "
                "SELECT 1 INTO v_one;").format(
                kc=_join(_id(c) for c in skey), ks=keys_sql, log=plan.rel("mapping", CHANGE_LOG),
                name=sql.Literal(name), kt=ktext("k"), view=plan.rel("mapping", t["view"]),
                vcols=_join(sql.SQL("v.{}").format(_id(c)) for c in dict.fromkeys(list(cols) + list(vkey))),
                kmv=k_match_v, target=plan.rel("target", name), cols=_join(_id(c) for c in cols),
                tk=_join(_id(c) for c in tkey), conflict=conflict,
                tkm=_join([sql.SQL("t.{} = k.{}").format(_id(tc), _id(sc)) for tc, sc in zip(tkey, skey)], " AND "),
                vkm=k_match_v, q=q, src=sql.Literal(legacy),
                vt=_key_text([sql.SQL("v.{}").format(_id(c)) for c in vkey]), run=sql.Literal(SYNC_RUN_ID),
                srel=plan.rel("legacy", legacy),
                svm=_join([sql.SQL("s.{} = v.{}").format(_id(sc), _id(vc)) for sc, vc in zip(skey, vkey)], " AND ")),
        ]

    def fallback(keys_sql):
        rec = [sql.SQL("v_ck.{}").format(_id(c)) for c in skey]
        return sql.SQL(
            "FOR v_ck IN SELECT DISTINCT {kc} FROM ({ks}) k0 ORDER BY {kc} LOOP BEGIN {call} "
            "EXCEPTION WHEN {errors} THEN "
            "INSERT INTO {q} (target_table, source_table, source_pk, reason, row_data, run_id) "
            "VALUES ({name}, {src}, {kt}, {pre} || SQLERRM || ' (SQLSTATE ' || SQLSTATE || ')', "
            "coalesce((SELECT to_jsonb(s) FROM {srel} s WHERE {sm}), jsonb_build_object('key', {kt})), {run}) "
            "ON CONFLICT (target_table, source_pk) DO UPDATE SET reason = EXCLUDED.reason, "
            "row_data = EXCLUDED.row_data, run_id = EXCLUDED.run_id, quarantined_at = now(); "
            "RAISE WARNING 'carbot.migration: the sync of %.% could not map a row (%); it is quarantined, the "
            "write goes through', TG_TABLE_SCHEMA, TG_TABLE_NAME, SQLERRM; END; END LOOP;").format(
            kc=_join(_id(c) for c in skey), ks=keys_sql, call=_call_sync(plan, t, rec, "true"),
            errors=sql.SQL(DATA_ERRORS), q=q, name=sql.Literal(name), src=sql.Literal(legacy), kt=_key_text(rec),
            pre=sql.Literal(SYNC_FAILED), srel=plan.rel("legacy", legacy), sm=_match("s", skey, rec),
            run=sql.Literal(SYNC_RUN_ID))

    keysets = [("INSERT", sql.SQL("SELECT {} FROM nt").format(_join(_id(c) for c in skey))),
               ("UPDATE", sql.SQL("SELECT {kc} FROM nt UNION SELECT {kc} FROM ot").format(
                   kc=_join(_id(c) for c in skey))),
               ("DELETE", sql.SQL("SELECT {} FROM ot").format(_join(_id(c) for c in skey)))]
    for op, keys_sql in keysets:
        stmts = step(keys_sql)
        if reverse_active and op == "INSERT":
            for seq in (sequences or {}).get(legacy, []):
                stmts.append(sql.SQL(
                    "PERFORM setval({seq}::regclass, x.m) FROM (SELECT max({c}) AS m FROM nt) x "
                    "WHERE x.m > coalesce(pg_sequence_last_value({seq}::regclass), 0);").format(
                    seq=sql.Literal(seq["target_seq"]), c=_id(seq["column"])))
        body.append(sql.SQL("IF TG_OP = {op} THEN BEGIN {stmts} EXCEPTION WHEN {errors} THEN {fb} END; END IF;").format(
            op=sql.Literal(op), stmts=_join(stmts, " "), errors=sql.SQL(DATA_ERRORS), fb=fallback(keys_sql)))
    body.extend(_unguard() if reverse_active else [sql.SQL("RETURN NULL;")])
    return _function(plan.fn("stmt_" + legacy), sql.SQL(""), sql.SQL("trigger"),
                     [sql.SQL("v_ck record;"), sql.SQL("v_one integer;")], body)


def _quarantine_on_data_error(plan, legacy, body):
    """The trigger body in a block that turns a data error of the sync into a quarantine row per target of the
    written legacy row (reason ``sync failed: <error>``, the legacy row as row_data) and a WARNING, so that the
    application's write goes through (docs/sync.md, "Fail loud, not on the app"). The block is a subtransaction:
    whatever the sync wrote before the error is undone with it, and so is the loop marker."""
    targets = plan.row_targets_of(legacy)
    handler = [sql.SQL("v_msg := {} || SQLERRM || ' (SQLSTATE ' || SQLSTATE || ')';").format(sql.Literal(SYNC_FAILED))]
    for which in ("OLD", "NEW"):
        stmts = []
        for t in targets:
            keys = [sql.SQL("{}.{}").format(sql.SQL(which), _id(c)) for c in t["source_key"]]
            stmts.append(sql.SQL(
                "INSERT INTO {q} (target_table, source_table, source_pk, reason, row_data, run_id) "
                "VALUES ({name}, {src}, {kt}, v_msg, to_jsonb({row}), {run}) ON CONFLICT (target_table, source_pk) "
                "DO UPDATE SET reason = EXCLUDED.reason, row_data = EXCLUDED.row_data, run_id = EXCLUDED.run_id, "
                "quarantined_at = now();").format(
                q=plan.rel("target", QUARANTINE), name=sql.Literal(t["target"]), src=sql.Literal(legacy),
                kt=_key_text(keys), row=sql.SQL(which), run=sql.Literal(SYNC_RUN_ID)))
        handler.append(sql.SQL("IF TG_OP {op} 'DELETE' THEN {stmts} END IF;").format(
            op=sql.SQL("=" if which == "OLD" else "<>"), stmts=_join(stmts, " ")))
    handler.append(sql.SQL(
        "RAISE WARNING 'carbot.migration: the sync of %.% could not map the row (%); it is quarantined, the write "
        "goes through', TG_TABLE_SCHEMA, TG_TABLE_NAME, v_msg;"))
    handler.append(sql.SQL("RETURN NULL;"))
    return [sql.SQL("BEGIN"), _join(body, "\n"), sql.SQL("EXCEPTION WHEN {} THEN").format(sql.SQL(DATA_ERRORS)),
            _join(handler, "\n"), sql.SQL("END;")]


def truncate_function(plan):
    body = [sql.SQL(
        "IF coalesce(current_setting({allow}, true), '') = 'on' THEN RETURN NULL; END IF; "
        "RAISE EXCEPTION 'carbot.migration: TRUNCATE of %.% is not synced to the other schema', TG_TABLE_SCHEMA, "
        "TG_TABLE_NAME USING HINT = 'Delete the rows instead, or remove the sync triggers first "
        "(carbot.migration.sync_triggers state=absent), or SET ' || {allow} || ' = on and resync.', "
        "ERRCODE = 'feature_not_supported';").format(allow=sql.Literal(ALLOW_TRUNCATE_SETTING)),
        sql.SQL("RETURN NULL;")]
    return _function(plan.fn("no_truncate"), sql.SQL(""), sql.SQL("trigger"), [sql.SQL("")], body)


# ----------------------------------------------------------------------------------------- reverse
def reverse_trigger_function(plan, target, sequences=None):
    """carbot_sync_rev_<target>(): upsert/delete the legacy row from rmap_<target>.

    It does not mark the loop setting: the legacy write fires the forward trigger, which re-projects the row (and
    every row and derived row that depends on it) into carbot_v2 through the forward mapping, exactly as a
    write of the old app would. So after every write of the new app ``map(legacy) = carbot_v2`` holds: a value
    outside the forward mapping's image (' Leipzig ', an email without '@') is normalised in carbot_v2 the way
    the migration normalises it, never left as a guaranteed mismatch. The forward trigger marks the setting while
    it writes carbot_v2, and this trigger does nothing then. Derived parents of the row's *old* version
    (organizations) are re-derived here: the forward function only sees the row's new version.
    A data error writing the legacy row is reported as a WARNING and does not fail the new app's write; the
    legacy row then differs, and the completeness check names it and repairs it (``sync_check repair``).
    """
    t = plan.by_target[target]
    view = plan.rel("mapping", "rmap_" + target)
    lcols = list(plan.legacy_cols[t["source"]])
    src = plan.rel("legacy", t["source"])
    old = [sql.SQL("OLD.{}").format(_id(c)) for c in t["target_key"]]
    new = [sql.SQL("NEW.{}").format(_id(c)) for c in t["target_key"]]
    skey = t["source_key"]
    vkey = ["_dst_key"] if len(skey) == 1 else ["_dst_key%d" % (i + 1) for i in range(len(skey))]
    non_key = [c for c in lcols if c not in skey]
    body = [sql.SQL("IF current_setting({s}, true) = {o} THEN RETURN NULL; END IF;").format(
        s=sql.Literal(ORIGIN_SETTING), o=sql.Literal(FORWARD)), sql.SQL("BEGIN")]
    body.append(sql.SQL(
        "IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ({o}) IS DISTINCT FROM ({n})) THEN "
        "DELETE FROM {src} s WHERE {m}; END IF;").format(o=_join(old), n=_join(new), src=src,
                                                         m=_match("s", skey, old)))
    # Always a new legacy row version, also when no legacy column changed: the app may have written a carbot_v2
    # column without a legacy twin (leads.subject, appointments.scheduled_datetime, workshops.organization_id),
    # and only the forward trigger that this write fires re-projects it (map(legacy) = carbot_v2).
    conflict = _on_conflict("s", non_key, only_changed=False)
    body.append(sql.SQL(
        "IF TG_OP <> 'DELETE' THEN INSERT INTO {src} AS s ({cols}) SELECT {vcols} FROM {view} v WHERE {m} "
        "ON CONFLICT ({sk}) {conflict}; END IF;").format(
        src=src, cols=_join(_id(c) for c in lcols), vcols=_join(sql.SQL("v.{}").format(_id(c)) for c in lcols),
        view=view, m=_match("v", vkey, new), sk=_join(_id(c) for c in skey), conflict=conflict))
    for ref in t["references"]:
        parent = plan.by_target[ref["parent"]]
        if parent["kind"] == "derived" and ref["parent"] != CHAT_SESSIONS:
            body.append(sql.SQL(
                "IF TG_OP <> 'INSERT' AND OLD.{c} IS NOT NULL THEN PERFORM {fn}(OLD.{c}); END IF;").format(
                c=_id(ref["column"]), fn=plan.fn(ref["parent"])))
    for seq in (sequences or {}).get(t["source"], []):
        if seq["target"] == target:
            body.append(sql.SQL("IF TG_OP = 'INSERT' THEN {} END IF;").format(
                _serial_bump(plan, None, seq["column"], seq["legacy_seq"])))
    body.append(sql.SQL(
        "EXCEPTION WHEN {errors} THEN RAISE WARNING 'carbot.migration: the reverse sync of %.% could not write the "
        "legacy row (%, SQLSTATE %): the write stays in carbot_v2; sync_check repair names and retries it', "
        "TG_TABLE_SCHEMA, TG_TABLE_NAME, SQLERRM, SQLSTATE; END;").format(errors=sql.SQL(DATA_ERRORS)))
    body.append(sql.SQL("RETURN NULL;"))
    return _function(plan.fn("rev_" + target), sql.SQL(""), sql.SQL("trigger"), [sql.SQL("")], body)


def raw_trigger_function(plan):
    """carbot_sync_rev_raw(key): BEFORE UPDATE OF the columns a set-aside key stands for (one trigger per key and
    table, the key as its argument): the application wrote one of those columns, so the set-aside original of
    that key goes from legacy_raw, and the reverse projection (``COALESCE(column, legacy_raw->>key)``) never brings
    the old invalid value back over a new one, nor over a value the application cleared. ``UPDATE OF`` fires
    whenever the statement sets the column, also to the value it had (the app clears an email that it sees as
    NULL because the legacy one was set aside). Writes of the sync itself (the loop setting is marked) and writes
    that set legacy_raw themselves are left alone."""
    body = [
        sql.SQL("IF current_setting({s}, true) = {o} THEN RETURN NEW; END IF;").format(
            s=sql.Literal(ORIGIN_SETTING), o=sql.Literal(FORWARD)),
        sql.SQL("IF NEW.legacy_raw IS NULL OR NEW.legacy_raw IS DISTINCT FROM OLD.legacy_raw THEN RETURN NEW; END IF;"),
        sql.SQL("NEW.legacy_raw := NULLIF(NEW.legacy_raw - TG_ARGV[0], '{}'::jsonb);"),
        sql.SQL("RETURN NEW;"),
    ]
    return _function(plan.fn("rev_raw"), sql.SQL(""), sql.SQL("trigger"), [sql.SQL("")], body)


def raw_triggers(entry):
    """{trigger name: (set-aside key, [columns])} of one table of the declaration."""
    return {"%s_%s" % (RAW_TRIGGER, key): (key, cols) for key, cols in sorted(entry.get("set_aside", {}).items())}


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
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'v' AND c.relname LIKE 'rmap\\_%%'", (plan.mapping,))
        plan.reverse_views = {r[0][len("rmap_"):] for r in cur.fetchall()}
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


# ---------------------------------------------------------------------------------- statements
def function_statements(plan, direction, sequences=None, reverse_active=False):
    """[(function name, statement)] to create for ``direction`` (the reverse direction re-creates the
    forward trigger functions with the loop marker and the sequence bumps)."""
    out = [("no_truncate", truncate_function(plan))]
    if direction == REVERSE:
        statement = set(plan.statement_tables())
        out += [("stmt_" + legacy, statement_trigger_function(plan, legacy, sequences, True)) if legacy in statement
                else ("trg_" + legacy, forward_trigger_function(plan, legacy, sequences, True))
                for legacy in plan.forward_tables()]
    if direction == FORWARD:
        for t in plan.tables:
            if t["target"] == CHAT_SESSIONS:
                out.append((CHAT_SESSIONS, chat_sessions_function(plan)))
            elif t["kind"] == "derived":
                out.append((t["target"], derived_sync_function(plan, t)))
        for t in plan.tables:
            if t["kind"] == "row":
                out.append((t["target"], row_sync_function(plan, t)))
        statement = set(plan.statement_tables())
        for legacy in plan.forward_tables():
            if legacy in statement:
                out.append(("stmt_" + legacy, statement_trigger_function(plan, legacy, sequences, reverse_active)))
            else:
                out.append(("trg_" + legacy, forward_trigger_function(plan, legacy, sequences, reverse_active)))
    else:
        missing = [t for t in plan.reverse_tables() if t not in plan.reverse_views]
        if missing:
            raise SyncError("reverse projections missing in %s: %s (sql/sync)" % (plan.mapping, ", ".join(missing)))
        for target in plan.reverse_tables():
            out.append(("rev_" + target, reverse_trigger_function(plan, target, sequences)))
        if plan.raw_tables():
            out.append(("rev_raw", raw_trigger_function(plan)))
    return out


def trigger_tables(plan, direction):
    """[(schema, table, trigger function name)] that carry the triggers of ``direction``."""
    if direction == FORWARD:
        statement = set(plan.statement_tables())
        return [(plan.legacy, legacy, ("stmt_" if legacy in statement else "trg_") + legacy)
                for legacy in plan.forward_tables()]
    return [(plan.target, target, "rev_" + target) for target in plan.reverse_tables()]


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
    statement = set(statement_tables(mapping.TABLES, mapping.LEGACY_TABLES))
    for direction, schema, tables in (
            (FORWARD, legacy_schema, list(mapping.LEGACY_TABLES)),
            (REVERSE, target_schema, [t["target"] for t in mapping.TABLES if t["kind"] == "row"])):
        have = existing_triggers(conn, schema)
        out[direction] = {}
        for table in tables:
            trig = have.get(table, {})
            needed = trigger_names(direction, raw.get(table, ()), table in statement)
            rec = {"row": needed[0] in trig, "truncate": needed[1] in trig}
            if direction == REVERSE and raw.get(table):
                rec["raw"] = all(n in trig for n in raw[table])
            rec["enabled"] = bool(trig) and all(trig.values()) and all(n in trig for n in needed)
            out[direction][table] = rec
    return out


def trigger_names(direction, raw=(), statement=False):
    """The triggers one table carries for ``direction``: row (for a statement-level table: its INSERT trigger),
    truncate guard, and its raw triggers (reverse) or its UPDATE and DELETE statement triggers (forward)."""
    extra = tuple(raw) if direction == REVERSE else ()
    if direction == FORWARD and statement:
        extra = (STATEMENT_TRIGGERS["UPDATE"], STATEMENT_TRIGGERS["DELETE"])
    return TRIGGER_NAMES[direction] + extra


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
    statement = set(plan.statement_tables()) if direction == FORWARD else set()
    for schema, table, _fn in trigger_tables(plan, direction):
        have = existing_triggers(conn, schema).get(table, {})
        raw = raw_triggers(plan.by_target[table]) if direction == REVERSE else {}
        complete = all(n in have for n in trigger_names(direction, raw, table in statement))
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
    "sequences": {seq: value}}.
    """
    step = step or LockedStep(conn_params, lock_timeout_ms, max_attempts)
    result = {"functions": [], "tables": {}, "sequences": {}}
    try:
        step.run(lambda cur: claim_schemas(cur, plan))  # never re-point an installed sync
        conn = step.connect()
        if direction == REVERSE:
            apply_reverse_views(conn, plan, sql_dir)
            conn.commit()
        sequences = serial_columns(conn, plan)
        reverse_active = bool(existing_triggers(conn, plan.target, TRIGGER_NAMES[REVERSE]))
        conn.commit()
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
                    "AND t.tgname = ANY(%s)", (schema, table, list(trigger_names(direction, raw, per_statement))))
                found = dict(cur.fetchall())
                have = set(found)
                done = False
                if per_statement and found.get(row_name):
                    # an installation from before statement-level sync: its row trigger makes way, in this transaction
                    cur.execute(sql.SQL("DROP TRIGGER {} ON {}").format(_id(row_name), _id(schema, table)))
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
                for name in trigger_names(direction, raw, statement=direction == FORWARD):
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
