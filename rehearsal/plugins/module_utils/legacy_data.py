# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Synthetic legacy data: run sql/legacy/generate.sql, count, checksum, and remember what was generated.

The generator itself is set-based SQL (see the comment block at the top of sql/legacy/generate.sql);
this module only sets its parameters, runs it in the right schema and reports what it produced.
Schema names always go through ``psycopg2.sql.Identifier``; values are query parameters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import time
from decimal import ROUND_HALF_UP, Decimal

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through db.HAS_PSYCOPG2
    sql = None

# The 25 legacy tables, parents before children.
LEGACY_TABLES = (
    "users", "workshops", "team_members", "customers", "vehicles",
    "leads", "lead_notes", "chat_messages", "analytics_events",
    "services", "appointments", "appointment_services", "workshop_closures", "reviews",
    "subscriptions", "invoices",
    "chatbot_settings", "faq_entries", "email_templates",
    "notifications", "api_keys", "webhooks",
    "audit_logs", "gdpr_requests", "consent_log",
)

# bigserial tables whose sequence must stay ahead of max(id) after generation.
SERIAL_TABLES = ("chat_messages", "analytics_events", "audit_logs", "consent_log")

# Tables whose row count is not an exact function of the scale (random per-parent fan-out):
# relative tolerance a test should allow around expected_volumes().
APPROXIMATE = {"appointment_services": 0.05, "subscriptions": 0.35, "chat_messages": 0.0}

MARKER_PREFIX = "carbot.migration legacy_generate "

# base volume at scale 1.0 and the floor that keeps tiny scales coherent; mirrors generate.sql.
_BASE = {
    "users": (1500, None), "team_members": (1200, None), "customers": (100000, 50),
    "leads": (50000, 50), "lead_notes": (30000, 20), "chat_messages": (500000, 200),
    "analytics_events": (1000000, 200), "appointments": (30000, 50), "workshop_closures": (2000, 10),
    "reviews": (8000, 20), "invoices": (10000, 20), "notifications": (50000, 20), "api_keys": (300, 4),
    "webhooks": (200, 4), "audit_logs": (200000, 50), "gdpr_requests": (100, 4), "consent_log": (60000, 50),
}


def _round(value):
    """round() as PostgreSQL does it for numeric: half away from zero."""
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# The optional tenant shape (sql/legacy/generate.sql): name -> the generator's setting.
SHAPE_KEYS = ("workshops", "customers_per_workshop", "leads_per_workshop", "messages_per_conversation")


def check_shape(shape):
    """The shape without its unset keys, every value a positive int; ValueError otherwise."""
    out = {}
    for key, value in (shape or {}).items():
        if key not in SHAPE_KEYS:
            raise ValueError("unknown shape key %r (known: %s)" % (key, ", ".join(SHAPE_KEYS)))
        if value is None:
            continue
        if int(value) != value or int(value) <= 0:
            raise ValueError("shape %s must be a positive integer, got %r" % (key, value))
        out[key] = int(value)
    return out


def expected_volumes(scale, shape=None):
    """Target row count per legacy table for ``scale`` (1.0 = upper production estimates) and the optional
    tenant ``shape`` (workshops, customers_per_workshop, leads_per_workshop, messages_per_conversation).

    Exact for every table except those in ``APPROXIMATE`` (appointment_services ~1.5 per
    appointment, subscriptions 1-2 per workshop), where it is the expected value.
    """
    s = Decimal(str(scale))
    if s <= 0:
        raise ValueError("scale must be > 0, got %r" % (scale,))
    shape = check_shape(shape)
    workshops = shape.get("workshops") or max(8, _round(500 * s))
    gone = max(1, _round(workshops * Decimal("0.01")))  # deleted workshops whose child rows remain
    per_ws = workshops + gone
    out = {}
    for table, (base, floor) in _BASE.items():
        out[table] = _round(base * s) if floor is None else max(floor, _round(base * s))
    if "customers_per_workshop" in shape:
        out["customers"] = workshops * shape["customers_per_workshop"]
    if "leads_per_workshop" in shape:
        out["leads"] = workshops * shape["leads_per_workshop"]
    out["users"] = max(out["users"], 2 * workshops + 4)
    out["team_members"] = max(out["team_members"], workshops + 4)
    out["workshops"] = workshops
    out["vehicles"] = _round(out["customers"] * Decimal("1.2"))
    out["services"] = 20 * per_ws
    out["faq_entries"] = 15 * per_ws
    out["email_templates"] = 5 * per_ws
    out["chatbot_settings"] = per_ws
    out["subscriptions"] = _round(per_ws * Decimal("1.2"))
    out["appointment_services"] = _round(out["appointments"] * Decimal("1.5"))
    return {table: out[table] for table in LEGACY_TABLES}


def _begin_own_transaction(conn):
    """Start from a clean transaction boundary: commit what ``conn`` has open, leave autocommit off.

    Returns the autocommit setting to restore afterwards.
    """
    was_autocommit = conn.autocommit
    if was_autocommit:
        conn.autocommit = False
    else:
        conn.commit()
    return was_autocommit


def _qualified(schema, table):
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def table_counts(conn, schema):
    """Exact row count per legacy table (``count(*)``), in LEGACY_TABLES order."""
    counts = {}
    with conn.cursor() as cur:
        for table in LEGACY_TABLES:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(_qualified(schema, table)))
            counts[table] = cur.fetchone()[0]
    return counts


def existing_tables(conn, schema):
    """The legacy table names that exist in ``schema``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)",
            (schema, list(LEGACY_TABLES)),
        )
        return {row[0] for row in cur.fetchall()}


def primary_key_columns(conn, schema, table):
    """Primary-key column names of ``schema.table`` in key order (read from pg_index)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s ORDER BY k.pos",
            (schema, table),
        )
        return [row[0] for row in cur.fetchall()]


def content_checksums(conn, schema, tables=LEGACY_TABLES):
    """md5 per table over its rows in primary-key order: ``md5(string_agg(md5(row::text), '' ORDER BY pk))``.

    The text form of a row depends on session settings (TimeZone for timestamptz, DateStyle,
    extra_float_digits), so they are pinned for the duration of one transaction of its own (an open
    transaction of ``conn`` is committed first).
    """
    out = {}
    was_autocommit = _begin_own_transaction(conn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL timezone = 'UTC'; SET LOCAL datestyle = 'ISO, YMD'; "
                        "SET LOCAL intervalstyle = 'postgres'; SET LOCAL extra_float_digits = 1")
            for table in tables:
                order = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(col))
                                           for col in primary_key_columns(conn, schema, table))
                cur.execute(sql.SQL("SELECT coalesce(md5(string_agg(md5(t::text), '' ORDER BY {})), md5('')) "
                                    "FROM {} t").format(order, _qualified(schema, table)))
                out[table] = cur.fetchone()[0]
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.autocommit = was_autocommit
    return out


def combined_checksum(checksums):
    """One md5 over the per-table checksums (table order fixed by LEGACY_TABLES)."""
    text = "\n".join("%s=%s" % (table, checksums[table]) for table in LEGACY_TABLES if table in checksums)
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def generator_digest(sql_text):
    """sha256 of the generator SQL: a changed generator means different data for the same seed."""
    return hashlib.sha256(sql_text.encode("utf-8")).hexdigest()


def generate(conn, sql_text, seed, scale, schema, shape=None):
    """Run the generator in ``schema`` with ``seed``/``scale`` (and the optional tenant ``shape``, see
    expected_volumes) in one transaction and commit.

    Returns ``{"counts": {table: rows}, "elapsed_seconds": float}`` (elapsed covers the
    generator only, not the counting). An open transaction of ``conn`` is committed first.
    """
    seed = int(seed)
    scale_text = format(Decimal(str(scale)).normalize(), "f")
    if Decimal(scale_text) <= 0:
        raise ValueError("scale must be > 0, got %r" % (scale,))
    shape = check_shape(shape)
    was_autocommit = _begin_own_transaction(conn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
            cur.execute("SELECT set_config('carbot.seed', %s, true), set_config('carbot.scale', %s, true)",
                        (str(seed), scale_text))
            for key in SHAPE_KEYS:  # unset keys as '' (the default mix), so a session setting never leaks in
                cur.execute("SELECT set_config(%s, %s, true)", ("carbot." + key, str(shape.get(key, ""))))
            started = time.monotonic()
            cur.execute(sql_text)
            conn.commit()
            elapsed = time.monotonic() - started
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.autocommit = was_autocommit
    counts = table_counts(conn, schema)
    if not conn.autocommit:
        conn.commit()
    return {"counts": counts, "elapsed_seconds": round(elapsed, 3)}


def read_marker(conn, schema):
    """What the last generation recorded in ``COMMENT ON TABLE <schema>.workshops``, or None."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'workshops'",
            (schema,),
        )
        row = cur.fetchone()
    if not row or not row[0] or not row[0].startswith(MARKER_PREFIX):
        return None
    try:
        return json.loads(row[0][len(MARKER_PREFIX):])
    except ValueError:
        return None


def write_marker(conn, schema, marker):
    """Record ``marker`` (seed, scale, generator digest, counts, checksum) on the workshops table."""
    text = MARKER_PREFIX + json.dumps(marker, sort_keys=True, separators=(",", ":"))
    with conn.cursor() as cur:
        cur.execute(sql.SQL("COMMENT ON TABLE {} IS %s").format(_qualified(schema, "workshops")), (text,))
    if not conn.autocommit:
        conn.commit()
