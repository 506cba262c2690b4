#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: version_role
short_description: A login role for the new app version, resolving carbot_v2 while the old role keeps legacy
description:
  - The online cutover (C(cutover.yml -e cutover_mode=online)) runs old and new app pods side by side. Old pods
    connect as O(app_role) and must keep resolving the legacy schema; new pods connect as O(role) and must resolve
    O(target_schema). This module prepares O(role) so that the server decides it, for any driver and pool
    (docs/online_cutover.md says why this and not a search_path in the connection string).
  - B(The role.) C(CREATE ROLE <role> LOGIN PASSWORD ...) when it does not exist; O(password) is never logged. An
    existing role keeps its password when a fresh connection with O(password) succeeds; otherwise (O(update_password)
    V(always)) C(ALTER ROLE ... PASSWORD) sets it.
  - B(The same privileges as the app role.) C(GRANT <app_role> TO <role>) with C(INHERIT), so the new role holds exactly
    what O(app_role) holds, on both schemas and on the shared id sequences, now and after every later grant
    (C(carbot.migration.app_privileges) grants O(app_role) what it needs on carbot_v2). Role settings are not
    inherited, so the search_path below stays the new role's own.
  - B(Its own search_path.) C(ALTER ROLE <role> IN DATABASE <db> SET search_path TO <target_schema>, <legacy_schema>),
    the most specific level there is. It beats the database-level path, which stays the legacy one until every pod
    is new (then the cutover switches it as the maintenance-window night does).
  - B(Verification.) A fresh session as O(role) with O(password) must show the path, resolve O(verify_table) in
    O(target_schema), and insert one row into O(verify_write_table) by its unqualified name (rolled back).
  - Idempotent (C(changed=false) when the role, its membership, its path and its password are as wanted) and
    supports check mode (reports the statements it would run; the password is shown as C(********)).
version_added: 1.1.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  role:
    description: The new app version's role (C(carbot_app_v2_db_user)).
    type: str
    required: true
  password:
    description: Its password (C(carbot_app_v2_db_password), vault); never logged.
    type: str
    required: true
  update_password:
    description:
      - V(always) sets O(password) on an existing role whose password does not work; V(on_create) only on a new role.
    type: str
    choices: [always, on_create]
    default: always
  app_role:
    description: The old app's role (C(carbot_app_db_user)); O(role) becomes a member and inherits its privileges.
    type: str
    required: true
  search_path:
    description: The role's path in this database; default O(target_schema) then O(legacy_schema).
    type: list
    elements: str
  verify:
    description: Verify from a fresh session as O(role) (not in check mode).
    type: bool
    default: true
  verify_table:
    description: Table whose unqualified name must resolve in O(target_schema) for O(role).
    type: str
    default: leads
  verify_write_table:
    description: Table the verification inserts one row into by its unqualified name (rolled back); empty skips it.
    type: str
    default: audit_logs
  verify_write_column:
    description: The returned column of the verification insert.
    type: str
    default: id
notes:
  - The connecting role needs C(CREATEROLE) (and, for the C(GRANT), to be allowed to grant O(app_role)).
  - The role is kept after the cutover (the new pods connect as it); it has no objects of its own.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: The new app version's role, resolving carbot_v2
  carbot.migration.version_role:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    role: "{{ carbot_app_v2_db_user }}"
    password: "{{ carbot_app_v2_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
  no_log: true
"""

RETURN = r"""
created:
  description: The role did not exist and was (or would be) created.
  returned: always
  type: bool
executed_queries:
  description: The statements run (or that would run in check mode); passwords as C(********).
  returned: always
  type: list
  elements: str
search_path:
  description: The role's path in this database after the run (as SHOW prints it).
  returned: always
  type: str
verification:
  description:
    - What a fresh session as O(role) saw (C(search_path), C(resolved_schema), C(write_schema), C(write_id), C(ok)).
  returned: when verified
  type: dict
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import catalog, probe, search_path as paths
from ansible_collections.carbot.migration.plugins.module_utils import common, db
from ansible_collections.carbot.migration.plugins.module_utils.db import sql

MASK = "********"


def plan(cur, dbname, p, password_works):
    """The statements that bring the role where it should be: [(statement, params, shown_text)]."""
    role, app = p["role"], p["app_role"]
    wanted_path = p["search_path"] or [p["target_schema"], p["legacy_schema"]]
    steps = []
    cur.execute("SELECT rolcanlogin, rolinherit FROM pg_catalog.pg_roles WHERE rolname = %s", (role,))
    row = cur.fetchone()
    created = row is None
    if created:
        steps.append((sql.SQL("CREATE ROLE {} LOGIN INHERIT PASSWORD %s").format(sql.Identifier(role)),
                      [p["password"]], "CREATE ROLE %s LOGIN INHERIT PASSWORD '%s'" % (role, MASK)))
    else:
        if not row[0] or not row[1]:
            steps.append((sql.SQL("ALTER ROLE {} LOGIN INHERIT").format(sql.Identifier(role)), [],
                          "ALTER ROLE %s LOGIN INHERIT" % role))
        if not password_works and p["update_password"] == "always":
            steps.append((sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), [p["password"]],
                          "ALTER ROLE %s PASSWORD '%s'" % (role, MASK)))
    member = False
    if not created:
        cur.execute("SELECT pg_catalog.pg_has_role(%s, %s, 'MEMBER')", (role, app))
        member = cur.fetchone()[0]
    if not member:
        statement = sql.SQL("GRANT {} TO {}").format(sql.Identifier(app), sql.Identifier(role))
        steps.append((statement, [], "GRANT %s TO %s" % (app, role)))
    settings = paths.read_path_settings(cur, dbname)
    current = (settings["roles"].get(role) or {}).get("role_in_database")
    if created or current != wanted_path:
        statement, params = paths.set_role_database_path_sql(role, dbname, wanted_path)
        steps.append((statement, params, "ALTER ROLE %s IN DATABASE %s SET search_path TO %s"
                      % (role, dbname, paths.format_search_path(wanted_path))))
    return created, steps, wanted_path


def password_works(params):
    """A fresh connection as the role with the password succeeds (the role exists and the password is right)."""
    try:
        conn = db.connect(dict(params, login_user=params["role"], login_password=params["password"]))
    except Exception:  # noqa: BLE001 - any failure means: the password must be (re)set
        return False
    conn.close()
    return True


def verify(params, wanted_path):
    """What a new pod of the new version sees: its path, where the app's tables resolve, a write (rolled back)."""
    out = {"ok": False}
    try:
        conn = db.connect(dict(params, login_user=params["role"], login_password=params["password"]),
                          application_name="carbot.migration verify %s" % params["role"])
    except Exception as exc:  # noqa: BLE001 - reported
        out["error"] = "cannot connect as %s: %s" % (params["role"], db.describe_error(exc))
        return out
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW search_path")
            out["search_path"] = cur.fetchone()[0]
            out["resolved_schema"] = catalog.resolve_schema(cur, params["verify_table"])
            if params["verify_write_table"]:
                out["write_schema"], out["write_id"] = probe.probe_insert(
                    cur, None, params["verify_write_table"], params["verify_write_column"])
                out["write_id"] = str(out["write_id"])
        conn.rollback()
        out["ok"] = (paths.split_search_path(out["search_path"]) == wanted_path
                     and out["resolved_schema"] == params["target_schema"]
                     and out.get("write_schema", params["target_schema"]) == params["target_schema"])
        if not out["ok"]:
            out["error"] = "%s sees search_path %s and resolves %s in %s (wanted %s)" % (
                params["role"], out["search_path"], params["verify_table"], out["resolved_schema"],
                params["target_schema"])
    except Exception as exc:  # noqa: BLE001 - reported
        conn.rollback()
        out["error"] = "as %s: %s" % (params["role"], db.describe_error(exc))
    finally:
        conn.close()
    return out


def prepare(module, conn, works):
    """Create or update the version's role and verify it; ends the module."""
    p = module.params
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (p["app_role"],))
        if cur.fetchone() is None:
            module.fail_json(msg="role %s (carbot_app_db_user) does not exist" % p["app_role"])
        cur.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (p["target_schema"],))
        if cur.fetchone() is None:
            module.fail_json(msg="schema %s does not exist in database %s" % (p["target_schema"], p["login_db"]))
        created, steps, wanted_path = plan(cur, p["login_db"], p, works)
    conn.rollback()
    shown = [text for _s, _p, text in steps]
    result = dict(changed=bool(steps), created=created, executed_queries=shown,
                  search_path=paths.format_search_path(wanted_path))
    if steps and not module.check_mode:
        def attempt():
            with db.transaction(conn), conn.cursor() as cur:
                for statement, params, _text in steps:
                    cur.execute(statement, params or None)
        try:
            db.with_retries(attempt, attempts=8)
        except Exception as exc:  # noqa: BLE001 - reported with the statements (passwords masked)
            module.fail_json(msg="preparing role %s failed: %s" % (p["role"], db.describe_error(exc)), **result)
    if p["verify"] and not module.check_mode:
        result["verification"] = verify(p, wanted_path)
    result["carbot_report"] = {"version_role": {
        "role": p["role"], "member_of": p["app_role"], "search_path": result["search_path"],
        "created": created, "statements": len(steps),
        "verified": result.get("verification", {}).get("ok", "not checked")}}
    if "verification" in result and not result["verification"]["ok"]:
        module.fail_json(msg="role %s is not ready for the new pods: %s" % (
            p["role"], result["verification"].get("error", "")), **result)
    module.exit_json(**result)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "legacy_schema"),
        role=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
        update_password=dict(type="str", choices=["always", "on_create"], default="always"),
        app_role=dict(type="str", required=True),
        search_path=dict(type="list", elements="str"),
        verify=dict(type="bool", default=True),
        verify_table=dict(type="str", default="leads"),
        verify_write_table=dict(type="str", default="audit_logs"),
        verify_write_column=dict(type="str", default="id"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True)
    p = module.params
    if p["role"] == p["app_role"]:
        module.fail_json(msg="role and app_role are both %s: the new version needs a role of its own" % p["role"])
    works = password_works(p)
    common.run_connected(module, lambda conn: prepare(module, conn, works), "version_role failed")


if __name__ == "__main__":
    main()
