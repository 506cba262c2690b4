# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The id sequences of the tables on both sides: which column owns which sequence, where it stands, the
highest id (module sequences, app_privileges)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - db.require_psycopg2 reports the missing psycopg2
    sql = None

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
