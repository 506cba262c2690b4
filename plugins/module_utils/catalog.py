# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog reads of the cutover: the tables of a schema, a target table's legacy counterpart, columns, and
where an unqualified name resolves."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils import mapping

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - db.require_psycopg2 reports the missing psycopg2
    sql = None


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


def column_exists(cur, schema, table, column):
    cur.execute("SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s AND NOT a.attisdropped",
                (schema, table, column))
    return cur.fetchone() is not None


def qualified(conn, schema, name):
    """``"schema"."name"`` as text, e.g. for a ``::regclass`` literal."""
    return sql.Identifier(schema, name).as_string(conn)


def resolve_schema(cur, table):
    """Schema in which the unqualified ``table`` resolves on this session's search_path, or None."""
    cur.execute("SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(%s))", (table,))
    row = cur.fetchone()
    return row[0] if row else None
