#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app_privileges
short_description: Give the application role on carbot_v2 what it has on the legacy schema
description:
  - Compares, object by object, what O(app_role) may do in O(legacy_schema) with what it may do in
    O(target_schema), and grants what is missing. Nothing is revoked, except on O(exclude_tables).
  - B(Schema) C(USAGE) on O(target_schema) (without it PostgreSQL silently skips the schema on the search_path
    and the app keeps reading the legacy tables).
  - B(Tables.) Each target table gets the privileges (C(has_table_privilege)) the role has on its legacy
    counterpart (the mapping declaration's driving table, else the table of the same name). A target table with
    no counterpart gets O(new_table_privileges). With O(table_privileges) set, every table gets exactly that
    declared set instead of the comparison. Tables in O(exclude_tables) (the migration's bookkeeping; the
    quarantine holds legacy rows with secrets, the cutover state steers the rollback) get nothing, and whatever
    the role holds on them (and on their sequences) is revoked - however it got it, e.g. through the default
    privileges below when the table was created after them, as C(migration_cutover_state) is. (Default privileges
    cannot leave out single tables; C(carbot.migration.search_path) also revokes on the state table whenever it
    writes it.) A privilege that stays because it comes through C(PUBLIC) or a role membership fails the task.
  - B(Sequences.) Every sequence a target column draws from (its identity sequence, or the shared legacy sequence
    after C(carbot.migration.sequences)) gets what the role has on the legacy counterpart's sequence, at least
    O(sequence_privileges) (C(nextval) needs C(USAGE)).
  - B(Default privileges.) C(ALTER DEFAULT PRIVILEGES FOR ROLE <each of default_privileges_for> IN SCHEMA
    <target>) on tables and sequences, so that a table created later in carbot_v2 is usable too; and every
    default privilege the legacy schema grants the role is mirrored.
  - C(CONNECT) on the database is checked and reported, never granted.
  - O(check_only=true) is the preflight; it reports what is missing (C(missing)) and changes nothing.
    Idempotent; supports check mode.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  app_role:
    description: The application's role (C(carbot_app_db_user)).
    type: str
    required: true
  check_only:
    description: Report what is missing; grant nothing.
    type: bool
    default: false
  table_privileges:
    description: A declared set for every target table instead of the comparison with the legacy counterpart.
    type: list
    elements: str
    choices: [SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER]
  new_table_privileges:
    description: Privileges for a target table that has no legacy counterpart (e.g. C(organizations)).
    type: list
    elements: str
    choices: [SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER]
    default: [SELECT, INSERT, UPDATE, DELETE]
  sequence_privileges:
    description: Privileges every sequence used by a target column gets at least.
    type: list
    elements: str
    choices: [USAGE, SELECT, UPDATE]
    default: [USAGE, SELECT]
  exclude_tables:
    description: Target tables the role gets nothing on.
    type: list
    elements: str
    default: [migration_status, migration_quarantine, migration_cutover_state]
  default_privileges_for:
    description:
      - Roles whose future tables and sequences in O(target_schema) the app role gets privileges on by default
        (C(ALTER DEFAULT PRIVILEGES FOR ROLE ...)). Default the owner of O(target_schema). Empty list disables.
    type: list
    elements: str
notes:
  - The connecting role must own the target tables (or be superuser) to grant on them, and be (a member of) each
    role in O(default_privileges_for).
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Preflight - what does the app role miss on carbot_v2?
  carbot.migration.app_privileges:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    check_only: true
  register: missing
  no_log: true

- name: Grant the app role on carbot_v2 what it has on public
  carbot.migration.app_privileges:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
  no_log: true
"""

RETURN = r"""
missing:
  description:
    - What the role lacks (before the run), one dict each with C(object_type) (V(database), V(schema), V(table),
      V(sequence), V(default)), C(object), C(privilege), and C(why) (the legacy object it is compared with, or the
      declared set).
  returned: always
  type: list
  elements: dict
still_missing:
  description: What is still missing after the run (same shape as RV(missing)); in check_only or check mode RV(missing).
  returned: always
  type: list
  elements: dict
ok:
  description: Nothing missing after the run (in check_only mode or check mode, nothing missing at all).
  returned: always
  type: bool
diff:
  description:
    - With C(--diff), the privileges O(app_role) holds on every object this run grants or revokes something on,
      one line per object (the object, a colon, its privileges), C(before) and C(after) the run; in check
      mode and with O(check_only), C(after) is what the statements would leave.
  returned: with --diff
  type: dict
  sample:
    before: "schema carbot_v2: (none)\ntable carbot_v2.leads: (none)\n"
    after: "schema carbot_v2: USAGE\ntable carbot_v2.leads: SELECT, INSERT, UPDATE, DELETE\n"
executed_queries:
  description: GRANT statements run (or that would run).
  returned: always
  type: list
  elements: str
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common, cutover_state, db
from ansible_collections.carbot.migration.plugins.module_utils.privileges import (
    SEQUENCE_PRIVILEGES, TABLE_PRIVILEGES, Privileges)


def grant(module, conn):
    """The grants (or, with check_only or in check mode, what is missing); ends the module."""
    priv = Privileges(module.params, conn)
    with conn.cursor() as cur:
        missing, grants = priv.missing(cur)
        queries = [g.as_string(conn) for g in grants]
        planned = list(priv.changes)
        before = priv.diff(cur) if module._diff else None
    conn.commit()
    dry = module.check_mode or module.params["check_only"]
    if grants and not dry:
        def attempt():
            with db.transaction(conn), conn.cursor() as cur:
                for grant in grants:
                    cur.execute(grant)
        db.with_retries(attempt, attempts=8)
        with conn.cursor() as cur:
            still = priv.missing(cur)[0]
        conn.commit()
    else:
        still = missing
    diff = None
    if module._diff:
        # --diff: the app role's privileges on every object this run grants or revokes something on
        priv.changes = planned
        with conn.cursor() as cur:
            after = priv.diff(cur, before) if dry else priv.diff(cur)
        conn.commit()
        diff = {"before_header": "privileges of %s (now)" % module.params["app_role"],
                "after_header": "privileges of %s (%s)" % (module.params["app_role"],
                                                           "after the grants" if dry else "after this run"),
                "before": priv.diff_text(before), "after": priv.diff_text(after)}
    ok = not still
    result = dict(changed=bool(grants) and not module.params["check_only"], missing=missing, still_missing=still,
                  ok=ok, executed_queries=queries,
                  carbot_report={"app_privileges": {"role": module.params["app_role"],
                                                    "missing_before": len(missing),
                                                    "granted": 0 if dry else len(grants), "ok": ok}})
    if diff is not None:
        result["diff"] = diff
    if still and not dry:
        module.fail_json(msg="role %s still lacks: %s" % (module.params["app_role"], ", ".join(
            "%s on %s" % (m["privilege"], m["object"]) for m in still)), **result)
    module.exit_json(**result)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "legacy_schema"),
        app_role=dict(type="str", required=True),
        check_only=dict(type="bool", default=False),
        table_privileges=dict(type="list", elements="str", choices=list(TABLE_PRIVILEGES)),
        new_table_privileges=dict(type="list", elements="str", choices=list(TABLE_PRIVILEGES),
                                  default=["SELECT", "INSERT", "UPDATE", "DELETE"]),
        sequence_privileges=dict(type="list", elements="str", choices=list(SEQUENCE_PRIVILEGES),
                                 default=["USAGE", "SELECT"]),
        exclude_tables=dict(type="list", elements="str",
                            default=["migration_status", "migration_quarantine", cutover_state.STATE_TABLE]),
        default_privileges_for=dict(type="list", elements="str"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True)
    common.run_connected(module, lambda conn: grant(module, conn), "app_privileges failed")


if __name__ == "__main__":
    main()
