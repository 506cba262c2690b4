# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row keys as SQL expressions, shared by the copy engine, the sync triggers and validation.

A key is written as text in ``migration_quarantine.source_pk`` (one column: its text; composite keys: a
``text[]`` literal), hashed for the per-row advisory lock of the sync functions, and the lock class of a
target table is ``LOCK_BASE`` + its index in the declaration. The copy engine takes the same locks
(shared) as the sync functions (exclusive), so both must compute them here. Builds psycopg2.sql objects
only; no database.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through db.require_psycopg2
    sql = None

# advisory lock class ids: LOCK_BASE + index of the target in TABLES
LOCK_BASE = 0x43420000


def key_text(exprs):
    """The quarantine's source_pk text of a key (expressions), as the copy engine writes it."""
    if len(exprs) == 1:
        return sql.SQL("({})::text").format(exprs[0])
    return sql.SQL("ARRAY[{}]::text").format(sql.SQL(", ").join(sql.SQL("({})::text").format(e) for e in exprs))


def key_text_array(names, prefix=None):
    """``ARRAY[[prefix.]a::text, ..]`` of key columns."""
    parts = []
    for n in names:
        ident = sql.SQL("{}.{}").format(sql.Identifier(prefix), sql.Identifier(n)) if prefix else sql.Identifier(n)
        parts.append(sql.SQL("{}::text").format(ident))
    return sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(parts))


def lock_id(tables, target):
    """The advisory lock class of ``target``'s sync function: LOCK_BASE + its index in the declaration.
    The copy engine takes the same locks (shared) through this and :func:`key_hash`."""
    return LOCK_BASE + [t["target"] for t in tables].index(target)


def key_hash(exprs):
    """The advisory lock key of one row's key (expressions), as every sync function computes it."""
    return sql.SQL("hashtext({})").format(key_text(exprs))
