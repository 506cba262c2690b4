#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: monitoring
short_description: Post-migration monitoring, the top statements and the tables that miss an index
description:
  - V(statements) the top O(top) statements of this database from C(pg_stat_statements), ordered by total
    execution time. Version-aware. From PostgreSQL 13 (pg_stat_statements 1.8) the columns are
    C(total_exec_time)/C(mean_exec_time) (the plan's C(total_time)/C(mean_time) no longer exist), before that
    C(total_time)/C(mean_time); the module reads which columns the installed view has.
  - When the extension is not installed in the database, or not loaded through C(shared_preload_libraries), the
    section says so, with what to do, instead of failing. With O(create_extension=true) the module creates it
    when the library is loaded.
  - V(missing_indexes) tables of O(schemas) with more sequential than index scans and at least
    O(min_seq_tup_read) rows read sequentially (C(pg_stat_user_tables)), largest first, with the average rows
    per sequential scan, the table size and the indexes the table has.
  - Statement texts are the normalised ones of pg_stat_statements (constants replaced by C($n)), cut to
    O(query_chars) characters.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
options:
  sections:
    description: What to report.
    type: list
    elements: str
    choices: [statements, missing_indexes]
    default: [statements, missing_indexes]
  top:
    description: How many statements to report.
    type: int
    default: 10
  query_chars:
    description: Statement texts are cut to this many characters.
    type: int
    default: 200
  schemas:
    description: Schemas whose tables the missing-index report looks at (C(carbot_target_schema) after cutover).
    type: list
    elements: str
    default: [carbot_v2]
  min_seq_tup_read:
    description: A table is reported only when at least this many rows were read by sequential scans.
    type: int
    default: 10000
  create_extension:
    description: C(CREATE EXTENSION IF NOT EXISTS pg_stat_statements) when it is missing and its library is loaded.
    type: bool
    default: false
  extension_schema:
    description: Schema for O(create_extension); default the first schema of the search_path.
    type: str
  reset_statements:
    description: Call C(pg_stat_statements_reset()) after reading, so that the next report covers a fresh period.
    type: bool
    default: false
notes:
  - Supports check mode; then nothing is created or reset (C(changed) says what would have been).
seealso:
  - module: carbot.migration.performance
  - name: pg_stat_statements
    description: The extension's documentation (column names per version).
    link: https://www.postgresql.org/docs/current/pgstatstatements.html
"""

EXAMPLES = r"""
- name: Top statements and missing indexes after the cutover
  carbot.migration.monitoring:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    schemas: ["{{ carbot_target_schema }}"]
    top: 20
  register: monitoring
  no_log: true
"""

RETURN = r"""
statements:
  description:
    - C(available) (bool), C(message) (why not, and what to do), C(server_version_num), C(columns) (which time
      columns were read), C(rows) (per statement C(query), C(calls), C(total_ms), C(mean_ms), C(rows),
      C(shared_blks_hit), C(shared_blks_read), C(hit_percent), C(percent_of_total)).
  returned: when statements is among O(sections)
  type: dict
  sample:
    available: false
    message: "pg_stat_statements is not installed in database carbot: CREATE EXTENSION pg_stat_statements"
missing_indexes:
  description: Per table C(schema), C(table), C(seq_scan), C(idx_scan), C(seq_tup_read), C(avg_rows_per_seq_scan),
    C(n_live_tup), C(bytes), C(indexes).
  returned: when missing_indexes is among O(sections)
  type: list
  elements: dict
carbot_report:
  description: Both reports as sections of the migration report, and a note when statements are unavailable.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common, db
from ansible_collections.carbot.migration.plugins.module_utils.schemas import TARGET_SCHEMA

EXTENSION = "pg_stat_statements"


def _extension_state(cur):
    cur.execute("SELECT current_setting('server_version_num')::int, current_database(), "
                "(SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                " WHERE e.extname = %s), (SELECT extversion FROM pg_extension WHERE extname = %s), "
                "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s), "
                "current_setting('shared_preload_libraries')", (EXTENSION, EXTENSION, EXTENSION))
    version, database, schema, extversion, available, preload = cur.fetchone()
    loaded = EXTENSION in [s.strip().strip('"') for s in (preload or "").split(",")]
    return {"server_version_num": version, "database": database, "schema": schema, "extversion": extversion,
            "available": available, "preloaded": loaded}


def time_columns(cur, schema, server_version_num):
    """``(total, mean)`` column names of the installed view: renamed in pg_stat_statements 1.8 (PostgreSQL 13)."""
    cur.execute("SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
                "AND a.attnum > 0 AND NOT a.attisdropped", (schema, EXTENSION))
    columns = {r[0] for r in cur.fetchall()}
    if "total_exec_time" in columns:
        return "total_exec_time", "mean_exec_time"
    if "total_time" in columns:
        return "total_time", "mean_time"
    # the view's columns could not be read: fall back on the server version
    return ("total_exec_time", "mean_exec_time") if server_version_num >= 130000 else ("total_time", "mean_time")


def top_statements(module, cur, top, query_chars, create, reset):
    state = _extension_state(cur)
    out = dict(state, available=False, rows=[], changed=False)
    if not state["schema"]:
        if not state["available"]:
            out["message"] = ("pg_stat_statements is not available on this server (install the PostgreSQL contrib "
                              "package), so there are no statement statistics")
            return out
        if not state["preloaded"]:
            out["message"] = ("pg_stat_statements is not installed in database %s and not loaded: add it to "
                              "shared_preload_libraries (restart), then CREATE EXTENSION pg_stat_statements"
                              % state["database"])
            return out
        if not create:
            out["message"] = ("pg_stat_statements is not installed in database %s: CREATE EXTENSION "
                              "pg_stat_statements (or create_extension=true)" % state["database"])
            return out
        out["changed"] = True
        if module.check_mode:
            out["message"] = "check mode: would CREATE EXTENSION pg_stat_statements in %s" % state["database"]
            return out
        create_sql = db.sql.SQL("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if module.params["extension_schema"]:
            create_sql += db.sql.SQL(" SCHEMA {}").format(db.sql.Identifier(module.params["extension_schema"]))
        cur.execute(create_sql)
        cur.connection.commit()
        state = _extension_state(cur)
        out.update(state)
    if not state["preloaded"]:
        out["message"] = ("pg_stat_statements is installed in %s but not loaded: add it to shared_preload_libraries "
                          "and restart the server" % state["database"])
        return out
    total, mean = time_columns(cur, state["schema"], state["server_version_num"])
    view = db.sql.Identifier(state["schema"], EXTENSION)
    query = db.sql.SQL(
        "SELECT left(regexp_replace(s.query, '\\s+', ' ', 'g'), %s), s.calls, round(s.{total}::numeric, 3)::float, "
        "round(s.{mean}::numeric, 3)::float, s.rows, s.shared_blks_hit, s.shared_blks_read, "
        "round(100.0 * s.shared_blks_hit / NULLIF(s.shared_blks_hit + s.shared_blks_read, 0), 1)::float, "
        "round((100.0 * s.{total} / NULLIF(sum(s.{total}) OVER (), 0))::numeric, 1)::float "
        "FROM {view} s WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY s.{total} DESC LIMIT %s").format(total=db.sql.Identifier(total), mean=db.sql.Identifier(mean),
                                                   view=view)
    try:
        cur.execute(query, (query_chars, top))
    except db.psycopg2.Error as exc:
        cur.connection.rollback()
        out["message"] = "pg_stat_statements could not be read: %s" % str(exc).strip().splitlines()[0]
        return out
    names = ("query", "calls", "total_ms", "mean_ms", "rows", "shared_blks_hit", "shared_blks_read",
             "hit_percent", "percent_of_total")
    out["rows"] = [dict(zip(names, r)) for r in cur.fetchall()]
    out["available"] = True
    out["columns"] = {"total": total, "mean": mean}
    out["message"] = "top %d of pg_stat_statements %s (columns %s/%s)" % (len(out["rows"]), state["extversion"],
                                                                          total, mean)
    if reset:
        out["changed"] = True
        if not module.check_mode:
            cur.execute(db.sql.SQL("SELECT {}.pg_stat_statements_reset()").format(db.sql.Identifier(state["schema"])))
            out["message"] += "; statistics reset"
    cur.connection.commit()
    return out


def missing_indexes(cur, schemas, min_seq_tup_read):
    """The plan's missing-index query: more sequential than index scans and many rows read sequentially."""
    cur.execute(
        "SELECT s.schemaname, s.relname, s.seq_scan, COALESCE(s.idx_scan, 0), s.seq_tup_read, "
        "CASE WHEN s.seq_scan > 0 THEN s.seq_tup_read / s.seq_scan END, s.n_live_tup, "
        "pg_total_relation_size(s.relid), "
        "ARRAY(SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = s.relid ORDER BY 1) "
        "FROM pg_stat_user_tables s WHERE s.schemaname = ANY(%s) "
        "AND s.seq_scan > COALESCE(s.idx_scan, 0) AND s.seq_tup_read >= %s "
        "ORDER BY s.seq_tup_read DESC", (list(schemas), min_seq_tup_read))
    names = ("schema", "table", "seq_scan", "idx_scan", "seq_tup_read", "avg_rows_per_seq_scan", "n_live_tup",
             "bytes", "indexes")
    return [dict(zip(names, r)) for r in cur.fetchall()]


def main():
    spec = common.argument_spec(
        sections=dict(type="list", elements="str", choices=["statements", "missing_indexes"],
                      default=["statements", "missing_indexes"]),
        top=dict(type="int", default=10),
        query_chars=dict(type="int", default=200),
        schemas=dict(type="list", elements="str", default=[TARGET_SCHEMA]),
        min_seq_tup_read=dict(type="int", default=10000),
        create_extension=dict(type="bool", default=False),
        extension_schema=dict(type="str"),
        reset_statements=dict(type="bool", default=False),
    )
    module = common.database_module(spec, supports_check_mode=True)
    p = module.params
    out, report, msgs = {}, {"notes": []}, []

    def look():
        changed = False
        with common.connection(p, "carbot.migration monitoring") as conn, db.transaction(conn), conn.cursor() as cur:
            if "statements" in p["sections"]:
                stmts = top_statements(module, cur, p["top"], p["query_chars"], p["create_extension"],
                                       p["reset_statements"])
                changed = changed or stmts.pop("changed")
                out["statements"] = stmts
                msgs.append(stmts["message"])
                if stmts["available"]:
                    report["monitoring: top statements"] = stmts["rows"]
                else:
                    report["notes"].append("Monitoring: %s" % stmts["message"])
            if "missing_indexes" in p["sections"]:
                found = missing_indexes(cur, p["schemas"], p["min_seq_tup_read"])
                out["missing_indexes"] = found
                report["monitoring: tables with more sequential than index scans"] = found or [
                    "none in %s (seq_tup_read >= %d)" % (", ".join(p["schemas"]), p["min_seq_tup_read"])]
                msgs.append("%d tables with more sequential than index scans%s" % (
                    len(found), (": " + ", ".join("%s.%s" % (f["schema"], f["table"]) for f in found[:5]))
                    if found else ""))
        return changed

    changed = common.run(module, look, "Monitoring could not run")
    module.exit_json(changed=changed, msg="; ".join(msgs), carbot_report=report, **out)


if __name__ == "__main__":
    main()
