#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sync_triggers
short_description: Install or remove the live sync triggers between the legacy schema and carbot_v2
description:
  - B(forward) (legacy -> carbot_v2) puts three statement-level triggers (C(AFTER INSERT), C(AFTER UPDATE),
    C(AFTER DELETE) C(REFERENCING) the transition tables C(FOR EACH STATEMENT)) and a C(BEFORE TRUNCATE) guard
    on each of the 25 legacy tables; a row trigger of an older installation is replaced. The trigger functions
    are generated from the mapping declaration (C(plugins/module_utils/mapping.py)) - per target table one static
    plpgsql function upserts the key from the projection view C(map_<table>), quarantines it
    (C(migration_quarantine), with the view's reason) or deletes it, re-syncs its children when it enters or
    leaves the target, and re-derives organizations and chat sessions; the statement trigger calls it for every
    key the statement wrote (set-based for leaf tables). See C(docs/sync.md).
  - B(reverse) (carbot_v2 -> legacy, after the switch) puts the same pair of triggers on each carbot_v2 table
    that has a legacy twin; they write the legacy row from the reverse projection C(rmap_<table>)
    (C(sql/sync/)), so that a rollback returns to a legacy schema that holds every write. Installing it aligns
    the carbot_v2 id sequences past every legacy id; removing it moves the legacy sequences past every id
    carbot_v2 handed out.
  - The two directions never loop (a transaction-local marker, C(carbot.sync_origin)).
  - B(Safe under load.) C(CREATE TRIGGER) takes C(SHARE ROW EXCLUSIVE) and C(DROP TRIGGER) C(ACCESS EXCLUSIVE);
    while either waits for its lock every application write to the table queues behind it. So each table is
    one short transaction under O(lock_timeout_ms), retried with jittered exponential backoff up to
    O(max_attempts) times - a long reporting query or an idle-in-transaction writer costs the application at
    most one O(lock_timeout_ms) of delay per attempt. The attempts and seconds waited are returned per table.
  - Install the forward triggers B(before) the bulk copy (C(carbot.migration.data_copy)) - every write after a
    table's trigger exists is applied by the trigger, the copy inserts C(ON CONFLICT DO NOTHING), so nothing
    written between the copy's snapshot and the trigger can be lost, and a write to a row not copied yet
    simply creates it early.
  - Idempotent; check mode reports the tables whose triggers would be created or dropped.
  - B(Never re-pointed.) The schemas a sync is installed for are recorded in a C(COMMENT) on O(mapping_schema).
    Installing (also in check mode) fails, and changes nothing, when sync triggers of that mapping schema exist
    for another O(target_schema) or O(legacy_schema) (a typo in an inventory would otherwise send the legacy
    app's writes to another schema while the real target goes stale). To move the sync on purpose, remove it
    with the schemas it was installed for first.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas
options:
  state:
    description:
      - V(present) installs (functions are always re-created, triggers created where missing); V(absent) removes.
    type: str
    choices: [present, absent]
    default: present
  direction:
    description:
      - V(forward) legacy -> carbot_v2, V(reverse) carbot_v2 -> legacy, V(both).
      - With O(state=present) and V(both), forward is installed first; with O(state=absent), reverse is removed first.
    type: str
    choices: [forward, reverse, both]
    default: forward
  mapping_schema:
    description: Schema of the projection views; the trigger functions live there too (C(carbot_mapping_schema)).
  sql_dir:
    description:
      - Directory holding the reverse projections (C(sql/sync/) of the collection), applied when the reverse
        direction is installed. The roles pass it; a module cannot find the collection's files by itself.
    type: path
  max_attempts:
    description: Attempts per table before the module fails (each waits at most O(lock_timeout_ms)).
    type: int
    default: 30
notes:
  - Supports check mode.
  - O(lock_timeout_ms) applies per attempt; keep it well below what the application tolerates as one write's delay.
seealso:
  - module: carbot.migration.sync_check
  - module: carbot.migration.data_copy
"""

EXAMPLES = r"""
- name: Install the forward sync before the copy
  carbot.migration.sync_triggers:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    direction: forward
    lock_timeout_ms: 500
  no_log: true
  register: sync_install

- name: After the switch, writes to carbot_v2 flow back to the legacy tables
  carbot.migration.sync_triggers:
    login_db: carbot
    direction: reverse

- name: Cleanup (or after a rollback) - idempotent
  carbot.migration.sync_triggers:
    login_db: carbot
    direction: both
    state: absent
"""

RETURN = r"""
tables:
  description:
    - Per direction, per table, C(changed), C(attempts), C(waited_seconds) and the last lock errors.
    - In check mode C(would_create)/C(would_drop) lists instead.
  returned: always
  type: dict
  sample:
    forward:
      leads:
        changed: true
        attempts: 3
        waited_seconds: 1.42
        errors: ["LockNotAvailable: canceling statement due to lock timeout"]
functions:
  description: Per direction, the trigger/sync functions created or dropped.
  returned: always
  type: dict
sequences:
  description: Sequences moved (name -> new value) when the reverse direction was installed or removed.
  returned: always
  type: dict
attempts_total:
  description: Attempts over all tables (one per table when no lock had to be waited for).
  returned: always
  type: int
waited_seconds:
  description: Seconds spent on all tables' triggers, lock waits and backoff included.
  returned: always
  type: float
msg:
  description: What was done.
  returned: always
  type: str
"""

from ansible_collections.carbot.migration.plugins.module_utils import common, messages, sync


def unapplied_plan_changes(conn, p, directions):
    """Check mode before the mapping exists (prepare.yml --check on a fresh database, where the schema step only
    said it would apply it): every trigger would be created; None when the mapping is applied."""
    from ansible_collections.carbot.migration.plugins.module_utils import mapping
    missing = [t["view"] for t in mapping.TABLES if not mapping.view_columns(conn, p["mapping_schema"], t["view"])]
    if not missing or p["state"] != "present":
        return None
    tables = {}
    for direction in directions:
        names = mapping.legacy_tables() if direction == "forward" else \
            [t["target"] for t in mapping.TABLES if t["kind"] == "row"]
        tables[direction] = {"would_create": list(names), "would_drop": [], "unchanged": []}
    return tables


def main():
    spec = common.argument_spec(
        ("legacy_schema", "target_schema", "mapping_schema"),
        sql_dir=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        direction=dict(type="str", choices=["forward", "reverse", "both"], default="forward"),
        max_attempts=dict(type="int", default=30),
    )
    module = common.database_module(spec, supports_check_mode=True)
    p = module.params
    directions = ["forward", "reverse"] if p["direction"] == "both" else [p["direction"]]
    if p["state"] == "absent":
        directions.reverse()
    out = dict(changed=False, tables={}, functions={}, sequences={}, attempts_total=0, waited_seconds=0.0)

    def body():
        with common.connection(p, "carbot.migration sync_triggers plan") as conn:
            simulated = unapplied_plan_changes(conn, p, directions) if module.check_mode else None
            if simulated is not None:
                out["tables"], out["changed"] = simulated, True
                out["mapping_applied"] = False
            plan = None if simulated is not None else \
                sync.Plan(conn, p["legacy_schema"], p["mapping_schema"], p["target_schema"])
            if module.check_mode and simulated is None:
                if p["state"] == "present":
                    with conn.cursor() as cur:
                        sync.claim_schemas(cur, plan, record=False)  # refuses a re-pointing, as install does
                for direction in directions:
                    if direction == sync.REVERSE and p["state"] == "present":
                        plan.reverse_views = {t["target"] for t in plan.tables if t["kind"] == "row"}
                    changes = sync.plan_changes(conn, plan, direction, p["state"])
                    out["tables"][direction] = {"would_create": changes["create"], "would_drop": changes["drop"],
                                                "unchanged": changes["keep"]}
                    out["changed"] = out["changed"] or bool(changes["create"] or changes["drop"])
            if module.check_mode:
                conn.rollback()
                out["msg"] = "; ".join("%s: would create %d%s, drop %d%s" % (
                    d, len(v["would_create"]), (" (%s)" % messages.examples(v["would_create"], keep=8))
                    if v["would_create"] else "", len(v["would_drop"]),
                    (" (%s)" % messages.examples(v["would_drop"], keep=8)) if v["would_drop"] else "")
                    for d, v in out["tables"].items()) + (
                    " (once the schema step has applied the mapping, which it would do first)"
                    if simulated is not None else "")
                # --diff: the tables that carry the sync triggers of each direction, before and after
                out["diff"] = {
                    "before_header": "sync triggers (now)", "after_header": "sync triggers (after this step)",
                    "before": "".join("%s: %s\n" % (d, t) for d, v in out["tables"].items()
                                      for t in sorted(v["unchanged"] + v["would_drop"])),
                    "after": "".join("%s: %s\n" % (d, t) for d, v in out["tables"].items()
                                     for t in sorted(v["unchanged"] + v["would_create"])),
                }
                module.exit_json(**out)
        for direction in directions:
            func = sync.install if p["state"] == "present" else sync.remove
            kwargs = {"sql_dir": p["sql_dir"]} if p["state"] == "present" else {}
            res = func(p, plan, direction, lock_timeout_ms=p["lock_timeout_ms"], max_attempts=p["max_attempts"],
                       **kwargs)
            out["tables"][direction] = res["tables"]
            out["functions"][direction] = res["functions"]
            out["sequences"].update({k: int(v) for k, v in res["sequences"].items()})
            out["changed"] = out["changed"] or any(r["changed"] for r in res["tables"].values()) or (
                p["state"] == "absent" and bool(res["functions"]))
            out["attempts_total"] += sum(r["attempts"] for r in res["tables"].values())
            out["waited_seconds"] += sum(r["waited_seconds"] for r in res["tables"].values())

    # a SyncError (errors.PreconditionError) says why; a database error: "sync_triggers failed: .."
    common.run(module, body, "sync_triggers failed", out=out)
    out["waited_seconds"] = round(out["waited_seconds"], 3)
    retried = {t: r["attempts"] for d in out["tables"].values() for t, r in d.items() if r["attempts"] > 1}
    out["msg"] = "%s %s: %d tables changed, %d attempts%s" % (
        "installed" if p["state"] == "present" else "removed", "+".join(directions),
        sum(1 for d in out["tables"].values() for r in d.values() if r["changed"]), out["attempts_total"],
        (", retried: %s" % ", ".join("%s x%d" % kv for kv in sorted(retried.items()))) if retried else "")
    module.exit_json(**out)


if __name__ == "__main__":
    main()
