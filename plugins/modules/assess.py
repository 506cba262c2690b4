#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: assess
short_description: Assess the legacy CarBot database before the migration and give a preflight verdict
description:
  - Measures the legacy schema O(schema) table by table, rows (exact C(count(*)) unless O(exact_counts=false)),
    heap, TOAST and index sizes.
  - Takes the C(pg_stat_user_tables) baseline, operations (inserts, updates, deletes, HOT updates), sequential
    against index scans, live and dead tuples, last (auto)vacuum/analyze, and the index usage percent
    C(100 * idx_scan / (seq_scan + idx_scan)) per table and overall, plus C(pg_stat_user_indexes) per index.
  - Writes all of it, with a UTC timestamp, as a JSON baseline file to O(baseline_path) on the host that runs
    the module (the controller in this collection's inventories), so that the performance and monitoring steps
    after the migration can compare against it.
  - Gives a preflight verdict, C(go) or C(no-go) with the reasons. Blocking checks are
    C(server_version) (PostgreSQL 13 or newer), C(extensions) (O(required_extensions) installed or creatable by
    this role), C(backup_disk) (free space at O(backup_dir) of at least the estimated dump size times
    O(safety_factor)), C(long_transactions) (none open longer than O(max_transaction_seconds), prepared ones
    included), C(primary_keys) (every table of O(schema) has one) and C(role_settings) (no role-level
    setting from O(blocking_role_settings), for example a role-level C(search_path) that would override the
    database-level one switched at cutover). O(recommended_extensions) only warn.
  - Read-only on the database. Returns the assessment's part of the migration report in RV(carbot_report).
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
options:
  schema:
    description: The legacy schema to assess (C(carbot_legacy_schema)).
    type: str
    default: public
  backup_dir:
    description:
      - Where C(pg_dump) will write the backup (C(carbot_backup_dir)), on the host that runs the module. It need
        not exist yet; the free space of its nearest existing parent is checked.
    type: path
    required: true
  safety_factor:
    description: Free space needed at O(backup_dir), as a multiple of the estimated dump size (heap + TOAST).
    type: float
    default: 1.5
  required_extensions:
    description: Extensions the migration needs; missing and not creatable means C(no-go).
    type: list
    elements: str
    default: []
  recommended_extensions:
    description: Extensions that the later steps use when present (a warning when absent).
    type: list
    elements: str
    default: [pg_stat_statements]
  max_transaction_seconds:
    description: A transaction open longer than this is a blocker (it holds back vacuum and the cutover's locks).
    type: int
    default: 300
  blocking_role_settings:
    description: Role-level settings (C(ALTER ROLE ... SET)) that make the verdict C(no-go).
    type: list
    elements: str
    default: [search_path]
  exact_counts:
    description: Count rows exactly (a sequential scan per table); V(false) uses the planner's estimates.
    type: bool
    default: true
  baseline_path:
    description:
      - File to write the baseline JSON to. When it is a directory (or ends with C(/)), a file named
        C(baseline-<UTC timestamp>.json) is created inside it. Parent directories are created.
      - Omit it to only return the assessment. Not written in check mode.
    type: path
  fail_on_nogo:
    description: Fail the task when the verdict is C(no-go) (after writing the baseline).
    type: bool
    default: false
notes:
  - Supports check mode; the database is only read, and in check mode the baseline file is not written.
seealso:
  - module: carbot.migration.performance
  - module: carbot.migration.monitoring
"""

EXAMPLES = r"""
- name: Assess the legacy database and write the baseline
  carbot.migration.assess:
    login_host: "{{ carbot_db_host }}"
    login_port: "{{ carbot_db_port }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    schema: "{{ carbot_legacy_schema }}"
    backup_dir: "{{ carbot_backup_dir }}"
    baseline_path: "{{ playbook_dir }}/../reports/baselines/"
  register: assessment
  no_log: true

- name: Stop here unless the preflight says go
  ansible.builtin.assert:
    that: assessment.verdict == 'go'
    fail_msg: "{{ assessment.reasons | join('; ') }}"
"""

RETURN = r"""
verdict:
  description: C(go) or C(no-go).
  returned: always
  type: str
  sample: no-go
reasons:
  description: The failed blocking checks, one message each.
  returned: always
  type: list
  elements: str
  sample: ["role_settings: role-level settings that would override ...: app: search_path=public"]
warnings_found:
  description: Failed non-blocking checks (for example a recommended extension that is absent).
  returned: always
  type: list
  elements: str
preflight:
  description: Every check, C({check, ok, severity, message, details}).
  returned: always
  type: list
  elements: dict
baseline_file:
  description: The baseline file written (null when none was written).
  returned: always
  type: str
  sample: reports/baselines/baseline-20251101T020000Z.json
assessment:
  description:
    - The whole baseline document, C(taken_at), C(server_version), C(totals), C(tables) (rows and sizes),
      C(pg_stat_user_tables), C(indexes), C(preflight), C(verdict).
  returned: always
  type: dict
carbot_report:
  description: The assessment's part of the migration report (preflight checks, verdict, volumes).
  returned: always
  type: dict
"""

import datetime

from ansible_collections.carbot.migration.plugins.module_utils import assess as assess_lib
from ansible_collections.carbot.migration.plugins.module_utils import common
from ansible_collections.carbot.migration.plugins.module_utils.schemas import LEGACY_SCHEMA


def main():
    spec = common.argument_spec(
        schema=dict(type="str", default=LEGACY_SCHEMA),
        backup_dir=dict(type="path", required=True),
        safety_factor=dict(type="float", default=1.5),
        required_extensions=dict(type="list", elements="str", default=[]),
        recommended_extensions=dict(type="list", elements="str", default=["pg_stat_statements"]),
        max_transaction_seconds=dict(type="int", default=300),
        blocking_role_settings=dict(type="list", elements="str", default=["search_path"]),
        exact_counts=dict(type="bool", default=True),
        baseline_path=dict(type="path"),
        fail_on_nogo=dict(type="bool", default=False),
    )
    module = common.database_module(spec, supports_check_mode=True)
    p = module.params

    def assess():
        with common.connection(p, "carbot.migration assess") as conn:
            conn.set_session(readonly=True)
            with conn.cursor() as cur:
                doc = assess_lib.assess(
                    cur, p["schema"], p["backup_dir"], required_extensions=p["required_extensions"],
                    recommended_extensions=p["recommended_extensions"], safety_factor=p["safety_factor"],
                    max_transaction_seconds=p["max_transaction_seconds"], exact_counts=p["exact_counts"],
                    blocking_role_settings=p["blocking_role_settings"])
            conn.rollback()
        return doc

    doc = common.run(module, assess, "The assessment could not run")

    path, changed = None, False
    if p["baseline_path"] and not module.check_mode:
        taken = datetime.datetime.fromisoformat(doc["taken_at"])
        try:
            path = assess_lib.write_baseline(assess_lib.baseline_file(p["baseline_path"], taken), doc)
            changed = True
        except OSError as exc:
            module.fail_json(msg="Could not write the baseline to %s: %s" % (p["baseline_path"], exc))
    doc["baseline_file"] = path
    msg = "verdict %s%s" % (doc["verdict"], (": " + "; ".join(doc["reasons"])) if doc["reasons"] else "")
    out = dict(changed=changed, verdict=doc["verdict"], reasons=doc["reasons"], warnings_found=doc["warnings"],
               preflight=doc["preflight"], baseline_file=path, assessment=doc,
               carbot_report=assess_lib.report_part(doc, path), msg=msg)
    if doc["verdict"] != "go" and p["fail_on_nogo"]:
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
