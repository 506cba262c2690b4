# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL of the live sync, generated from the mapping declaration: pure functions, no database.

Every function here takes a :class:`Plan` (the declaration with the column types it needs) and returns
psycopg2.sql objects: the plpgsql sync functions per target table, the trigger functions per legacy table
(forward) and per target table (reverse), and which tables carry which triggers. Installing them (locks,
lock_timeout retries, DDL, the catalog reads that build a Plan) is sync.py; what the SQL does is docs/sync.md
and the docstring of sync.py. As pgroll keeps its trigger templates apart from running them, this file can be
read and unit-tested without PostgreSQL (tests/unit/test_sync_sql.py).

All identifiers go through psycopg2.sql.Identifier; all values are literals.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils import schemas
from ansible_collections.carbot.migration.plugins.module_utils.errors import PreconditionError
from ansible_collections.carbot.migration.plugins.module_utils.keys import key_hash, key_text as _key_text, lock_id

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through db.require_psycopg2
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


# Statement-level forward triggers (every legacy table, Plan.statement_tables): one per event, transition tables need
# that. The INSERT trigger has the name the row trigger of an installation from before statement-level sync had.
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


# Dependencies that the declaration cannot express yet (docs/sync.md, "What the declaration lacks"):
# a write to a legacy table that changes *other* rows' projections although nothing flips between
# migrated and quarantined. Each entry: legacy table -> [(target, SQL selecting the affected legacy keys of
# the target's source, with {legacy} = legacy schema, {mapping} = mapping schema, {rows} = the rows the statement
# wrote, old and new versions: a subquery over the trigger's transition tables)]. The one declaration of these
# dependencies: the statement trigger syncs every key it selects (keyed_statement_trigger_function).
EXTRA_DEPENDENCIES = {
    # organizations are keyed by the owner's email: a user's email change moves the workshops it owns;
    # users.email is unique only case-sensitively: the earliest user of a normalised email migrates.
    "users": [
        ("workshops", "SELECT w.id FROM {legacy}.workshops w WHERE w.owner_id IN (SELECT r.id FROM {rows} r)"),
        ("users", "SELECT u.id FROM {legacy}.users u WHERE {mapping}.normalise_email(u.email) IN "
                  "(SELECT {mapping}.normalise_email(r.email) FROM {rows} r)"),
    ],
    # a slug 'x-v2' loses its suffix only while no workshop has the slug 'x'
    "workshops": [
        ("workshops", "SELECT w.id FROM {legacy}.workshops w WHERE w.slug IN (SELECT r.slug || '-v2' FROM {rows} r)"),
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
    """The declaration with what the generated SQL needs of the catalog: columns, key types, legacy columns.
    Pure; sync.Plan builds one from a database."""

    def __init__(self, tables, legacy_tables, legacy_cols, view_cols, target_types, reverse_views=(),
                 legacy_schema=schemas.LEGACY_SCHEMA, mapping_schema=schemas.MAPPING_SCHEMA,
                 target_schema=schemas.TARGET_SCHEMA):
        """``tables``: the declaration (mapping.TABLES); ``legacy_tables``: mapping.LEGACY_TABLES;
        ``legacy_cols``: {legacy table: {column: type}}; ``view_cols``: {target: [column of its view]};
        ``target_types``: {target: {column: type}}; ``reverse_views``: the targets whose reverse projection
        ``rmap_<target>`` exists. sync.Plan reads them from the catalog."""
        self.legacy, self.mapping, self.target = legacy_schema, mapping_schema, target_schema
        self.tables = list(tables)
        self.by_target = {t["target"]: t for t in self.tables}
        self.legacy_tables = list(legacy_tables)
        self.legacy_cols = {legacy: dict(cols) for legacy, cols in legacy_cols.items()}
        self.columns, self.key_types, self.target_types = {}, {}, {}
        for t in self.tables:
            target = dict(target_types[t["target"]])
            self.target_types[t["target"]] = target
            self.columns[t["target"]] = [c for c in view_cols[t["target"]] if c in target]
            if t["kind"] == "row":
                self.key_types[t["target"]] = [self.legacy_cols[t["source"]][k] for k in t["source_key"]]
            else:
                self.key_types[t["target"]] = [target[k] for k in t["target_key"]]
        self.reverse_views = set(reverse_views)

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
        """Legacy tables synced per statement (see :func:`statement_tables`)."""
        return statement_tables(self.tables, self.legacy_tables)

    def set_based_tables(self):
        """The statement-level tables synced set-based (see :func:`set_based_tables`)."""
        return set_based_tables(self.tables, self.legacy_tables)

    def raw_tables(self):
        """Target tables whose rows keep set-aside legacy values (``set_aside``): they get the raw trigger."""
        return [t["target"] for t in self.tables if t["kind"] == "row" and t.get("set_aside")]


def statement_tables(tables, legacy_tables):
    """Legacy tables synced per statement (three ``AFTER … REFERENCING … FOR EACH STATEMENT`` triggers): every one,
    set-based (:func:`set_based_tables`) or keyed (:func:`keyed_statement_tables`, all the others)."""
    return list(legacy_tables)


def keyed_statement_tables(tables, legacy_tables):
    """Every legacy table that is not set-based: customers, vehicles, leads, services, appointments, subscriptions
    (children), users and workshops (children and EXTRA_DEPENDENCIES), chat_messages (its chat session). Their
    statement trigger (:func:`keyed_statement_trigger_function`) calls the per-key function for every key of the
    statement, re-derives the chat sessions and the extra dependencies from the whole transition tables, in one
    subtransaction per statement instead of one per row."""
    set_based = set(set_based_tables(tables, legacy_tables))
    return [legacy for legacy in legacy_tables if legacy not in set_based]


def set_based_tables(tables, legacy_tables):
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


def _per_key_quarantining(plan, t, keys_sql):
    """The per-key function of target ``t`` for every distinct key of ``keys_sql`` (columns named as ``t``'s source
    key), in key order, each in its own block: a data error quarantines that key (``sync failed: ...``, the legacy row
    as row_data, or the key when the row is gone) with a WARNING, and the other keys go on. The fallback of the
    statement triggers after their statement's block failed on a data error."""
    skey, legacy = t["source_key"], t["source"]
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
        errors=sql.SQL(DATA_ERRORS), q=plan.rel("target", QUARANTINE), name=sql.Literal(t["target"]),
        src=sql.Literal(legacy), kt=_key_text(rec), pre=sql.Literal(SYNC_FAILED), srel=plan.rel("legacy", legacy),
        sm=_match("s", skey, rec), run=sql.Literal(SYNC_RUN_ID))


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

    def step(keys_sql, op):
        k_match_v = _join([sql.SQL("v.{} = k.{}").format(_id(vc), _id(sc)) for vc, sc in zip(vkey, skey)], " AND ")
        conflict = _on_conflict("t", non_key)
        # what leaves the target and which quarantine rows are over. UPDATE: set differences (EXCEPT: hashed or
        # sorted), never a NOT EXISTS against the CTE, which the generic plan (made for the session's first, often
        # one-row, statement) runs as a nested loop: a scan of the CTE per key whose row is in the target, quadratic
        # (0.4 s for an UPDATE of 2,000 rows). INSERT and DELETE keep the NOT EXISTS (cheaper for one row, the set
        # differences cost ~20 us a statement): it runs only for keys whose row is in the target (INSERT: new keys,
        # rarely) or quarantined, and a DELETE's view rows are gone (the CTE is empty).
        names = dict(
            target=plan.rel("target", name), q=q, name=sql.Literal(name), kt=ktext("k"), dkt=ktext("d"),
            kmv=k_match_v, kc=_join(_id(c) for c in skey), vkc=_join(sql.SQL("v.{}").format(_id(c)) for c in vkey),
            tdm=_join([sql.SQL("t.{} = d.{}").format(_id(tc), _id(sc)) for tc, sc in zip(tkey, skey)], " AND "),
            tkm=_join([sql.SQL("t.{} = k.{}").format(_id(tc), _id(sc)) for tc, sc in zip(tkey, skey)], " AND "))
        if op == "UPDATE":
            gone = sql.SQL("DELETE FROM {target} t USING (SELECT {kc} FROM k EXCEPT SELECT {vkc} FROM v "
                           "WHERE v._quarantine_reason IS NULL) d WHERE {tdm}").format(**names)
            qdel = sql.SQL("DELETE FROM {q} qq USING (SELECT {kc} FROM k EXCEPT SELECT {vkc} FROM v "
                           "WHERE v._quarantine_reason IS NOT NULL) d WHERE qq.target_table = {name} "
                           "AND qq.source_pk = {dkt}").format(**names)
        else:
            gone = sql.SQL("DELETE FROM {target} t USING k WHERE {tkm} AND NOT EXISTS (SELECT 1 FROM v WHERE "
                           "{kmv} AND v._quarantine_reason IS NULL)").format(**names)
            qdel = sql.SQL("DELETE FROM {q} qq USING k WHERE qq.target_table = {name} AND qq.source_pk = {kt} "
                           "AND NOT EXISTS (SELECT 1 FROM v WHERE {kmv} AND v._quarantine_reason IS NOT NULL)"
                           ).format(**names)
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
                "gone AS ({gone}), "
                "qi AS (INSERT INTO {q} (target_table, source_table, source_pk, reason, row_data, run_id) "
                "SELECT {name}, {src}, {vt}, v._quarantine_reason, to_jsonb(s), {run} FROM v JOIN {srel} s ON {svm} "
                "WHERE v._quarantine_reason IS NOT NULL ON CONFLICT (target_table, source_pk) DO UPDATE SET "
                "reason = EXCLUDED.reason, row_data = EXCLUDED.row_data, run_id = EXCLUDED.run_id, "
                "quarantined_at = now()), "
                "qd AS ({qdel}) "
                "SELECT 1 INTO v_one;").format(
                kc=_join(_id(c) for c in skey), ks=keys_sql, log=plan.rel("mapping", CHANGE_LOG),
                name=sql.Literal(name), kt=ktext("k"), view=plan.rel("mapping", t["view"]),
                vcols=_join(sql.SQL("v.{}").format(_id(c)) for c in dict.fromkeys(list(cols) + list(vkey))),
                kmv=k_match_v, target=plan.rel("target", name), cols=_join(_id(c) for c in cols),
                tk=_join(_id(c) for c in tkey), conflict=conflict,
                gone=gone, qdel=qdel, q=q, src=sql.Literal(legacy),
                vt=_key_text([sql.SQL("v.{}").format(_id(c)) for c in vkey]), run=sql.Literal(SYNC_RUN_ID),
                srel=plan.rel("legacy", legacy),
                svm=_join([sql.SQL("s.{} = v.{}").format(_id(sc), _id(vc)) for sc, vc in zip(skey, vkey)], " AND ")),
        ]

    keysets = [("INSERT", sql.SQL("SELECT {} FROM nt").format(_join(_id(c) for c in skey))),
               ("UPDATE", sql.SQL("SELECT {kc} FROM nt UNION SELECT {kc} FROM ot").format(
                   kc=_join(_id(c) for c in skey))),
               ("DELETE", sql.SQL("SELECT {} FROM ot").format(_join(_id(c) for c in skey)))]
    for op, keys_sql in keysets:
        stmts = step(keys_sql, op)
        if reverse_active and op == "INSERT":
            for seq in (sequences or {}).get(legacy, []):
                stmts.append(sql.SQL(
                    "PERFORM setval({seq}::regclass, x.m) FROM (SELECT max({c}) AS m FROM nt) x "
                    "WHERE x.m > coalesce(pg_sequence_last_value({seq}::regclass), 0);").format(
                    seq=sql.Literal(seq["target_seq"]), c=_id(seq["column"])))
        body.append(sql.SQL("IF TG_OP = {op} THEN BEGIN {stmts} EXCEPTION WHEN {errors} THEN {fb} END; END IF;").format(
            op=sql.Literal(op), stmts=_join(stmts, " "), errors=sql.SQL(DATA_ERRORS),
            fb=_per_key_quarantining(plan, t, keys_sql)))
    body.extend(_unguard() if reverse_active else [sql.SQL("RETURN NULL;")])
    return _function(plan.fn("stmt_" + legacy), sql.SQL(""), sql.SQL("trigger"),
                     [sql.SQL("v_ck record;"), sql.SQL("v_one integer;")], body)


def keyed_statement_trigger_function(plan, legacy, sequences=None, reverse_active=False):
    """carbot_sync_stmt_<legacy>(): the statement-level trigger of a legacy table that is not set-based
    (:func:`keyed_statement_tables`).

    The same per-key function the row trigger called (lock, fresh snapshot, children, quarantine, change log:
    every guarantee lives there), once for every distinct key of the statement's transition tables, in key order,
    all in one ``BEGIN … EXCEPTION`` block: one subtransaction per statement instead of one per row (and no
    per-row hand-over of the advisory locks at each subtransaction's end, which grows with the locks held).
    An ``AFTER ROW`` trigger fires at the end of the statement too, so the calls see the same state; each call
    syncs its key from the current view, so the order of keys within the statement does not change the result
    (docs/sync.md, "Per statement, keyed"). What the row trigger derived from non-key columns of OLD and NEW is
    re-derived from the whole transition tables (a superset: every sync re-reads the current state):

    * chat_messages: the chat session of every conversation of the statement (``INSERT``: incremental, with the
      conversation's first and last ``created_at``; ``UPDATE``: exact, for the conversations whose rows changed
      conversation or time; ``DELETE``: exact), new conversations before the messages (their parent), old ones
      after them, as the row trigger ordered them;
    * users, workshops: the keys :data:`EXTRA_DEPENDENCIES` selects for the statement's old and new rows, after the
      statement's own keys, each once, in key order.

    A data error rolls the block back and the statement is synced again row by row, each row (with its chat
    sessions) in its own block that quarantines that row (``sync failed: ...``, the row as the row trigger would
    quarantine it), then every dependent key in its own block; the write goes through.
    """
    body = _guard(plan, FORWARD, REVERSE) if reverse_active else []
    targets = plan.row_targets_of(legacy)
    q = plan.rel("target", QUARANTINE)
    skeys = list(dict.fromkeys(c for t in targets for c in t["source_key"]))
    kc = _join(_id(c) for c in skeys)
    # the chat session (a derived table keyed by the conversation of its source rows) and the extra dependencies
    chat = CHAT_SESSIONS in plan.by_target and plan.by_target[CHAT_SESSIONS]["source"] == legacy
    deps = [(plan.by_target[target], query) for target, query in EXTRA_DEPENDENCIES.get(legacy, [])
            if target in plan.by_target]

    def calls(record, deep):
        return _join([_call_sync(plan, t, [sql.SQL("{}.{}").format(sql.SQL(record), _id(c)) for c in t["source_key"]],
                                 deep) for t in targets], " ")

    def per_key(keys_sql, deep):
        return sql.SQL("FOR v_ck IN SELECT DISTINCT {kc} FROM ({ks}) k0 ORDER BY {kc} LOOP {call} END LOOP;").format(
            kc=kc, ks=keys_sql, call=calls("v_ck", deep))

    row_key = _key_text([sql.SQL("v_row.{}").format(_id(c)) for c in skeys])

    def per_row(rows_sql, deep, before=None, after=None):
        """The fallback, row by row, each row (with its chat session calls) in its own block, in two passes: the
        first notes the rows that fail, the second (after the dependents) tries those again and quarantines a row
        that fails again (``sync failed: ...``, the legacy row as the row trigger quarantined it) with one WARNING.
        The second try is for rows that failed only because another row of the statement was synced after them
        (a user taking over an address another user of the same statement gives up: carbot_v2's unique email)."""
        quarantine = _join([sql.SQL(
            "INSERT INTO {q} (target_table, source_table, source_pk, reason, row_data, run_id) "
            "VALUES ({name}, {src}, {kt}, v_msg, to_jsonb(v_row), {run}) ON CONFLICT (target_table, source_pk) "
            "DO UPDATE SET reason = EXCLUDED.reason, row_data = EXCLUDED.row_data, run_id = EXCLUDED.run_id, "
            "quarantined_at = now();").format(
            q=q, name=sql.Literal(t["target"]), src=sql.Literal(legacy),
            kt=_key_text([sql.SQL("v_row.{}").format(_id(c)) for c in t["source_key"]]), run=sql.Literal(SYNC_RUN_ID))
            for t in targets], " ")
        names = dict(rows=rows_sql, call=calls("v_row", deep), errors=sql.SQL(DATA_ERRORS),
                     pre=sql.Literal(SYNC_FAILED), quarantine=quarantine, before=before or sql.SQL(""),
                     after=after or sql.SQL(""), kt=row_key,
                     rkt=_key_text([sql.SQL("r.{}").format(_id(c)) for c in skeys]))
        first = sql.SQL("FOR v_row IN {rows} LOOP BEGIN {before}{call}{after} EXCEPTION WHEN {errors} THEN "
                        "v_failed := v_failed || {kt}; END; END LOOP;").format(**names)
        again = sql.SQL(
            "IF cardinality(v_failed) > 0 THEN FOR v_row IN SELECT * FROM ({rows}) r WHERE {rkt} = ANY(v_failed) LOOP "
            "BEGIN {before}{call}{after} EXCEPTION WHEN {errors} THEN "
            "v_msg := {pre} || SQLERRM || ' (SQLSTATE ' || SQLSTATE || ')'; {quarantine} "
            "RAISE WARNING 'carbot.migration: the sync of %.% could not map the row (%); it is quarantined, the "
            "write goes through', TG_TABLE_SCHEMA, TG_TABLE_NAME, v_msg; END; END LOOP; END IF;").format(**names)
        return first, again

    def staying_then_per_key(keys_sql, declare):
        """UPDATE: the keys whose row is in the target and stays there (the view maps it) set-based, the rest
        (entering, leaving, quarantined: where children and the copy race matter) through the per-key function."""
        out = []
        for i, t in enumerate(targets):
            name, skey, vkey, tkey = t["target"], t["source_key"], t["view_key"], t["target_key"]
            cols = plan.columns[name]
            rest = sql.SQL("v_rest_%d" % i)
            declare.append(sql.SQL("{} {}[]; v_key_{} {};").format(
                rest, sql.SQL(plan.key_types[name][0]), sql.SQL(str(i)), sql.SQL(plan.key_types[name][0])))
            k = _id(skey[0])
            out.append(sql.SQL(
                "PERFORM pg_advisory_xact_lock({lock}, {h}) FROM (SELECT DISTINCT {k} FROM ({ks}) k0 ORDER BY {k}) k; "
                "WITH k AS (SELECT DISTINCT {k} FROM ({ks}) k0), "
                # the staying rows: mapped by the view and in the target (the same reads as the per-key function).
                # OFFSET 0 keeps the view's subquery apart, planned with the key as a parameter like the per-key
                # function's read: pulled up into the join, the generic plan read map_appointments through a hash
                # join over all customers (2.9 ms for a one-row UPDATE)
                "v AS MATERIALIZED (SELECT v.* FROM k CROSS JOIN LATERAL (SELECT {vcols}, v._quarantine_reason "
                "FROM {view} v WHERE v.{vk} = k.{k} OFFSET 0) v WHERE v._quarantine_reason IS NULL "
                "AND EXISTS (SELECT 1 FROM {target} t WHERE t.{tk} = v.{vk})), "
                "lg AS (INSERT INTO {log} (target_table, key) SELECT {name}, {kt} FROM v), "
                "up AS (INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM v ON CONFLICT ({tk}) {conflict}), "
                "qd AS (DELETE FROM {q} qq USING v WHERE qq.target_table = {name} AND qq.source_pk = {kt}) "
                # every other key: a set difference (hashed or sorted, never a scan of the CTE per key)
                "SELECT coalesce(array_agg(r.{k} ORDER BY r.{k}), '{{}}') INTO {rest} "
                "FROM (SELECT {k} FROM k EXCEPT SELECT v.{vk} FROM v) r; "
                "FOREACH v_key_{i} IN ARRAY {rest} LOOP PERFORM {fn}(v_key_{i}, true); END LOOP;").format(
                lock=sql.Literal(plan.lock_id(name)), h=key_hash([sql.SQL("k.{}").format(k)]), k=k, ks=keys_sql,
                target=plan.rel("target", name), tk=_id(tkey[0]),
                vcols=_join(sql.SQL("v.{}").format(_id(c)) for c in dict.fromkeys(list(cols) + list(vkey))),
                view=plan.rel("mapping", t["view"]), vk=_id(vkey[0]), log=plan.rel("mapping", CHANGE_LOG),
                name=sql.Literal(name), kt=_key_text([sql.SQL("v.{}").format(_id(vkey[0]))]),
                cols=_join(_id(c) for c in cols),
                conflict=_on_conflict("t", [c for c in cols if c not in tkey]), q=q, rest=rest, i=sql.SQL(str(i)),
                fn=plan.fn(name)))
        return _join(out, " ")

    def one_or_many(keys_sql, many):
        (t,) = targets
        k = _id(t["source_key"][0])
        declare.append(sql.SQL("v_keys {}[];").format(sql.SQL(plan.key_types[t["target"]][0])))
        return sql.SQL(
            "SELECT coalesce(array_agg(DISTINCT k0.{k} ORDER BY k0.{k}), '{{}}') INTO v_keys FROM ({ks}) k0; "
            "IF cardinality(v_keys) > 1 THEN {many} ELSE FOREACH v_key_0 IN ARRAY v_keys LOOP PERFORM {fn}(v_key_0, "
            "true); END LOOP; END IF;").format(k=k, ks=keys_sql, many=many, fn=plan.fn(t["target"]))

    def dependents(rows_sql, own_keys_sql, guarded):
        """The keys EXTRA_DEPENDENCIES selects for the statement's rows, each synced once, in key order, after the
        statement's own keys, which they leave out (synced already, from the same state: the views read only the
        legacy schema); in the fallback (``guarded``) each key in its own block."""
        out = []
        for child, query in deps:
            ck = _join(_id(c) for c in child["source_key"])
            keys_sql = sql.SQL("SELECT {ck} FROM ({query}) d").format(ck=ck, query=sql.SQL(query).format(
                legacy=_id(plan.legacy), mapping=_id(plan.mapping), rows=rows_sql))
            if child["source"] == legacy:
                keys_sql = sql.SQL("{} EXCEPT SELECT {} FROM ({}) o").format(keys_sql, ck, own_keys_sql)
            if guarded:
                out.append(_per_key_quarantining(plan, child, keys_sql))
                continue
            out.append(sql.SQL("FOR v_ck IN SELECT DISTINCT {ck} FROM ({ks}) k0 ORDER BY {ck} LOOP {call} END LOOP;")
                       .format(ck=ck, ks=keys_sql, call=_call_sync(
                           plan, child, [sql.SQL("v_ck.{}").format(_id(c)) for c in child["source_key"]], "true")))
        return out

    # the chat session of a conversation (workshop_id, kunde_id of the legacy message): incremental for inserted
    # messages (widened to the conversation's first and last created_at: min/max and LEAST/GREATEST skip NULLs
    # alike, so NULL and infinite times give what the row trigger's call per message gave), exact otherwise
    sessions = plan.fn(CHAT_SESSIONS)

    def exact(convs_sql):
        return sql.SQL(
            "FOR v_cv IN SELECT DISTINCT c.workshop_id, c.kunde_id FROM ({convs}) c WHERE c.workshop_id IS NOT NULL "
            "AND c.kunde_id IS NOT NULL ORDER BY c.workshop_id, c.kunde_id LOOP "
            "PERFORM {fn}(v_cv.workshop_id, v_cv.kunde_id, NULL, false); END LOOP;").format(
            convs=convs_sql, fn=sessions)

    row_cols = _join(_id(c) for c in skeys)
    sessions_before, sessions_after = {}, {}
    row_before, row_after = {}, {}
    if chat:
        sessions_before["INSERT"] = sql.SQL(
            "FOR v_cv IN SELECT c.workshop_id, c.kunde_id, min(c.created_at) AS lo, max(c.created_at) AS hi FROM nt c "
            "WHERE c.workshop_id IS NOT NULL AND c.kunde_id IS NOT NULL GROUP BY c.workshop_id, c.kunde_id "
            "ORDER BY c.workshop_id, c.kunde_id LOOP PERFORM {fn}(v_cv.workshop_id, v_cv.kunde_id, v_cv.lo, true); "
            "IF v_cv.hi IS DISTINCT FROM v_cv.lo THEN PERFORM {fn}(v_cv.workshop_id, v_cv.kunde_id, v_cv.hi, true); "
            "END IF; END LOOP;").format(fn=sessions)
        # UPDATE: a new row version whose (key, conversation, time) is not among the old versions (moved, re-timed,
        # or its key changed) re-aggregates its new conversation before the messages; an old version whose (key,
        # conversation) is not among the new ones (moved, key changed) its old conversation after them. The session
        # is a function of the multiset of (conversation, created_at) of the messages: a conversation none of these
        # touch has the same multiset as before the statement (set differences: hashed or sorted, never a nested loop)
        sessions_before["UPDATE"] = exact(sql.SQL(
            "SELECT {rc}, workshop_id, kunde_id, created_at FROM nt EXCEPT "
            "SELECT {rc}, workshop_id, kunde_id, created_at FROM ot").format(rc=row_cols))
        sessions_after["UPDATE"] = exact(sql.SQL(
            "SELECT {rc}, workshop_id, kunde_id FROM ot EXCEPT SELECT {rc}, workshop_id, kunde_id FROM nt").format(
            rc=row_cols))
        sessions_after["DELETE"] = exact(sql.SQL("SELECT workshop_id, kunde_id FROM ot"))
        # the fallback, row by row as the row trigger did (the same pairing by key)
        row_match = _join([sql.SQL("o.{c} = v_row.{c}").format(c=_id(c)) for c in skeys], " AND ")
        row_before["INSERT"] = sql.SQL(
            "PERFORM {fn}(v_row.workshop_id, v_row.kunde_id, v_row.created_at, true); ").format(fn=sessions)
        row_before["UPDATE_NEW"] = sql.SQL(
            "IF NOT EXISTS (SELECT 1 FROM ot o WHERE {m} AND (o.workshop_id, o.kunde_id, o.created_at) IS NOT DISTINCT "
            "FROM (v_row.workshop_id, v_row.kunde_id, v_row.created_at)) THEN "
            "PERFORM {fn}(v_row.workshop_id, v_row.kunde_id, NULL, false); END IF; ").format(m=row_match, fn=sessions)
        row_after["UPDATE_NEW"] = sql.SQL(
            " FOR v_cv IN SELECT o.workshop_id, o.kunde_id FROM ot o WHERE {m} AND (o.workshop_id, o.kunde_id) "
            "IS DISTINCT FROM (v_row.workshop_id, v_row.kunde_id) LOOP "
            "PERFORM {fn}(v_cv.workshop_id, v_cv.kunde_id, NULL, false); END LOOP;").format(m=row_match, fn=sessions)
        old_after = sql.SQL(" PERFORM {fn}(v_row.workshop_id, v_row.kunde_id, NULL, false);").format(fn=sessions)
        row_after["UPDATE_OLD"] = row_after["DELETE"] = old_after

    declare = [sql.SQL("v_ck record;"), sql.SQL("v_row record;"), sql.SQL("v_msg text;"), sql.SQL("v_cv record;"),
               sql.SQL("v_failed text[];")]
    o_n = _join([sql.SQL("n.{c} = o.{c}").format(c=_id(c)) for c in skeys], " AND ")
    insert_keys = sql.SQL("SELECT {} FROM nt").format(kc)
    update_keys = sql.SQL("SELECT {kc} FROM ot UNION ALL SELECT {kc} FROM nt").format(kc=kc)
    delete_keys = sql.SQL("SELECT {} FROM ot").format(kc)
    # set-based for staying rows only where the per-key function does nothing but lock, log, read, upsert and drop a
    # quarantine row for them: one-column keys, no derived parent (its old/new re-derivation runs per key; the chat
    # session is not the per-key function's: the statement re-derives it before and after)
    simple = len(targets) == 1 and all(
        len(t["source_key"]) == 1 and not any(plan.by_target[r["parent"]]["kind"] == "derived"
                                              and r["parent"] != CHAT_SESSIONS for r in t["references"])
        for t in targets)
    # what the row trigger did per row: INSERT syncs NEW (not deep), UPDATE syncs OLD when its key changed and
    # NEW (deep), DELETE syncs OLD (deep)
    events = [
        ("INSERT", insert_keys, sql.SQL("(SELECT * FROM nt)"),
         [per_key(insert_keys, "false")],
         [per_row(sql.SQL("SELECT * FROM nt"), "false", before=row_before.get("INSERT"))]),
        # (a one-row UPDATE, the app's usual write, takes the per-key function directly, after one read of the
        # transition tables: the set-based statement and its set difference cost more than they save for one row)
        ("UPDATE", update_keys, sql.SQL("(SELECT * FROM ot UNION ALL SELECT * FROM nt)"),
         [one_or_many(update_keys, staying_then_per_key(update_keys, declare)) if simple
          else per_key(update_keys, "true")],
         [per_row(sql.SQL("SELECT * FROM ot o WHERE NOT EXISTS (SELECT 1 FROM nt n WHERE {})").format(o_n), "true",
                  after=row_after.get("UPDATE_OLD")),
          per_row(sql.SQL("SELECT * FROM nt"), "true", before=row_before.get("UPDATE_NEW"),
                  after=row_after.get("UPDATE_NEW"))]),
        ("DELETE", delete_keys, sql.SQL("(SELECT * FROM ot)"),
         [per_key(delete_keys, "true")],
         [per_row(sql.SQL("SELECT * FROM ot"), "true", after=row_after.get("DELETE"))]),
    ]
    for op, own_keys, rows, step, fallback in events:
        step = ([sessions_before[op]] if op in sessions_before else []) + step + dependents(rows, own_keys, False) + (
            [sessions_after[op]] if op in sessions_after else [])
        fallback = ([sql.SQL("v_failed := '{}';")] + [first for first, _again in fallback]
                    + dependents(rows, own_keys, True) + [again for _first, again in fallback])
        body.append(sql.SQL("IF TG_OP = {op} THEN BEGIN {step} EXCEPTION WHEN {errors} THEN {fb} END; END IF;").format(
            op=sql.Literal(op), step=_join(step, " "), errors=sql.SQL(DATA_ERRORS), fb=_join(fallback, " ")))
    if reverse_active:
        for seq in (sequences or {}).get(legacy, []):
            body.append(sql.SQL(
                "IF TG_OP = 'INSERT' THEN PERFORM setval({seq}::regclass, x.m) FROM (SELECT max({c}) AS m FROM nt) x "
                "WHERE x.m > coalesce(pg_sequence_last_value({seq}::regclass), 0); END IF;").format(
                seq=sql.Literal(seq["target_seq"]), c=_id(seq["column"])))
    body.extend(_unguard() if reverse_active else [sql.SQL("RETURN NULL;")])
    return _function(plan.fn("stmt_" + legacy), sql.SQL(""), sql.SQL("trigger"), declare, body)


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


# ---------------------------------------------------------------------------------- statements
def function_statements(plan, direction, sequences=None, reverse_active=False):
    """[(function name, statement)] to create for ``direction`` (the reverse direction re-creates the
    forward trigger functions with the loop marker and the sequence bumps)."""
    out = [("no_truncate", truncate_function(plan))]
    if direction == REVERSE:
        out += [_forward_trigger(plan, legacy, sequences, True) for legacy in plan.forward_tables()]
    if direction == FORWARD:
        for t in plan.tables:
            if t["target"] == CHAT_SESSIONS:
                out.append((CHAT_SESSIONS, chat_sessions_function(plan)))
            elif t["kind"] == "derived":
                out.append((t["target"], derived_sync_function(plan, t)))
        for t in plan.tables:
            if t["kind"] == "row":
                out.append((t["target"], row_sync_function(plan, t)))
        for legacy in plan.forward_tables():
            out.append(_forward_trigger(plan, legacy, sequences, reverse_active))
    else:
        missing = [t for t in plan.reverse_tables() if t not in plan.reverse_views]
        if missing:
            raise SyncError("reverse projections missing in %s: %s (sql/sync)" % (plan.mapping, ", ".join(missing)))
        for target in plan.reverse_tables():
            out.append(("rev_" + target, reverse_trigger_function(plan, target, sequences)))
        if plan.raw_tables():
            out.append(("rev_raw", raw_trigger_function(plan)))
    return out


def _forward_trigger(plan, legacy, sequences, reverse_active):
    """(function name, statement) of the forward trigger function of one legacy table: every legacy table is synced
    per statement, set-based (leaf tables) or keyed (the others)."""
    if legacy in plan.set_based_tables():
        return "stmt_" + legacy, statement_trigger_function(plan, legacy, sequences, reverse_active)
    return "stmt_" + legacy, keyed_statement_trigger_function(plan, legacy, sequences, reverse_active)


def trigger_tables(plan, direction):
    """[(schema, table, trigger function name)] that carry the triggers of ``direction``."""
    if direction == FORWARD:
        return [(plan.legacy, legacy, "stmt_" + legacy) for legacy in plan.forward_tables()]
    return [(plan.target, target, "rev_" + target) for target in plan.reverse_tables()]


def trigger_names(direction, raw=()):
    """The triggers one table carries for ``direction``: forward, its three statement triggers (INSERT, named as the
    row trigger of an installation from before statement-level sync was, UPDATE, DELETE) and the truncate guard;
    reverse, the row trigger, the truncate guard and the table's raw triggers."""
    if direction == FORWARD:
        return TRIGGER_NAMES[direction] + (STATEMENT_TRIGGERS["UPDATE"], STATEMENT_TRIGGERS["DELETE"])
    return TRIGGER_NAMES[direction] + tuple(raw)
