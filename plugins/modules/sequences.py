#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sequences
short_description: Make carbot_v2's id columns draw from the legacy sequences, so ids never collide
description:
  - Reads the catalog for every sequence-fed column of O(target_schema) (identity columns, serial defaults, any
    C(nextval) default); nothing is hard-coded.
  - B(Shared rule.) A target column whose legacy counterpart (the mapping declaration's driving table, else the
    table of the same name; same column name) is itself sequence-fed is made to use B(the same sequence object),
    C(ALTER TABLE <target>.<t> ALTER COLUMN <c> DROP IDENTITY IF EXISTS) and
    C(SET DEFAULT nextval('<legacy sequence>'::regclass)), in one transaction. The app then gets its ids from one
    sequence whether it writes to carbot_v2 (after the switch) or to the legacy schema again (after a rollback),
    and the sync triggers copy rows with their ids in both directions, so ids can never collide.
  - B(Own rule.) A column without a legacy counterpart keeps its sequence, which is only moved ahead of the
    column's highest value when it lags behind.
  - Every sequence used is moved (C(setval), never backwards) beyond the highest id in both the target and the
    legacy column, so that the copied ids are never handed out again.
  - With O(app_role), checks that the role has C(USAGE) on every sequence used; with O(app_password) as well, it
    proves it; as the app role, in one transaction that is rolled back, one row is inserted into the legacy
    table and one into the target table of every shared column; both ids must be new and different.
  - O(check_only=true) only reports (for preflight); idempotent; supports check mode.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  check_only:
    description: Report the columns and what is not aligned, change nothing, never fail for a finding.
    type: bool
    default: false
  sequence_owned_by:
    description:
      - V(legacy) leaves a shared sequence C(OWNED BY) its legacy column (as created by C(bigserial)).
      - V(target) moves the ownership to the carbot_v2 column, so that dropping the legacy tables at cleanup does
        not drop the sequence that carbot_v2 uses. Do this at cleanup, not before a possible rollback is over.
    type: str
    choices: [legacy, target]
    default: legacy
  replaced_sequences:
    description:
      - C(DROP IDENTITY) drops the identity column's own sequence. V(keep) creates a plain sequence of the same
        name, position and grants in its place, so that code naming it (the sync triggers bump the other side's
        sequence by name) keeps working; nothing draws ids from it any more. V(drop) leaves it dropped.
    type: str
    choices: [keep, drop]
    default: keep
  app_role:
    description:
      - The application's role (C(carbot_app_db_user)); its C(USAGE) is checked on every sequence of a table it may
        insert into (C(app_usage) is null for the others, e.g. the migration's bookkeeping).
    type: str
  app_password:
    description: Password of O(app_role) (C(carbot_app_db_password)), for the insert proof; never logged.
    type: str
  tables:
    description: Only these target tables (default every table of O(target_schema)).
    type: list
    elements: str
notes:
  - C(ALTER TABLE) takes an C(ACCESS EXCLUSIVE) lock on the target table for a moment; it runs under
    O(lock_timeout_ms) and is retried with backoff, one table per transaction.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Let carbot_v2 draw ids from the legacy sequences
  carbot.migration.sequences:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
  no_log: true

- name: Preflight - report sequences and the app's USAGE on them
  carbot.migration.sequences:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    check_only: true
  no_log: true
"""

RETURN = r"""
columns:
  description:
    - Per sequence-fed target column, C(table), C(column), C(rule) (V(shared) or V(own)), C(sequence) (the one it
      draws from, qualified), C(wanted_sequence), C(next_value) (of C(sequence)), C(max_target), C(max_legacy),
      C(app_usage), C(ok) and C(problems).
  returned: always
  type: list
  elements: dict
ok:
  description: Every column aligned (and the app role's checks passed).
  returned: always
  type: bool
problems:
  description: What is not right, one line each.
  returned: always
  type: list
  elements: str
proof:
  description: The ids the insert proof got, per table (C(legacy_id), C(target_id)).
  returned: when app_password is set and not in check mode
  type: dict
diff:
  description:
    - With C(--diff), per id column of the target (C(carbot_v2.leads.id)) the sequence it draws from (and whether as
      an identity or a default), the value it hands out next and the column owning the sequence, C(before) and
      C(after) the run; in check mode and with O(check_only), C(after) is what the statements would leave.
  returned: with --diff
  type: dict
  sample:
    before: "carbot_v2.leads.id: carbot_v2.leads_id_seq (identity), next value 1, owned by carbot_v2.leads.id\n"
    after: "carbot_v2.leads.id: public.leads_id_seq (default), next value 20001, owned by public.leads.id\n"
executed_queries:
  description: Statements run (or that would run in check mode).
  returned: always
  type: list
  elements: str
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common
from ansible_collections.carbot.migration.plugins.module_utils.sequence_align import Aligner


def align(module, conn):
    """Align the sequences (or report what is off); ends the module."""
    aligner = Aligner(module, conn)
    with conn.cursor() as cur:
        items = aligner.columns(cur)
        if module._diff:
            aligner.before = aligner.state(cur)
    conn.commit()
    for item in items:
        aligner.align(item)
    # In check mode nothing moved: report what is there now (the plan is in executed_queries).
    columns, problems = aligner.report(items)
    result = dict(changed=aligner.changed and not module.params["check_only"], columns=columns,
                  executed_queries=aligner.queries)
    if module.params["check_only"] or module.check_mode:
        problems = [pr for c in columns for pr in c["problems"]]
    if module.params["app_password"] and not module.check_mode and not module.params["check_only"]:
        result["proof"], proof_problems = aligner.prove(columns)
        problems += proof_problems
    result["problems"] = problems
    result["ok"] = not problems
    if module._diff:
        # --diff: what each id column draws from, its next value and the sequence's owner
        dry = module.check_mode or module.params["check_only"]
        if dry:
            after = dict(aligner.before, **aligner.expected)
        else:
            with conn.cursor() as cur:
                after = aligner.state(cur)
            conn.commit()
        result["diff"] = {"before_header": "id sequences of %s (now)" % module.params["target_schema"],
                          "after_header": "id sequences of %s (%s)" % (
                              module.params["target_schema"], "after aligning" if dry else "after this run"),
                          "before": aligner.diff_text(aligner.before), "after": aligner.diff_text(after)}
    result["carbot_report"] = {"sequences": {
        "%s.%s" % (c["table"], c["column"]): {
            "rule": c["rule"], "sequence": c["sequence"], "next_value": c["next_value"], "ok": c["ok"]}
        for c in columns}}
    if problems and not module.params["check_only"] and not module.check_mode:
        module.fail_json(msg="sequences not right after aligning: %s" % "; ".join(problems), **result)
    module.exit_json(**result)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "legacy_schema"),
        check_only=dict(type="bool", default=False),
        sequence_owned_by=dict(type="str", default="legacy", choices=["legacy", "target"]),
        replaced_sequences=dict(type="str", default="keep", choices=["keep", "drop"]),
        app_role=dict(type="str"),
        app_password=dict(type="str", no_log=True),
        tables=dict(type="list", elements="str"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True,
                                    required_by={"app_password": "app_role"})
    common.run_connected(module, lambda conn: align(module, conn), "sequences failed")


if __name__ == "__main__":
    main()
