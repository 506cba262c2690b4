# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Database-side helpers of the cutover: search_path settings, the app role's privileges, sequences.

Used by the modules ``search_path``, ``app_privileges`` and ``sequences``. Every identifier goes
through ``psycopg2.sql.Identifier``; every value is a query parameter. Connections come from
``db.connect()`` (the one connection path).

Terms used below:

* A *setting* is one row of ``pg_db_role_setting`` for ``search_path``. PostgreSQL applies, at the
  start of a session, the most specific one: role-in-database, then role (all databases), then
  database (all roles), then ``ALTER ROLE ALL``, then postgresql.conf. ``ALTER DATABASE ... SET`` is
  therefore overridden by any role-level setting of the app role, and it never reaches sessions that
  already run.
* A search_path value is handled as a list of schema names (the way ``SplitIdentifierString`` in
  PostgreSQL reads it), and written back element by element, so that restoring gives back exactly the
  same list (including quoted names such as ``"$user"``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import uuid

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - db.py reports the missing psycopg2
    sql = None

from ansible_collections.carbot.migration.plugins.module_utils import mapping

STATE_TABLE = "migration_cutover_state"

# --------------------------------------------------------------------------------------------------
# search_path values
# --------------------------------------------------------------------------------------------------


def split_search_path(value):
    """A search_path value (as stored in pg_db_role_setting) as a list of schema names.

    Mirrors PostgreSQL's SplitIdentifierString: comma-separated, blanks around elements ignored,
    double-quoted names kept verbatim (``""`` is a quote), unquoted names folded to lower case.
    """
    if value is None:
        return None
    if value.strip() == "":
        return []
    names, i, n = [], 0, len(value)
    while True:
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ValueError("unterminated quoted name in search_path %r" % value)
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(value[i])
                i += 1
            names.append("".join(buf))
        else:
            start = i
            while i < n and value[i] != "," and not value[i].isspace():
                i += 1
            if i == start:
                raise ValueError("empty element in search_path %r" % value)
            names.append(value[start:i].lower())
        while i < n and value[i].isspace():
            i += 1
        if i >= n:
            return names
        if value[i] != ",":
            raise ValueError("unexpected %r in search_path %r" % (value[i], value))
        i += 1


def _needs_quotes(name):
    if not name or not (name[0].islower() or name[0] == "_"):
        return True
    return any(not (c.islower() or c.isdigit() or c in "_$") for c in name)


def format_search_path(names):
    """The display form of a list of schema names (as SHOW search_path prints it); None stays None."""
    if names is None:
        return None
    out = []
    for name in names:
        out.append('"%s"' % name.replace('"', '""') if _needs_quotes(name) else name)
    return ", ".join(out)


def _set_path_sql(prefix, names):
    """``<prefix> SET search_path TO %s, %s ...`` (one parameter per name) or ``<prefix> RESET search_path``.

    search_path is a GUC_LIST_QUOTE setting: PostgreSQL quotes each string element as an identifier
    when needed, so passing the bare names as parameters reproduces the list exactly.
    """
    if names is None:
        return sql.SQL("{} RESET search_path").format(prefix), []
    if not names:
        return sql.SQL("{} SET search_path TO ''").format(prefix), []
    return sql.SQL("{} SET search_path TO {}").format(
        prefix, sql.SQL(", ").join(sql.Placeholder() * len(names))), list(names)


def set_database_path_sql(dbname, names):
    return _set_path_sql(sql.SQL("ALTER DATABASE {}").format(sql.Identifier(dbname)), names)


def set_role_database_path_sql(role, dbname, names):
    return _set_path_sql(sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(dbname)),
                         names)


SETTINGS_SQL = """
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE r.rolname END AS role,
       CASE WHEN s.setdatabase = 0 THEN NULL ELSE d.datname END AS database,
       substr(cfg, length('search_path=') + 1) AS value
  FROM pg_catalog.pg_db_role_setting s
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
 CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) AS cfg
 WHERE cfg LIKE 'search\\_path=%%'
   AND (s.setdatabase = 0 OR d.datname = %s)
 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST
"""


def read_path_settings(cur, dbname):
    """Every search_path setting that can apply to sessions in ``dbname``.

    Returns a dict: ``database`` (the ALTER DATABASE value as a list, or None), ``all_roles`` (ALTER ROLE ALL
    SET), and ``roles``: {role: {"role": list or None, "role_in_database": list or None}}.
    """
    cur.execute(SETTINGS_SQL, (dbname,))
    out = {"database": None, "all_roles": None, "roles": {}}
    for role, database, value in cur.fetchall():
        names = split_search_path(value)
        if role is None and database is not None:
            out["database"] = names
        elif role is None:
            out["all_roles"] = names
        else:
            entry = out["roles"].setdefault(role, {"role": None, "role_in_database": None})
            entry["role_in_database" if database is not None else "role"] = names
    return out


def effective_setting(settings, role):
    """Which setting a new session of ``role`` gets: (level, names); level None means postgresql.conf."""
    entry = settings["roles"].get(role) or {}
    if entry.get("role_in_database") is not None:
        return "role_in_database", entry["role_in_database"]
    if entry.get("role") is not None:
        return "role", entry["role"]
    if settings["database"] is not None:
        return "database", settings["database"]
    if settings["all_roles"] is not None:
        return "all_roles", settings["all_roles"]
    return None, None


def overrides(settings, dbname):
    """Role-level settings that beat the database-level one, as a list of dicts (for the report)."""
    found = []
    for role in sorted(settings["roles"]):
        entry = settings["roles"][role]
        for level in ("role", "role_in_database"):
            if entry[level] is not None:
                found.append({"role": role, "level": level, "database": dbname if level == "role_in_database" else None,
                              "value": format_search_path(entry[level]), "names": entry[level]})
    return found


# --------------------------------------------------------------------------------------------------
# The cutover state table (<target schema>.migration_cutover_state)
# --------------------------------------------------------------------------------------------------


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


class StateError(Exception):
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


# --------------------------------------------------------------------------------------------------
# Sessions that still run with the old search_path
# --------------------------------------------------------------------------------------------------

SESSIONS_SQL = """
SELECT pid, usename, state, backend_start
  FROM pg_catalog.pg_stat_activity
 WHERE datname = %s AND usename = ANY(%s) AND pid <> pg_catalog.pg_backend_pid()
   AND backend_type = 'client backend'
   AND backend_start < %s::timestamptz
 ORDER BY pid
"""


def old_sessions(cur, dbname, roles, since):
    """Sessions of ``roles`` in ``dbname`` that started before ``since``: they still have the path they
    started with (settings apply at session start only)."""
    cur.execute(SESSIONS_SQL, (dbname, list(roles), since))
    return [{"pid": pid, "role": role, "state": state, "backend_start": start.isoformat()}
            for pid, role, state, start in cur.fetchall()]


def terminate(cur, pids):
    """pg_terminate_backend for each pid; returns the pids that were signalled."""
    done = []
    for pid in pids:
        cur.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (pid,))
        if cur.fetchone()[0]:
            done.append(pid)
    return done


# --------------------------------------------------------------------------------------------------
# Catalog: tables, counterparts, sequences
# --------------------------------------------------------------------------------------------------


def tables_in(cur, schema):
    cur.execute("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1", (schema,))
    return [r[0] for r in cur.fetchall()]


def counterpart(target_table, legacy_tables):
    """The legacy table a target table mirrors: the mapping declaration's driving table, else the same name."""
    try:
        entry = mapping.by_target(target_table)
    except (KeyError, ValueError, LookupError):
        entry = None
    if entry and entry.get("source") in legacy_tables:
        return entry["source"]
    return target_table if target_table in legacy_tables else None


SEQUENCE_COLUMNS_SQL = """
SELECT c.relname AS table_name, a.attname AS column_name, a.attidentity,
       sn.nspname AS seq_schema, s.relname AS seq_name,
       pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS default_expr
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
  LEFT JOIN LATERAL (
        SELECT d.refobjid FROM pg_catalog.pg_depend d
         WHERE d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
           AND d.refclassid = 'pg_catalog.pg_class'::regclass
           AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.refobjid) = 'S'
        UNION ALL
        SELECT d.objid FROM pg_catalog.pg_depend d
         WHERE a.attidentity <> '' AND d.classid = 'pg_catalog.pg_class'::regclass
           AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = c.oid
           AND d.refobjsubid = a.attnum AND d.deptype = 'i'
        LIMIT 1) dep ON true
  JOIN pg_catalog.pg_class s ON s.oid = dep.refobjid
  JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
 ORDER BY 1, 2
"""


def sequence_columns(cur, schema):
    """Columns of ``schema``'s tables fed by a sequence (serial/bigserial defaults, identity, or a
    ``nextval`` default on any sequence), read from the catalog."""
    cur.execute(SEQUENCE_COLUMNS_SQL, (schema,))
    out = []
    for table, column, identity, seq_schema, seq_name, default_expr in cur.fetchall():
        out.append({"table": table, "column": column, "identity": {"a": "always", "d": "by default"}.get(identity),
                    "sequence_schema": seq_schema, "sequence": seq_name, "default": default_expr})
    return out


def sequence_position(cur, seq_schema, seq_name):
    """(last_value, is_called, increment): read from the sequence itself."""
    cur.execute(sql.SQL("SELECT last_value, is_called FROM {}.{}").format(
        sql.Identifier(seq_schema), sql.Identifier(seq_name)))
    last_value, is_called = cur.fetchone()
    cur.execute("SELECT increment_by FROM pg_catalog.pg_sequences WHERE schemaname = %s AND sequencename = %s",
                (seq_schema, seq_name))
    row = cur.fetchone()
    return last_value, is_called, (row[0] if row else 1)


def next_value(last_value, is_called, increment):
    return last_value + increment if is_called else last_value


def max_id(cur, schema, table, column):
    cur.execute(sql.SQL("SELECT max({}) FROM {}.{}").format(
        sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table)))
    return cur.fetchone()[0]


def column_exists(cur, schema, table, column):
    cur.execute("SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s AND NOT a.attisdropped",
                (schema, table, column))
    return cur.fetchone() is not None


def qualified(conn, schema, name):
    """``"schema"."name"`` as text, e.g. for a ``::regclass`` literal."""
    return sql.Identifier(schema, name).as_string(conn)


# --------------------------------------------------------------------------------------------------
# A write through the application role (the health probe)
# --------------------------------------------------------------------------------------------------

REQUIRED_COLUMNS_SQL = """
SELECT a.attname, bt.typname, bt.typtype, bt.typcategory, bt.oid, fk.ref_schema, fk.ref_table, fk.ref_column
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  LEFT JOIN LATERAL (
        SELECT rn.nspname AS ref_schema, rc.relname AS ref_table, ra.attname AS ref_column
          FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
          JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
          JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1]
         WHERE k.conrelid = a.attrelid AND k.contype = 'f' AND k.conkey = ARRAY[a.attnum]
         LIMIT 1) fk ON true
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
 ORDER BY a.attnum
"""


class ProbeError(Exception):
    pass


def _probe_value(cur, column, typname, typtype, typcategory, typoid, fk):
    if fk[0] is not None:
        cur.execute(sql.SQL("SELECT {} FROM {}.{} LIMIT 1").format(
            sql.Identifier(fk[2]), sql.Identifier(fk[0]), sql.Identifier(fk[1])))
        row = cur.fetchone()
        if row is None:
            raise ProbeError("column %s references %s.%s, which has no rows" % (column, fk[0], fk[1]))
        return row[0]
    if typname == "uuid":
        return str(uuid.uuid4())
    if typtype == "e":
        cur.execute("SELECT enumlabel FROM pg_catalog.pg_enum WHERE enumtypid = %s ORDER BY enumsortorder LIMIT 1",
                    (typoid,))
        return cur.fetchone()[0]
    if typname in ("json", "jsonb"):
        return "{}"
    by_category = {"S": "cutover-probe", "N": 0, "B": False, "D": "now", "A": "{}", "I": "127.0.0.1"}
    if typcategory in by_category:
        return by_category[typcategory]
    raise ProbeError("no probe value for column %s of type %s" % (column, typname))


def probe_insert(cur, schema, table, returning):
    """Insert one row into ``schema.table`` with only the columns nothing else would fill, and return
    the value of ``returning`` (the caller rolls back). ``schema`` None means: resolve ``table`` on the
    session's search_path, as the application does."""
    if schema is None:
        cur.execute("SELECT n.nspname, c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                    " ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(%s))",
                    (table,))
    else:
        cur.execute("SELECT n.nspname, c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                    " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s", (schema, table))
    row = cur.fetchone()
    if row is None:
        raise ProbeError("table %s does not resolve" % (table if schema is None else "%s.%s" % (schema, table)))
    resolved, oid = row
    cur.execute(REQUIRED_COLUMNS_SQL, (oid,))
    names, values = [], []
    for column, typname, typtype, typcategory, typoid, *fk in cur.fetchall():
        names.append(column)
        values.append(_probe_value(cur, column, typname, typtype, typcategory, typoid, fk))
    target = sql.Identifier(table) if schema is None else sql.Identifier(schema, table)
    if names:
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
            target, sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)), sql.Identifier(returning))
    else:
        statement = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}").format(target, sql.Identifier(returning))
    cur.execute(statement, values)
    return resolved, cur.fetchone()[0]


def resolve_schema(cur, table):
    """Schema in which the unqualified ``table`` resolves on this session's search_path, or None."""
    cur.execute("SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(%s))", (table,))
    row = cur.fetchone()
    return row[0] if row else None


def utc_now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
