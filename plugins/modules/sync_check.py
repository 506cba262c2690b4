#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sync_check
short_description: Final sync and completeness check for the cutover window
description:
  - B(Triggers.) The sync triggers of O(directions) are present and enabled on every table (the three statement
    triggers for V(forward), the row trigger and the set-aside triggers for V(reverse), and the C(TRUNCATE)
    guard) - the 25 legacy tables for V(forward), the carbot_v2 tables with a legacy twin for V(reverse).
  - B(Nothing pending.) Every table of the mapping has been copied (C(migration_status.state = copied)). The sync
    itself is synchronous (the trigger writes in the application's transaction), so there is no queue to drain.
  - B(Validation clean.) Counts and checksums (C(plugins/module_utils/validation.py)) of every table; any
    difference is named by key.
  - With O(repair=true), keys that validation names as missing, extra or different are repaired from the side
    that is the truth (O(repair_from)) through the same trigger functions, each key and column repaired is
    reported, and validation runs again; the check fails only when differences remain (see C(docs/sync.md)).
  - Read-only unless O(repair=true); timings per step are returned.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas
options:
  directions:
    description: Which trigger sets must be present and enabled.
    type: list
    elements: str
    choices: [forward, reverse]
    default: [forward]
  checks:
    description:
      - The validation checks to run (see C(carbot.migration.validate)).
      - V(changes) compares only the keys the sync wrote since the last clean validation with V(checksums) (the
        sync's change log), the final sync check inside the write freeze, whose cost does not grow with the tables.
    type: list
    elements: str
    default: [counts, checksums]
  repair:
    description: Re-sync the keys validation names, then validate again.
    type: bool
    default: false
  repair_from:
    description:
      - Which side is the truth for O(repair).
      - V(legacy) (before the switch, and for a cutover again after a rollback) re-syncs the named keys from the
        legacy schema into carbot_v2.
      - V(target) (after the switch, for the rollback) writes the legacy rows of keys that differ or are extra in
        carbot_v2 back from carbot_v2 (through their reverse triggers), and re-syncs forward the rows carbot_v2
        lacks (a legacy row is never deleted by a repair) and the derived tables.
    type: str
    choices: [legacy, target]
    default: legacy
  max_keys:
    description: At most this many differing keys per table are named (and repaired).
    type: int
    default: 1000
  fail_on_problem:
    description: Fail the task when a trigger is missing, a table is not copied or validation finds differences.
    type: bool
    default: true
notes:
  - Supports check mode (then O(repair) is ignored).
seealso:
  - module: carbot.migration.sync_triggers
  - module: carbot.migration.validate
"""

EXAMPLES = r"""
- name: Completeness check in the write freeze
  carbot.migration.sync_check:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
  no_log: true
  register: sync_state
"""

RETURN = r"""
triggers:
  description: Per direction, per table, C(row), C(truncate), C(enabled).
  returned: always
  type: dict
missing_triggers:
  description: C(direction:table) of every table without both triggers enabled.
  returned: always
  type: list
  elements: str
pending_tables:
  description: Tables of the mapping whose copy is not finished (C(table:state)).
  returned: always
  type: list
  elements: str
validation:
  description: The validation result (checks, failed_checks, msg).
  returned: always
  type: dict
repaired:
  description:
    - Per table, every key repaired (O(repair=true)), with the differing C(columns), whether the difference was
      C(data) or C(migration metadata only) (C(kind)), what validation found (C(found)) and what was done
      (C(action)).
  returned: always
  type: dict
  sample: {"customers": [{"key": "030c2ded-...", "columns": ["legacy_raw"], "kind": "migration metadata only",
           "found": "different", "action": "legacy row written from carbot_v2"}]}
change_log_pruned:
  description:
    - Rows of the sync's change log a clean validation with C(checksums) has covered and deleted; the C(changes)
      check (the final sync check in the write freeze) then reads only the keys written since.
  returned: when validation with checksums passed
  type: int
repaired_summary:
  description: One line per repaired key (table, key, columns, kind, action), as the operator reads it.
  returned: always
  type: list
  elements: str
timings:
  description: Seconds per step (triggers, pending, validation, repair, revalidation).
  returned: always
  type: dict
ok:
  description: Triggers complete, nothing pending, validation clean.
  returned: always
  type: bool
msg:
  description: Summary.
  returned: always
  type: str
"""

import time

from ansible_collections.carbot.migration.plugins.module_utils import common, db, messages, sync, validation


def pending_tables(conn, target_schema):
    from ansible_collections.carbot.migration.plugins.module_utils import mapping
    with conn.cursor() as cur:
        cur.execute(db.sql.SQL("SELECT target_table, state::text FROM {}").format(
            db.sql.Identifier(target_schema, "migration_status")))
        states = dict(cur.fetchall())
    conn.rollback()
    return ["%s:%s" % (t, states.get(t, "not started")) for t in mapping.target_tables()
            if states.get(t) != "copied"]


def repaired_summary(repaired, limit=50):
    """'<table> <key>: <columns> (<kind>): <action>' per repaired key, at most ``limit`` lines."""
    lines = []
    for table in sorted(repaired):
        for item in repaired[table]:
            key = item["key"] if isinstance(item["key"], str) else "/".join(item["key"])
            lines.append("%s %s: %s (%s): %s" % (table, key, ", ".join(item["columns"]) or item["found"],
                                                 item["kind"], item.get("action", "not repaired")))
    if len(lines) > limit:
        lines = lines[:limit] + ["... and %d more" % (len(lines) - limit)]
    return lines


def main():
    spec = common.argument_spec(
        ("legacy_schema", "target_schema", "mapping_schema"),
        directions=dict(type="list", elements="str", choices=["forward", "reverse"], default=["forward"]),
        checks=dict(type="list", elements="str", default=["counts", "checksums"]),
        repair=dict(type="bool", default=False),
        repair_from=dict(type="str", choices=["legacy", "target"], default="legacy"),
        max_keys=dict(type="int", default=1000, no_log=False),
        fail_on_problem=dict(type="bool", default=True),
    )
    module = common.database_module(spec, supports_check_mode=True)
    p = module.params
    schemas = (p["legacy_schema"], p["mapping_schema"], p["target_schema"])
    out = dict(changed=False, triggers={}, missing_triggers=[], pending_tables=[], validation={}, repaired={},
               repaired_summary=[], timings={})

    def body():
        with common.connection(p, "carbot.migration sync_check") as conn:
            t0 = time.monotonic()
            state = sync.status(conn, *schemas)
            conn.rollback()
            for direction in p["directions"]:
                out["triggers"][direction] = state[direction]
                out["missing_triggers"] += ["%s:%s" % (direction, t) for t, rec in state[direction].items()
                                            if not rec["enabled"]]
            out["timings"]["triggers"] = round(time.monotonic() - t0, 3)
            t0 = time.monotonic()
            out["pending_tables"] = pending_tables(conn, p["target_schema"])
            out["timings"]["pending"] = round(time.monotonic() - t0, 3)
            t0 = time.monotonic()
            validator = validation.Validator(conn, *schemas, max_keys=p["max_keys"])
            report = validator.run(checks=tuple(p["checks"]))
            out["timings"]["validation"] = round(time.monotonic() - t0, 3)
            if report["failed"] and p["repair"] and not module.check_mode:
                t0 = time.monotonic()
                plan = sync.Plan(conn, *schemas)
                out["repaired"] = sync.repair(conn, plan, report, p["repair_from"])
                conn.commit()
                out["repaired_summary"] = repaired_summary(out["repaired"])
                out["changed"] = any(out["repaired"].values())
                out["timings"]["repair"] = round(time.monotonic() - t0, 3)
                t0 = time.monotonic()
                report = validation.Validator(conn, *schemas, max_keys=p["max_keys"]).run(checks=tuple(p["checks"]))
                out["timings"]["revalidation"] = round(time.monotonic() - t0, 3)
            # the keys stay in checks (up to max_keys, for the repair and the report); the message counts them
            out["validation"] = {"checks": report["checks"], "failed_checks": report["failed_checks"],
                                 "msg": messages.validation_summary(report), "elapsed": report["elapsed"]}
            if not report["failed"] and "checksums" in report["checks"] and not module.check_mode:
                # what a clean full comparison covered leaves the change log: the final sync check in the write
                # freeze (checks: [changes]) then reads only what changed since
                plan = sync.Plan(conn, *schemas)
                out["change_log_pruned"] = sync.prune_change_log(conn, plan, report["checks"]["checksums"]["snapshot"])
                conn.commit()

    common.run(module, body, "sync_check failed", out=out, prefix_known=True)
    problems = []
    if out["missing_triggers"]:
        problems.append("triggers missing or disabled: %s" % messages.examples(out["missing_triggers"], keep=5))
    if out["pending_tables"]:
        problems.append("not copied: %s (run migrate.yml first)" % messages.examples(out["pending_tables"], keep=5))
    if out["validation"]["failed_checks"]:
        problems.append(out["validation"]["msg"])
    out["ok"] = not problems
    total = sum(out["timings"].values())
    out["msg"] = ("sync complete: triggers on every table, nothing pending, validation clean (%.1fs)" % total
                  if not problems else "; ".join(problems))
    if out["repaired_summary"]:
        n = sum(len(v) for v in out["repaired"].values())
        out["msg"] += "; repaired %d key%s from %s: %s" % (
            n, "" if n == 1 else "s", p["repair_from"], messages.lines_summary(out["repaired_summary"], 3))
    if problems and p["repair"]:
        out["msg"] += (". Differences remain after the repair: the named rows could not be written to the other "
                       "schema. Look at the named columns in both schemas (sync_check without repair shows them), "
                       "fix the value in the schema that is the truth (%s), and run this step again" % p["repair_from"])
    if problems and p["fail_on_problem"]:
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
