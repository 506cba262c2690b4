# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cutover state table ``<target schema>.migration_cutover_state``: what the search_path switch recorded,
so that the way back replays it; owned by the migration's role and tamper-evident (digests in its COMMENT)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.carbot.migration.plugins.module_utils.errors import PreconditionError

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - db.require_psycopg2 reports the missing psycopg2
    sql = None

STATE_TABLE = "migration_cutover_state"


# Who may touch the state table: its owner (the migration's role) only. ``search_path`` replays what it
# records on the way back, so whoever could write it could steer the rollback (issue 12, item 7). Default
# privileges of the target schema (carbot.migration.app_privileges gives the app role some, so that later
# app tables are usable) apply to it as to any new table; they are revoked right after it is created, in the
# same transaction, and on every later write.
#
# Tampering with a row is detected too: a sha256 of each key's value is kept in the table's COMMENT, which
# only the owner can change (privileges on a table never include COMMENT). A value whose digest does not
# match is refused (:func:`read_state` with ``verify``).
DIGEST_PREFIX = "carbot.migration state digests: "


class StateError(PreconditionError):
    """The recorded state cannot be trusted (changed outside carbot.migration, or unreadable)."""


def lock_down(cur, schema, table):
    """Revoke every privilege on ``schema.table`` and the sequences it owns from every role but the owner
    (PUBLIC included). Returns the statements run (as text)."""
    cur.execute(
        "SELECT c.oid, c.relkind, n.nspname, c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
        " UNION ALL"
        " SELECT s.oid, s.relkind, sn.nspname, s.relname FROM pg_catalog.pg_depend d"
        " JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace"
        " WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass"
        " AND d.deptype IN ('a', 'i') AND d.refobjid = pg_catalog.to_regclass(pg_catalog.format('%%I.%%I', %s::text,"
        " %s::text))", (schema, table, schema, table))
    done = []
    for oid, relkind, nsp, name in cur.fetchall():
        cur.execute("SELECT DISTINCT CASE WHEN x.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(x.grantee) END"
                    " FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) x"
                    " WHERE c.oid = %s AND x.grantee <> c.relowner ORDER BY 1", (oid,))
        for (grantee,) in cur.fetchall():
            stmt = sql.SQL("REVOKE ALL ON {} {} FROM {}").format(
                sql.SQL("SEQUENCE" if relkind == "S" else "TABLE"), sql.Identifier(nsp, name),
                sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee))
            cur.execute(stmt)
            done.append(stmt.as_string(cur.connection))
    return done


def ensure_state_table(cur, schema):
    """Create the state table if absent and take every privilege on it away from all but its owner."""
    cur.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {}.{} ("
        " key text PRIMARY KEY,"
        " value jsonb NOT NULL,"
        " updated_at timestamptz NOT NULL DEFAULT pg_catalog.now())").format(
            sql.Identifier(schema), sql.Identifier(STATE_TABLE)))
    return lock_down(cur, schema, STATE_TABLE)


def state_table_exists(cur, schema):
    cur.execute("SELECT pg_catalog.to_regclass(pg_catalog.format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
                (schema, STATE_TABLE))
    return cur.fetchone()[0]


def state_digest(value):
    """sha256 of a state value in one canonical JSON form (what jsonb gives back hashes the same)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _digests(cur, schema):
    cur.execute("SELECT pg_catalog.obj_description(pg_catalog.to_regclass(pg_catalog.format('%%I.%%I', %s::text,"
                " %s::text)), 'pg_class')", (schema, STATE_TABLE))
    row = cur.fetchone()
    text = row[0] if row else None
    if not text or not text.startswith(DIGEST_PREFIX):
        return {}
    try:
        found = json.loads(text[len(DIGEST_PREFIX):])
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def read_state(cur, schema, key, verify=False):
    """The value recorded under ``key``, or None. With ``verify``, a value whose digest (kept in the table's
    owner-only COMMENT by :func:`write_state`) is missing or does not match raises :class:`StateError`."""
    if not state_table_exists(cur, schema):
        return None
    cur.execute(sql.SQL("SELECT value FROM {}.{} WHERE key = %s").format(
        sql.Identifier(schema), sql.Identifier(STATE_TABLE)), (key,))
    row = cur.fetchone()
    value = row[0] if row else None
    if verify and value is not None:
        recorded = _digests(cur, schema).get(key)
        if recorded != state_digest(value):
            raise StateError(
                "the %r row of %s.%s was changed outside carbot.migration (its sha256 %s, recorded %s): refusing "
                "to act on it. Find out who wrote it (the table must be writable by its owner only), then set "
                "the values by hand." % (key, schema, STATE_TABLE, state_digest(value)[:12],
                                         (recorded or "none")[:12]))
    return value


def write_state(cur, schema, key, value):
    lock_down(cur, schema, STATE_TABLE)
    cur.execute(sql.SQL(
        "INSERT INTO {}.{} (key, value) VALUES (%s, %s::jsonb)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = pg_catalog.now()").format(
            sql.Identifier(schema), sql.Identifier(STATE_TABLE)), (key, json.dumps(value, sort_keys=True)))
    cur.execute(sql.SQL("SELECT value FROM {}.{} WHERE key = %s").format(
        sql.Identifier(schema), sql.Identifier(STATE_TABLE)), (key,))
    stored = cur.fetchone()[0]  # as jsonb gives it back
    digests = dict(_digests(cur, schema), **{key: state_digest(stored)})
    cur.execute(sql.SQL("COMMENT ON TABLE {}.{} IS {}").format(
        sql.Identifier(schema), sql.Identifier(STATE_TABLE),
        sql.Literal(DIGEST_PREFIX + json.dumps(digests, sort_keys=True))))


def now_iso(cur):
    cur.execute("SELECT pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC',"
                " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    return cur.fetchone()[0]
