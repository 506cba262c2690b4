# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mapping declaration: how every carbot_v2 table is derived from the legacy tables.

One declaration, three uses (docs/architecture.md): the copy, the sync triggers and the
validation all read ``TABLES``; the projection views ``map_<target>`` in ``sql/mapping/``
hold the rules. Adding a column is one edit in the view (and the target DDL); the
declaration only changes when a table, a key or a reference changes.

Each entry of ``TABLES`` (dependency order: parents before children) is a dict:

``target``      target table name (in the target schema)
``view``        projection view name (in the mapping schema), ``map_<target>``
``source``      the driving legacy table
``source_key``  the driving table's primary-key columns, keyset order
``target_key``  the target's primary-key columns
``view_key``    the key columns of the view: ``["_src_key"]`` or ``["_src_key1", "_src_key2"]``
``kind``        ``row`` (one target row per legacy row, legacy PK kept) or ``derived``
                (aggregated; the view's ``_src_key`` is the target key, a deterministic UUID v3)
``reads``       every legacy table whose rows can change the view's output (sync triggers)
``depends_on``  target tables that must be copied first
``references``  the foreign keys: ``{"column", "parent", "required", "on_delete"}``. ``required``
                references quarantine the row when the parent is missing or quarantined (and
                ``ON DELETE CASCADE``); optional ones are set NULL (and ``ON DELETE SET NULL``), so
                the target's delete behaviour agrees with what the view would produce.
``set_aside``   the keys of the row's ``legacy_raw`` (the legacy values a rule could not carry into a typed
                column) and the target columns each one stands for: ``{"email": ["email"]}``. When the
                application writes one of those columns in carbot_v2, the set-aside original is dropped
                (the reverse sync's ``carbot_sync_raw_<target>`` trigger), so that it never comes back
                over the new value (docs/sync.md, "Set-aside values follow the live data").

Foreign keys are created from ``references`` (``foreign_key_statements``), not from a SQL
file: they are added after the copy, ``NOT VALID`` first and validated later, because the
sync triggers may write a child row before the copy has reached its parent.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import hashlib
import json
import os
import uuid

from ansible_collections.carbot.migration.plugins.module_utils import schemas

try:
    from psycopg2 import sql
    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - reported by the modules
    HAS_PSYCOPG2 = False

# Namespace of every deterministic id the migration derives: uuid3(NAMESPACE_URL, 'urn:carbot:migration').
# Hard-coded in sql/mapping/020_keys.sql as well; tests/unit/test_mapping_rules.py checks they agree.
ID_NAMESPACE = uuid.UUID("b05a01f8-3ffe-3aaf-9af9-04ffba2dd566")

LEGACY_TABLES = (
    "users", "workshops", "team_members", "customers", "vehicles",
    "leads", "lead_notes", "chat_messages", "analytics_events",
    "services", "appointments", "appointment_services", "workshop_closures", "reviews",
    "subscriptions", "invoices",
    "chatbot_settings", "faq_entries", "email_templates",
    "notifications", "api_keys", "webhooks",
    "audit_logs", "gdpr_requests", "consent_log",
)

# Target tables that belong to the migration itself (040_migration_tables.sql), not to TABLES.
MIGRATION_TABLES = ("migration_status", "migration_quarantine")

# Files of sql/v2 that are not part of the data model (none today; FKs come from TABLES).
SQL_SUBDIRS = ("v2", "mapping")


def _ref(column, parent, required, on_delete=None):
    return {
        "column": column,
        "parent": parent,
        "required": required,
        "on_delete": on_delete or ("CASCADE" if required else "SET NULL"),
    }


def _table(target, source, reads=(), references=(), kind="row", source_key=("id",), target_key=None,
           depends_on=(), set_aside=None):
    target_key = list(target_key or source_key)
    view_key = ["_src_key"] if len(target_key if kind == "derived" else source_key) == 1 else [
        "_src_key%d" % (i + 1) for i in range(len(source_key))]
    deps = list(depends_on)
    for ref in references:
        if ref["parent"] != target and ref["parent"] not in deps:
            deps.append(ref["parent"])
    all_reads = [source] + [t for t in reads if t != source]
    return {
        "target": target,
        "view": "map_" + target,
        "source": source,
        "source_key": list(source_key),
        "target_key": target_key,
        "view_key": view_key,
        "kind": kind,
        "reads": all_reads,
        "depends_on": deps,
        "references": list(references),
        "set_aside": dict(set_aside or {}),
    }


_W = _ref("workshop_id", "workshops", True)

TABLES = [
    # Tenancy and people
    _table("organizations", "workshops", kind="derived", reads=("users",)),
    _table("users", "users", set_aside={"email": ["email"], "email_duplicate_of": ["email"]}),
    _table("workshops", "workshops", reads=("users",),
           references=(_ref("organization_id", "organizations", True, on_delete="RESTRICT"),
                       _ref("owner_id", "users", False)),
           set_aside={"owner_email": ["email"], "postal_code": ["postal_code"]}),
    _table("team_members", "team_members", reads=("workshops", "users"),
           references=(_W, _ref("user_id", "users", True))),
    _table("customers", "customers", reads=("workshops",), references=(_W,),
           set_aside={"name": ["title", "first_name", "last_name"], "email": ["email"],
                      "postal_code": ["postal_code"]}),
    _table("customer_vehicles", "vehicles", reads=("customers", "workshops"),
           references=(_ref("customer_id", "customers", True), _W),
           set_aside={"year": ["year"], "vin": ["vin"], "mileage_km": ["mileage_km"]}),
    # Leads and chat
    _table("leads", "leads", reads=("workshops",), references=(_W,),
           set_aside={"email": ["email"], "lead_score": ["lead_score"]}),
    _table("lead_notes", "lead_notes", reads=("leads", "workshops", "users"),
           references=(_ref("lead_id", "leads", True), _ref("user_id", "users", False))),
    _table("chat_sessions", "chat_messages", kind="derived", reads=("workshops",), references=(_W,)),
    _table("chat_messages", "chat_messages", reads=("workshops", "leads"),
           references=(_ref("session_id", "chat_sessions", True), _W, _ref("lead_id", "leads", False))),
    _table("analytics_events", "analytics_events", reads=("workshops",), references=(_W,)),
    # Workshop operations
    _table("services", "services", reads=("workshops",), references=(_W,),
           set_aside={"price_cents": ["price_cents"], "duration_minutes": ["duration_minutes"]}),
    _table("appointments", "appointments", reads=("workshops", "customers", "vehicles", "leads"),
           references=(_W, _ref("customer_id", "customers", False),
                       _ref("vehicle_id", "customer_vehicles", False), _ref("lead_id", "leads", False)),
           set_aside={"duration_minutes": ["duration_minutes"]}),
    _table("appointment_services", "appointment_services", source_key=("appointment_id", "service_id"),
           reads=("appointments", "services", "workshops"),
           references=(_ref("appointment_id", "appointments", True), _ref("service_id", "services", True)),
           set_aside={"price_cents": ["price_cents"]}),
    _table("workshop_closures", "workshop_closures", reads=("workshops",), references=(_W,)),
    _table("reviews", "reviews", reads=("workshops", "customers"),
           references=(_W, _ref("customer_id", "customers", False))),
    # Billing
    _table("subscriptions", "subscriptions", reads=("workshops",), references=(_W,)),
    _table("invoices", "invoices", reads=("workshops", "subscriptions"),
           references=(_W, _ref("subscription_id", "subscriptions", False))),
    # Chatbot configuration
    _table("chatbot_settings", "chatbot_settings", source_key=("workshop_id",), reads=("workshops",),
           references=(_W,)),
    _table("faq_entries", "faq_entries", reads=("workshops",), references=(_W,)),
    _table("email_templates", "email_templates", reads=("workshops",), references=(_W,)),
    # Platform
    _table("notifications", "notifications", reads=("workshops", "users"),
           references=(_W, _ref("user_id", "users", False))),
    _table("api_keys", "api_keys", reads=("workshops",), references=(_W,)),
    _table("webhooks", "webhooks", reads=("workshops",), references=(_W,)),
    # Compliance: records of history keep the ids they name, without foreign keys.
    _table("audit_logs", "audit_logs"),
    _table("gdpr_requests", "gdpr_requests", set_aside={"requester_email": ["requester_email"]}),
    _table("consent_log", "consent_log"),
]


def by_target(name):
    """The declaration entry of target table ``name`` (KeyError if there is none)."""
    for entry in TABLES:
        if entry["target"] == name:
            return entry
    raise KeyError("no mapping for target table %r" % name)


def legacy_tables():
    """The 25 legacy tables, in the order of docs/mapping.md."""
    return list(LEGACY_TABLES)


def target_tables():
    """Target tables that receive data, in dependency order."""
    return [entry["target"] for entry in TABLES]


def organization_id(owner_key):
    """Python twin of the SQL rule: the id of the organization of an owner key."""
    return uuid.uuid3(ID_NAMESPACE, "organization:" + owner_key)


def chat_session_id(workshop_id, kunde_id):
    """Python twin of the SQL rule: the id of the chat session of (workshop_id, kunde_id)."""
    return uuid.uuid3(ID_NAMESPACE, "chat_session:%s/%s" % (workshop_id, kunde_id))


# --- SQL files --------------------------------------------------------------------------------

def sql_files(directory):
    """The .sql files of ``directory``, in name order (the order they are applied in)."""
    return sorted(glob.glob(os.path.join(directory, "*.sql")))


def sql_files_checksum(sql_dir, subdirs=SQL_SUBDIRS):
    """sha256 over the names and contents of the schema and mapping SQL files, and over the declaration
    (``TABLES``: the generated report views and the foreign keys come from it), as hex. A change to either
    makes schema_apply apply the mapping again."""
    digest = hashlib.sha256()
    for sub in subdirs:
        for path in sql_files(os.path.join(sql_dir, sub)):
            digest.update(("%s/%s\0" % (sub, os.path.basename(path))).encode("utf-8"))
            with open(path, "rb") as handle:
                digest.update(handle.read())
            digest.update(b"\0")
    digest.update(b"declaration\0")
    digest.update(json.dumps(TABLES, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def search_path_statement(schemas):
    """``SET LOCAL search_path TO "a", "b"``, every name quoted as an identifier."""
    return sql.SQL("SET LOCAL search_path TO {}").format(sql.SQL(", ").join(sql.Identifier(s) for s in schemas))


def apply_sql_files(conn, directory, search_path_schemas):
    """Run the .sql files of ``directory`` in name order inside the caller's transaction.

    Each file runs after ``SET LOCAL search_path`` to ``search_path_schemas`` (quoted with
    psycopg2.sql.Identifier). The caller commits; returns the file names applied.
    """
    if conn.autocommit:
        raise ValueError("apply_sql_files needs a transaction (autocommit off): SET LOCAL would not stick")
    applied = []
    with conn.cursor() as cur:
        for path in sql_files(directory):
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            cur.execute(search_path_statement(search_path_schemas))
            cur.execute(text)
            applied.append(os.path.basename(path))
    return applied


def mapping_search_path(mapping_schema, legacy_schema, target_schema):
    """search_path for sql/mapping: mapping first, legacy second (the views bind the legacy tables),
    target last, so that the views' casts find the target's enum types (no legacy object may
    share a name with a target type; schema_apply checks this)."""
    return [mapping_schema, legacy_schema, target_schema]


def ensure_schema(conn, name):
    """CREATE SCHEMA IF NOT EXISTS, with the name quoted."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))


def apply_all(conn, sql_dir, target_schema=schemas.TARGET_SCHEMA, mapping_schema=schemas.MAPPING_SCHEMA,
              legacy_schema=schemas.LEGACY_SCHEMA):
    """Create both schemas and apply sql/v2 then sql/mapping (in the caller's transaction).

    The one way to build the target and the mapping: schema_apply and the tests use it.
    Returns ``{"v2": [files], "mapping": [files]}``.
    """
    ensure_schema(conn, target_schema)
    ensure_schema(conn, mapping_schema)
    applied = {
        "v2": apply_sql_files(conn, os.path.join(sql_dir, "v2"), [target_schema]),
        "mapping": apply_sql_files(conn, os.path.join(sql_dir, "mapping"),
                                   mapping_search_path(mapping_schema, legacy_schema, target_schema)),
    }
    # After the files: the generated reports read the projection views the files create (and 000_reset.sql has
    # dropped the previous versions of these views with every other view of the mapping schema).
    applied["generated"] = create_report_views(conn, mapping_schema, legacy_schema)
    return applied


# --- Reports generated from the declaration -------------------------------------------------------
# sql/mapping/090_reports.sql holds the report that needs the rules (unmapped_values); these two only need
# the declaration, so they are composed from it here and cannot drift from it: a reference or a table added to
# TABLES is in them at the next schema_apply. Every name is an identifier (psycopg2.sql.Identifier), qualified
# with its schema, so the views do not depend on the search_path they are created under.

REPORT_VIEWS = ("dangling_references", "quarantine_forecast")


def optional_references():
    """``[(entry, ref), ...]``: every optional reference of a ``row`` table, in declaration order.

    These are the references whose dangling legacy value the view sets NULL instead of quarantining the row
    (``required: False``). Derived tables are left out: they have no legacy row of their own to compare with
    (none has an optional reference today)."""
    return [(entry, ref) for entry in TABLES if entry["kind"] == "row"
            for ref in entry["references"] if not ref["required"]]


def _key_join(entry, source_alias, view_alias):
    """``m._src_key = s.id`` (or ``m._src_key1 = s.a AND m._src_key2 = s.b``) for a ``row`` entry."""
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(view_alias, vkey), sql.Identifier(source_alias, skey))
        for vkey, skey in zip(entry["view_key"], entry["source_key"]))


def dangling_references_query(mapping_schema, legacy_schema):
    """The SELECT of ``dangling_references(source_table, column_name, parent_table, n)``.

    One arm per optional reference: legacy rows whose value is set (``s.<column> IS NOT NULL``) and whose
    projected row carries NULL there (the parent is missing or quarantined), counting only rows that are
    migrated (``_quarantine_reason IS NULL``). Tables are named as in the legacy schema (the source table and
    the parent's source table), the column as in both (a reference column keeps its legacy name)."""
    arms = []
    for entry, ref in optional_references():
        parent_source = by_target(ref["parent"])["source"]
        arms.append(sql.SQL(
            "SELECT {source_name}::text AS source_table, {column_name}::text AS column_name, "
            "{parent_name}::text AS parent_table, pg_catalog.count(*) AS n "
            "FROM {source} s JOIN {view} m ON {join} "
            "WHERE {s_col} IS NOT NULL AND {m_col} IS NULL AND m._quarantine_reason IS NULL").format(
                source_name=sql.Literal(entry["source"]), column_name=sql.Literal(ref["column"]),
                parent_name=sql.Literal(parent_source),
                source=sql.Identifier(legacy_schema, entry["source"]),
                view=sql.Identifier(mapping_schema, entry["view"]),
                join=_key_join(entry, "s", "m"),
                s_col=sql.Identifier("s", ref["column"]), m_col=sql.Identifier("m", ref["column"])))
    return sql.SQL("\nUNION ALL\n").join(arms)


def quarantine_forecast_query(mapping_schema):
    """The SELECT of ``quarantine_forecast(target_table, reason, n)``: per projection view of ``TABLES`` the rows
    it would quarantine now, by reason (what migration_quarantine holds once the copy is through)."""
    return sql.SQL("\nUNION ALL\n").join(
        sql.SQL("SELECT {name}::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n "
                "FROM {view} WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason").format(
                    name=sql.Literal(entry["target"]), view=sql.Identifier(mapping_schema, entry["view"]))
        for entry in TABLES)


def report_view_statements(mapping_schema, legacy_schema):
    """``[(view name, CREATE OR REPLACE VIEW statement, COMMENT statement), ...]`` of the generated reports."""
    out = []
    for name, query, comment in (
            ("dangling_references", dangling_references_query(mapping_schema, legacy_schema),
             "Optional references whose legacy value points at no migrated row (the migrated row carries NULL "
             "there), per source table and column; generated from the mapping declaration (mapping.py)."),
            ("quarantine_forecast", quarantine_forecast_query(mapping_schema),
             "Rows each projection view would quarantine now, by reason; generated from the mapping "
             "declaration (mapping.py).")):
        view = sql.Identifier(mapping_schema, name)
        out.append((name, sql.SQL("CREATE OR REPLACE VIEW {} AS\n{}").format(view, query),
                    sql.SQL("COMMENT ON VIEW {} IS {}").format(view, sql.Literal(comment))))
    return out


def create_report_views(conn, mapping_schema, legacy_schema):
    """Create the generated report views in the caller's transaction; returns their names."""
    names = []
    with conn.cursor() as cur:
        for name, create, comment in report_view_statements(mapping_schema, legacy_schema):
            cur.execute(create)
            cur.execute(comment)
            names.append(name)
    return names


# --- Catalog ----------------------------------------------------------------------------------

_COLUMNS_SQL = """
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s
   AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
 ORDER BY a.attnum
"""


def column_types(conn, schema, relation):
    """``[(name, type), ...]`` of a table or view, generated columns left out, in column order."""
    with conn.cursor() as cur:
        cur.execute(_COLUMNS_SQL, (schema, relation))
        return [tuple(row) for row in cur.fetchall()]


def target_columns(conn, target_schema, table):
    """The insertable columns of a target table (generated columns left out), in column order."""
    return [column[0] for column in column_types(conn, target_schema, table)]


def view_columns(conn, mapping_schema, view):
    """The view's target columns: all but ``_src_key*`` and ``_quarantine_reason``."""
    return [column[0] for column in column_types(conn, mapping_schema, view) if not column[0].startswith("_")]


# --- Foreign keys -----------------------------------------------------------------------------

def foreign_keys():
    """Every foreign key of the target, from the declaration: dicts with table, column, parent,
    parent_column, on_delete and the constraint name ``<table>_<column>_fkey``."""
    out = []
    for entry in TABLES:
        for ref in entry["references"]:
            parent = by_target(ref["parent"])
            out.append({
                "table": entry["target"],
                "column": ref["column"],
                "parent": ref["parent"],
                "parent_column": parent["target_key"][0],
                "on_delete": ref["on_delete"],
                "name": "%s_%s_fkey" % (entry["target"], ref["column"]),
            })
    return out


_ON_DELETE = {"CASCADE": "CASCADE", "SET NULL": "SET NULL", "RESTRICT": "RESTRICT", "NO ACTION": "NO ACTION"}


def foreign_key_statement(target_schema, fk, not_valid=True):
    """``ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY ...`` for one entry of ``foreign_keys()``."""
    text = "ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {parent} ({pcol}) ON DELETE "
    text += _ON_DELETE[fk["on_delete"]]
    if not_valid:
        text += " NOT VALID"
    return sql.SQL(text).format(
        table=sql.Identifier(target_schema, fk["table"]), name=sql.Identifier(fk["name"]),
        column=sql.Identifier(fk["column"]), parent=sql.Identifier(target_schema, fk["parent"]),
        pcol=sql.Identifier(fk["parent_column"]))


def existing_foreign_keys(conn, target_schema):
    """``{constraint name: validated?}`` of the foreign keys in the target schema."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT con.conname, con.convalidated FROM pg_catalog.pg_constraint con "
            "JOIN pg_catalog.pg_namespace n ON n.oid = con.connamespace "
            "WHERE n.nspname = %s AND con.contype = 'f'", (target_schema,))
        return dict(cur.fetchall())


def add_foreign_keys(conn, target_schema):
    """Add the missing foreign keys as NOT VALID (cheap: no scan, a short lock per table).
    Returns the names added. The caller commits (one transaction per call is fine: the locks
    are SHARE ROW EXCLUSIVE on child and parent, held only for the catalog change)."""
    have = existing_foreign_keys(conn, target_schema)
    added = []
    with conn.cursor() as cur:
        for fk in foreign_keys():
            if fk["name"] not in have:
                cur.execute(foreign_key_statement(target_schema, fk, not_valid=True))
                added.append(fk["name"])
    return added


def validate_foreign_keys(conn, target_schema):
    """VALIDATE every NOT VALID foreign key of the declaration (SHARE UPDATE EXCLUSIVE: writes go on).
    Returns the names validated."""
    have = existing_foreign_keys(conn, target_schema)
    done = []
    with conn.cursor() as cur:
        for fk in foreign_keys():
            if have.get(fk["name"]) is False:
                cur.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                    sql.Identifier(target_schema, fk["table"]), sql.Identifier(fk["name"])))
                done.append(fk["name"])
    return done
