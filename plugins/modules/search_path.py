#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: search_path
short_description: Switch the application's search_path to carbot_v2 and back, exactly
description:
  - V(target) sets C(ALTER DATABASE <db> SET search_path TO <target_schema>, <legacy_schema>) and
    V(legacy) puts back exactly what was there before.
  - B(Role-level overrides.) A setting made with C(ALTER ROLE <app> SET search_path) or
    C(ALTER ROLE <app> IN DATABASE <db> SET search_path) beats the database-level one, so the app would
    silently keep the legacy schema. The module reads C(pg_db_role_setting), reports every override that
    applies to the database, and handles the ones of O(app_role) (and O(roles)) by also setting the target
    path at the role-in-database level, the most specific level there is.
  - B(Exact way back.) Before the first change the previous values (database level, and role-in-database
    level of every handled role; "none" included) are recorded in C(<target_schema>.migration_cutover_state)
    (created if absent), in the same transaction as the change. V(legacy) restores those values
    (C(RESET) where there was none) and leaves any role-level (all databases) setting untouched, so that
    after the way back every role sees exactly the path it saw before.
  - B(A record nobody else can steer.) Every privilege on the state table is revoked from all roles but its owner
    whenever the module writes it (default privileges of the schema would give the app role some). A sha256 of
    each recorded value is kept in the table's C(COMMENT), which only the owner can change; a record that does
    not match it is refused, and V(legacy) also refuses a record that names roles other than O(app_role) and
    O(roles); nothing is changed then, and the message says why. Schemas in it that do not exist are warned about.
  - B(Existing sessions.) Settings apply when a session starts; sessions of the app role that started
    before the switch keep the old path. They are found in C(pg_stat_activity) (C(backend_start) earlier
    than the recorded switch) and, by default, the idle ones are terminated with C(pg_terminate_backend)
    (the app's pool reconnects and gets the new path). See O(sessions).
  - B(Verification.) With O(app_password), the module opens a fresh session as O(app_role) after the change and
    checks C(SHOW search_path), the schema where O(verify_table) resolves, and an C(INSERT) into
    O(verify_write_table) (rolled back) whose id must lie beyond the highest id in both schemas. A failed
    verification fails the task.
  - V(read) changes nothing and needs no target schema; it reports the settings that apply to the database
    (database level, C(ALTER ROLE ALL), every role's role and role-in-database level) as lists of schema names
    (RV(settings)), parsed the way PostgreSQL reads them (quoted names kept, unquoted folded to lower case), and
    the path a new session of O(app_role) gets (RV(effective)). Playbooks compare these lists instead of parsing
    C(pg_db_role_setting) themselves.
  - Idempotent (C(changed=false) when the settings are already as wanted and no old session is left) and
    supports check mode (reports the statements it would run and the sessions it would terminate).
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  state:
    description:
      - V(target) switches to O(search_path) (default C(<target_schema>, <legacy_schema>)).
      - V(legacy) restores the values recorded before the switch.
      - V(read) only reads the settings (RV(settings), RV(effective)); it never fails for a missing schema.
    type: str
    choices: [target, legacy, read]
    default: target
  target_schema:
    description: The enterprise schema (C(carbot_target_schema)); it also holds the state table.
  search_path:
    description: The path set by V(target); default O(target_schema) then O(legacy_schema).
    type: list
    elements: str
  app_role:
    description: The application's database role (C(carbot_app_db_user)).
    type: str
    required: true
  app_password:
    description:
      - Password of O(app_role) (C(carbot_app_db_password)); never logged. When set, the result is verified
        from a fresh session as O(app_role).
    type: str
  roles:
    description:
      - More roles whose role-level overrides must be handled like those of O(app_role) (e.g. a reporting role).
        Overrides of other roles are reported, not changed.
    type: list
    elements: str
    default: []
  sessions:
    description:
      - What to do with sessions of the handled roles that started before the change and so still use the old path.
      - V(terminate_idle) terminates the idle ones, waiting up to O(session_wait_seconds) for busy ones to become
        idle (a transaction in progress is never cut); what is left is reported with a warning.
      - V(terminate_all) terminates them all, busy or not (their open transactions roll back).
      - V(report) only counts them.
    type: str
    choices: [terminate_idle, terminate_all, report]
    default: terminate_idle
  session_wait_seconds:
    description: How long V(terminate_idle) waits for busy old sessions to become idle.
    type: int
    default: 10
  verify_table:
    description: Table whose unqualified name must resolve in the wanted schema for O(app_role).
    type: str
    default: leads
  verify_write_table:
    description:
      - Table the verification inserts one row into, by its unqualified name (rolled back). It needs a
        sequence-fed O(verify_write_column) in both schemas. Empty string skips the write.
    type: str
    default: audit_logs
  verify_write_column:
    description: The sequence-fed id column of O(verify_write_table).
    type: str
    default: id
notes:
  - The connecting role (C(carbot_db_user)) must own the database (or be superuser) for C(ALTER DATABASE ... SET),
    have C(CREATEROLE) for C(ALTER ROLE ... IN DATABASE ... SET), and be allowed to signal the app's
    backends (superuser, or member of C(pg_signal_backend)).
  - A path the application sets itself (C(SET search_path) after connecting, C(options=-csearch_path=...) in its
    connection string, C(PGOPTIONS)) cannot be seen from the server; the fresh-session verification and the
    health check through the API are what catch it.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Switch the app to carbot_v2
  carbot.migration.search_path:
    state: target
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    app_password: "{{ carbot_app_db_password }}"
  no_log: true

- name: Read the search_path settings (lists of schema names), changing nothing
  carbot.migration.search_path:
    state: read
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
  register: settings

- name: The database-level path starts with carbot_v2
  ansible.builtin.assert:
    that: (settings.settings.database | default([], true) | first | default('')) == 'carbot_v2'

- name: Back to the legacy schema, exactly as before
  carbot.migration.search_path:
    state: legacy
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    app_password: "{{ carbot_app_db_password }}"
  no_log: true
"""

RETURN = r"""
previous:
  description:
    - The values recorded before the switch (C(database), and C(roles) as role-in-database values);
      C(null) means "no setting". V(legacy) restores exactly these.
  returned: always
  type: dict
current:
  description: The settings after the run (C(database), C(all_roles), C(roles)), as search_path strings.
  returned: always
  type: dict
settings:
  description:
    - The settings after the run as lists of schema names, C(null) where there is no setting (an empty list is an
      explicit empty path). C(database) is the database level, C(all_roles) C(ALTER ROLE ALL), and C(roles) maps each
      role with a setting to its C(role) (all databases) and C(role_in_database) values.
  returned: always
  type: dict
  sample:
    database: [carbot_v2, public]
    all_roles: null
    roles: {carbot_app: {role: null, role_in_database: [carbot_v2, public]}}
effective:
  description:
    - The path a new session of O(app_role) gets after the run (C(search_path) as a string, C(names) as a list,
      C(null) when postgresql.conf decides), and from which C(level) it comes.
  returned: always
  type: dict
overrides:
  description: Every role-level search_path setting that applies to the database (before the run), with C(handled).
  returned: always
  type: list
  elements: dict
sessions:
  description: Old sessions found (C(old_path)), C(terminated), C(remaining), the C(policy) and the C(pids) involved.
  returned: always
  type: dict
verification:
  description: The fresh-session check as O(app_role) (C(search_path), C(resolved_schema), C(write_id), C(ok)).
  returned: when app_password is set and not in check mode
  type: dict
diff:
  description:
    - With C(--diff), every search_path setting that applies in the database (database level, C(ALTER ROLE ALL),
      each role's own levels) and the path a new session of O(app_role) gets, one per line, C(before) and
      C(after) the run (in check mode, after the statements it would run).
  returned: with --diff
  type: dict
  sample:
    before: "database carbot: \"$user\", public\nall roles: (not set)\na new session of carbot_app gets: ..."
    after: "database carbot: carbot_v2, public\nall roles: (not set)\na new session of carbot_app gets: ..."
executed_queries:
  description: Statements that changed settings (or would, in check mode).
  returned: always
  type: list
  elements: str
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common, cutover_state, search_path as paths
from ansible_collections.carbot.migration.plugins.module_utils.path_switch import (
    STATE_KEY, Switch, diff_text, format_settings)


def read_only(module):
    """state=read: the settings as lists, nothing changed, no state table needed (it may not exist yet)."""
    def read(conn):
        with conn.cursor() as cur:
            settings = paths.read_path_settings(cur, module.params["login_db"])
            found = paths.overrides(settings, module.params["login_db"])
        conn.rollback()
        return settings, found

    settings, found = common.run_connected(module, read, "search_path read failed")
    for item in found:
        item.pop("names")
    level, path = paths.effective_setting(settings, module.params["app_role"])
    effective = {"role": module.params["app_role"], "level": level, "search_path": paths.format_search_path(path),
                 "names": path}
    module.exit_json(changed=False, state="read", previous={}, current=format_settings(settings), settings=settings,
                     effective=effective, overrides=found, sessions={}, executed_queries=[],
                     carbot_report={"search_path": {"state": "read", "changed": False, "effective": effective}})


def switch_path(module, conn, switch):
    """Switch the search_path (state target or legacy); ends the module."""
    with conn.cursor() as cur:
        settings, handled, statements, new_record, since = switch.plan(cur)
        found = paths.overrides(settings, switch.dbname)
        for item in found:
            item["handled"] = item["role"] in handled
            item.pop("names")
            if not item["handled"]:
                switch.warnings.append(
                    "role %s has its own search_path (%s, %s level); it is not handled here (add it to roles "
                    "if the application connects as it)" % (item["role"], item["value"], item["level"]))
        switch.queries = [cur.mogrify(stmt, args).decode() for stmt, args in statements]
    conn.commit()
    changed = bool(statements) or new_record is not None
    if changed and not module.check_mode:
        since = switch.apply(conn, statements, new_record)
    elif changed and statements:
        since = "infinity"  # check mode: every current session would be old once the change is made
    sessions = switch.sessions(conn, handled, since)
    changed = changed or sessions["terminated"] > 0
    with conn.cursor() as cur:
        after = paths.read_path_settings(cur, switch.dbname)
        record = cutover_state.read_state(cur, module.params["target_schema"], STATE_KEY)
    conn.commit()
    if module.check_mode and new_record is not None:
        record = new_record
    level, path = paths.effective_setting(after, module.params["app_role"])
    result = dict(
        changed=changed,
        state=module.params["state"],
        previous={"database": paths.format_search_path(((record or {}).get("previous") or {}).get("database")),
                  "roles": {r: paths.format_search_path(v)
                            for r, v in (((record or {}).get("previous") or {}).get("roles") or {}).items()}},
        current=format_settings(after),
        settings=after,
        effective={"role": module.params["app_role"], "level": level, "search_path": paths.format_search_path(path),
                   "names": path},
        overrides=found,
        sessions=sessions,
        executed_queries=switch.queries,
    )
    if module._diff:
        # --diff: every search_path setting of the database, before and after (in check mode: after the
        # planned statements)
        result["diff"] = {
            "before_header": "search_path settings in %s (now)" % switch.dbname,
            "after_header": "search_path settings in %s (%s)" % (
                switch.dbname, "after the switch" if module.check_mode else "after this run"),
            "before": diff_text(settings, switch.dbname, module.params["app_role"]),
            "after": diff_text(switch.expected if module.check_mode else after, switch.dbname,
                               module.params["app_role"]),
        }
    if module.params["app_password"] and not module.check_mode:
        result["verification"] = switch.verify(conn, after)
    result["carbot_report"] = {"search_path": {
        "state": module.params["state"], "changed": changed, "effective": result["effective"],
        "overrides": found, "sessions": {k: v for k, v in sessions.items() if k != "pids"},
        "verified": (result.get("verification") or {}).get("ok")}}
    for warning in switch.warnings:
        module.warn(warning)
    if result.get("verification") and not result["verification"]["ok"]:
        module.fail_json(msg="search_path %s: verification as %s failed: %s" % (
            module.params["state"], module.params["app_role"], "; ".join(result["verification"]["problems"])),
            **result)
    module.exit_json(**result)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "legacy_schema"),
        state=dict(type="str", default="target", choices=["target", "legacy", "read"]),
        search_path=dict(type="list", elements="str"),
        app_role=dict(type="str", required=True),
        app_password=dict(type="str", no_log=True),
        roles=dict(type="list", elements="str", default=[]),
        sessions=dict(type="str", default="terminate_idle", choices=["terminate_idle", "terminate_all", "report"]),
        session_wait_seconds=dict(type="int", default=10),
        verify_table=dict(type="str", default="leads"),
        verify_write_table=dict(type="str", default="audit_logs"),
        verify_write_column=dict(type="str", default="id"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True)
    if module.params["state"] == "read":
        read_only(module)
    switch = Switch(module)
    common.run_connected(module, lambda conn: switch_path(module, conn, switch),
                         "search_path %s failed" % module.params["state"])


if __name__ == "__main__":
    main()
