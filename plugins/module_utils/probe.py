# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health probe: one write through the application role into a table, with made-up values for its
required columns, rolled back by the caller (modules search_path, sequences and version_role)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import uuid

from ansible_collections.carbot.migration.plugins.module_utils.errors import PreconditionError

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - db.require_psycopg2 reports the missing psycopg2
    sql = None

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


class ProbeError(PreconditionError):
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
