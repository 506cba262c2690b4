#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: schema_apply
short_description: Create the carbot_v2 schema and the mapping (rule functions and projection views)
description:
  - Creates the target schema (C(carbot_v2)) and the mapping schema (C(carbot_migration)) when they are absent,
    then applies the SQL files of O(sql_dir)C(/v2) with C(search_path) set to the target schema, and the files of
    O(sql_dir)C(/mapping) with C(search_path) set to the mapping, legacy and target schemas (in that order), all
    in one transaction. Schema names are quoted as identifiers, never pasted into SQL.
  - The report views C(dangling_references) and C(quarantine_forecast) are then generated from the mapping
    declaration (C(plugins/module_utils/mapping.py), C(create_report_views)), in the same transaction.
  - Idempotent. The sha256 of the SQL files and of the mapping declaration is recorded in a C(COMMENT ON SCHEMA)
    of the target schema; when it matches and every table and view of the mapping declaration exists, nothing is
    executed and the module reports C(changed=false).
  - Refuses to apply the mapping when a legacy table is missing from O(legacy_schema) (a view would silently
    bind a target table of the same name), when the legacy schema holds a type named like a target enum type,
    or when the sync triggers of O(mapping_schema) are installed for another target or legacy schema (the
    views would then feed the live sync another schema's types; see C(carbot.migration.sync_triggers)).
  - With O(foreign_keys), adds the foreign keys of the mapping declaration (C(references) in
    C(plugins/module_utils/mapping.py)) as C(NOT VALID) and, with V(validated), validates them. Run that after the
    copy; during the copy the sync triggers may write a child row before its parent is copied.
  - DDL runs under C(lock_timeout) (O(lock_timeout_ms)) and is retried with jittered backoff on lock timeouts,
    deadlocks and dropped connections, so that it never queues the application's writes behind it for long.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas
options:
  sql_dir:
    description:
      - Root of the collection's C(sql/) directory on the host that runs the module (it holds C(v2/) and
        C(mapping/)). The C(carbot.migration.schema) role passes the collection's own directory.
    type: path
    required: true
  foreign_keys:
    description:
      - V(none) leaves the foreign keys alone (before and during the copy).
      - V(not_valid) adds the missing ones as C(NOT VALID) (no table scan; new rows are checked).
      - V(validated) adds the missing ones and validates every C(NOT VALID) one. Validation takes
        C(SHARE UPDATE EXCLUSIVE), so the application keeps writing.
    type: str
    choices: [none, not_valid, validated]
    default: none
  max_retries:
    description: Attempts for the DDL transaction before giving up (retryable errors only).
    type: int
    default: 10
notes:
  - Supports check mode. It then reports whether the schema would change and which tables and foreign keys it
    would create, and executes nothing.
seealso:
  - name: The mapping
    description: docs/mapping.md (every legacy column, its target and rule) and docs/architecture.md (the contract).
    link: https://git.carbot.example/ops/carbot.migration/-/blob/main/docs/mapping.md
"""

EXAMPLES = r"""
- name: Create carbot_v2 and the mapping
  carbot.migration.schema_apply:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    target_schema: carbot_v2
    mapping_schema: carbot_migration
    legacy_schema: public
    sql_dir: "{{ role_path }}/../../sql"

- name: After the copy, add and validate the foreign keys
  carbot.migration.schema_apply:
    login_db: carbot
    sql_dir: /path/to/ansible_collections/carbot/migration/sql
    foreign_keys: validated
"""

RETURN = r"""
changed:
  description: Whether anything was executed.
  returned: always
  type: bool
checksum:
  description: sha256 of the SQL files under O(sql_dir)C(/v2) and O(sql_dir)C(/mapping), and of the mapping declaration.
  returned: always
  type: str
previous_checksum:
  description: The checksum recorded on the target schema before this run (null when none was).
  returned: always
  type: str
tables_created:
  description: Target tables that did not exist before this run (in check mode, that would be created).
  returned: always
  type: list
  elements: str
  sample: [organizations, users, workshops]
views:
  description: The projection views of the mapping schema, one per target table.
  returned: always
  type: list
  elements: str
files_applied:
  description: SQL files executed, relative to O(sql_dir), in order.
  returned: always
  type: list
  elements: str
  sample: [v2/010_types.sql, v2/020_tables.sql, mapping/010_rules.sql]
foreign_keys_added:
  description: Foreign keys added as C(NOT VALID).
  returned: always
  type: list
  elements: str
foreign_keys_validated:
  description: Foreign keys validated.
  returned: always
  type: list
  elements: str
attempts:
  description: Attempts the DDL transaction needed (1 without lock conflicts).
  returned: always
  type: int
"""

import os
import re

from ansible_collections.carbot.migration.plugins.module_utils import common, db, mapping, sync

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported through db.HAS_PSYCOPG2
    sql = None

CHECKSUM_PREFIX = "carbot.migration sql sha256="
# unmapped_values from sql/mapping/090_reports.sql; the others generated from the declaration
REPORT_VIEWS = ("unmapped_values",) + mapping.REPORT_VIEWS


def relations(cur, schema, kinds):
    cur.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = ANY(%s)", (schema, list(kinds)))
    return {r[0] for r in cur.fetchall()}


def recorded_checksum(cur, schema):
    cur.execute("SELECT pg_catalog.obj_description(n.oid, 'pg_namespace') FROM pg_catalog.pg_namespace n "
                "WHERE n.nspname = %s", (schema,))
    row = cur.fetchone()
    comment = row[0] if row else None
    if comment and comment.startswith(CHECKSUM_PREFIX):
        return comment[len(CHECKSUM_PREFIX):]
    return None


def expected_tables():
    return mapping.target_tables() + list(mapping.MIGRATION_TABLES)


def expected_views():
    return [entry["view"] for entry in mapping.TABLES] + list(REPORT_VIEWS)


def preflight(cur, legacy_schema, target_enum_types):
    """Reasons the mapping cannot be applied safely (empty list when it can)."""
    problems = []
    present = relations(cur, legacy_schema, ("r", "p", "v", "m", "f"))
    missing = [t for t in mapping.legacy_tables() if t not in present]
    if missing:
        problems.append("legacy schema %r lacks the tables %s" % (legacy_schema, ", ".join(missing)))
    cur.execute("SELECT t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = %s AND t.typname = ANY(%s)", (legacy_schema, list(target_enum_types)))
    clash = sorted(r[0] for r in cur.fetchall())
    if clash:
        problems.append("legacy schema %r has types named like target types (%s): the mapping views would cast "
                        "to them" % (legacy_schema, ", ".join(clash)))
    return problems


def enum_types_of(sql_dir):
    """The enum type names 010_types.sql creates (read from the file, so they stay in one place)."""
    path = os.path.join(sql_dir, "v2", "010_types.sql")
    with open(path, encoding="utf-8") as handle:
        return re.findall(r"^\s*\('([a-z_]+)',\s*ARRAY\[", handle.read(), re.MULTILINE)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "mapping_schema", "legacy_schema"),
        sql_dir=dict(type="path", required=True),
        foreign_keys=dict(type="str", default="none", choices=["none", "not_valid", "validated"]),
        max_retries=dict(type="int", default=10),
    )
    module = common.database_module(argument_spec, supports_check_mode=True)
    p = module.params
    target, mapping_schema, legacy = p["target_schema"], p["mapping_schema"], p["legacy_schema"]
    sql_dir = p["sql_dir"]
    for sub in mapping.SQL_SUBDIRS:
        if not mapping.sql_files(os.path.join(sql_dir, sub)):
            module.fail_json(msg="no .sql files in %s" % os.path.join(sql_dir, sub))
    checksum = mapping.sql_files_checksum(sql_dir)
    result = dict(changed=False, checksum=checksum, previous_checksum=None, tables_created=[],
                  views=[entry["view"] for entry in mapping.TABLES], files_applied=[],
                  foreign_keys_added=[], foreign_keys_validated=[], attempts=0)

    def retried(func):
        def on_retry(attempt, exc, delay):
            module.warn("schema_apply: attempt %d failed (%s); retrying in %.1fs" % (
                attempt, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, delay))
        value, attempts = db.with_retries(func, attempts=max(1, p["max_retries"]), on_retry=on_retry)
        result["attempts"] = max(result["attempts"], attempts)
        return value

    # 1. Look: what exists, what was applied.
    def inspect():
        with db.connection(p, autocommit=True) as conn:
            with conn.cursor() as cur:
                tables = relations(cur, target, ("r", "p"))
                views = relations(cur, mapping_schema, ("v",))
                previous = recorded_checksum(cur, target)
                problems = preflight(cur, legacy, enum_types_of(sql_dir))
                try:  # the views cast to the target's types: never re-point a live sync's mapping
                    sync.check_schemas(cur, mapping_schema, target, legacy)
                except sync.SyncError as exc:
                    problems.append(str(exc))
            fks = mapping.existing_foreign_keys(conn, target) if tables else {}
            return tables, views, previous, problems, fks

    tables, views, previous, problems, fks = common.run(
        module, lambda: retried(inspect), "cannot inspect the database", out=result, prefix_known=True)
    result["previous_checksum"] = previous
    missing_tables = [t for t in expected_tables() if t not in tables]
    missing_views = [v for v in expected_views() if v not in views]
    schema_current = previous == checksum and not missing_tables and not missing_views

    if not schema_current:
        if problems:
            module.fail_json(msg="refusing to apply the mapping: " + "; ".join(problems), **result)
        result["changed"] = True
        result["tables_created"] = missing_tables
        if module.check_mode:
            result["files_applied"] = ["%s/%s" % (sub, os.path.basename(f)) for sub in mapping.SQL_SUBDIRS
                                       for f in mapping.sql_files(os.path.join(sql_dir, sub))]
        else:
            def apply():
                with db.connection(p) as conn, db.transaction(conn):
                    applied = mapping.apply_all(conn, sql_dir, target, mapping_schema, legacy)
                    with conn.cursor() as cur:
                        cur.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                            sql.Identifier(target), sql.Literal(CHECKSUM_PREFIX + checksum)))
                    return applied

            applied = common.run(module, lambda: retried(apply), "applying the SQL files failed", out=result,
                                 prefix_known=True)
            result["files_applied"] = ["%s/%s" % (sub, f) for sub in mapping.SQL_SUBDIRS for f in applied[sub]]

    # 2. Foreign keys, after the copy only.
    if p["foreign_keys"] != "none":
        wanted = mapping.foreign_keys()
        to_add = [fk["name"] for fk in wanted if fk["name"] not in fks]
        to_validate = [fk["name"] for fk in wanted if fks.get(fk["name"]) is False or fk["name"] in to_add] \
            if p["foreign_keys"] == "validated" else []
        if module.check_mode:
            result["foreign_keys_added"], result["foreign_keys_validated"] = to_add, to_validate
            result["changed"] = result["changed"] or bool(to_add or to_validate)
        else:
            def add():
                with db.connection(p) as conn, db.transaction(conn):
                    return mapping.add_foreign_keys(conn, target)

            def validate():
                # One transaction per constraint would release locks sooner; VALIDATE only takes
                # SHARE UPDATE EXCLUSIVE (writes go on), so one transaction for all is fine.
                with db.connection(p) as conn, db.transaction(conn):
                    return mapping.validate_foreign_keys(conn, target)

            def add_and_validate():
                result["foreign_keys_added"] = retried(add)
                if p["foreign_keys"] == "validated":
                    result["foreign_keys_validated"] = retried(validate)

            # a violation names the constraint and the row
            common.run(module, add_and_validate, "foreign keys", out=result, prefix_known=True)
            result["changed"] = result["changed"] or bool(result["foreign_keys_added"]
                                                          or result["foreign_keys_validated"])

    # --diff: the target's tables and foreign keys before and after (NOT VALID ones marked)
    if module._diff:
        before_fks = dict(fks)
        after_fks = dict(before_fks)
        for name in result["foreign_keys_added"]:
            after_fks.setdefault(name, False)
        for name in result["foreign_keys_validated"]:
            after_fks[name] = True
        result["diff"] = {
            "before_header": "%s (now)" % target, "after_header": "%s (after this step)" % target,
            "before": "".join("table %s\n" % t for t in sorted(tables)) + "".join(
                "foreign key %s%s\n" % (n, "" if v else " NOT VALID") for n, v in sorted(before_fks.items())),
            "after": "".join("table %s\n" % t for t in sorted(set(tables) | set(result["tables_created"]))) + "".join(
                "foreign key %s%s\n" % (n, "" if v else " NOT VALID") for n, v in sorted(after_fks.items())),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
