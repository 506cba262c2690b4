#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gdpr
short_description: GDPR verification, retention job and data-subject erasure on the legacy schema and carbot_v2
description:
  - V(verify) (read-only) consent per table, legacy against target, true/false/NULL counts on both sides and row by
    row (joined on the kept primary key) C(fabricated) (target true, legacy not true), C(null_changed) (legacy
    NULL, "never asked", became a value) and C(consent_lost). C(customers.marketing_consent ->
    gdpr_consent_given), C(leads.consent_given), C(consent_log.granted). The audit trail (C(audit_logs)) and the
    consent log arrive complete (counts equal, no legacy record missing). Erasure requests in C(gdpr_requests)
    marked C(done) whose requester's email still has data in either schema or in the quarantine.
  - V(retention) deletes C(analytics_events) older than O(analytics_retention_days) and clears C(ip_address) in
    C(analytics_events) and C(audit_logs) older than O(ip_retention_days), in the legacy schema first, then in
    the target (with sync triggers active the legacy changes already reached it). Batches of O(batch_size) rows,
    each its own transaction. With O(dry_run=true) or in check mode it only counts.
  - V(erase) erases one data subject, found by O(email) (case and blanks ignored) and/or O(kunde_id). It deletes
    the subject's customers, vehicles, appointments (and their services), reviews, leads, lead notes, chat
    messages, analytics events and consent log entries, and anonymises the audit log entries about those
    customers and leads (C(changes) and C(ip_address) set NULL), in the legacy schema in one transaction. With the
    sync triggers active it then proves that carbot_v2 has nothing left; if the sync is not active (or left
    something) it deletes in carbot_v2 directly. Quarantined legacy copies of the subject's rows are deleted
    too. With O(request_id) the erasure request is marked C(done).
  - Results carry counts per table, never the personal data itself; O(email) and O(kunde_id) are not logged.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  action:
    description: What to do.
    type: str
    choices: [verify, retention, erase]
    required: true
  analytics_retention_days:
    description: V(retention) analytics events older than this many days are deleted.
    type: int
    default: 395
  ip_retention_days:
    description: V(retention) IP addresses older than this many days are cleared.
    type: int
    default: 90
  reference_time:
    description:
      - V(retention) the moment the retention periods are counted back from (ISO 8601); default now.
        A rehearsal on generated data uses the data's own "now".
    type: str
  retention_schemas:
    description: V(retention) schemas to apply the retention to; default the legacy schema, then the target.
    type: list
    elements: str
  dry_run:
    description: V(retention) and V(erase) only count what would be deleted or cleared.
    type: bool
    default: false
  batch_size:
    description: V(retention) rows per batch (one transaction each).
    type: int
    default: 10000
  email:
    description: V(erase) the subject's email address.
    type: str
  kunde_id:
    description: V(erase) the subject's client key (widget cookie, C(kunde_id)).
    type: str
  request_id:
    description: V(erase) the C(gdpr_requests) id to mark C(done) when the erasure is committed.
    type: str
  sync:
    description:
      - V(erase) whether the sync triggers carry legacy changes to the target. V(auto) looks for enabled triggers
        whose name contains C(sync) on the legacy C(customers), C(leads), C(chat_messages), C(analytics_events).
    type: str
    choices: [auto, active, inactive]
    default: auto
  fail_on_findings:
    description: V(verify) fail the task when a check fails (the result still carries every figure).
    type: bool
    default: false
  max_retries:
    description: Attempts for a transaction that meets a lock timeout or a deadlock.
    type: int
    default: 10
notes:
  - Supports check mode; V(retention) and V(erase) then count instead of changing anything.
seealso:
  - name: docs/gdpr.md
    description: Retention rules, the erasure and what it keeps.
    link: https://git.carbot.example/ops/carbot.migration/-/blob/main/docs/gdpr.md
"""

EXAMPLES = r"""
- name: Verify consent, audit trail and erasure requests
  carbot.migration.gdpr:
    action: verify
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
  register: gdpr_verify
  no_log: true

- name: How much would the retention job remove?
  carbot.migration.gdpr:
    action: retention
    login_db: carbot
    analytics_retention_days: 395
    ip_retention_days: 90
    dry_run: true

- name: Erase a data subject (sync active)
  carbot.migration.gdpr:
    action: erase
    login_db: carbot
    email: "{{ subject_email }}"
    request_id: "{{ gdpr_request_id }}"
  no_log: true
"""

RETURN = r"""
verify:
  description:
    - V(verify) C(consent) per target table (C(legacy)/C(target) true/false/null, C(fabricated), C(null_changed),
      C(consent_lost), C(ok)), C(trail) per table (C(legacy), C(target), C(missing), C(extra), C(quarantined),
      C(counts_equal), C(ok)), C(erasure_requests) (C(done_erasure_requests), C(with_remaining_data),
      C(request_ids), C(rows_remaining) per table), C(failures), C(ok).
  returned: action is verify
  type: dict
retention:
  description:
    - V(retention) C(analytics_events_before), C(ip_addresses_before) (the cut-offs), C(dry_run), and per
      C(schema.table) C(expired_rows)/C(deleted) and C(old_ip_addresses)/C(ip_addresses_cleared).
  returned: action is retention
  type: dict
  sample:
    analytics_events_before: "2024-10-02T00:00:00+00:00"
    tables:
      public.analytics_events: {expired_rows: 4800, deleted: 4800, old_ip_addresses: 80, ip_addresses_cleared: 80}
erase:
  description:
    - V(erase) C(subject) (how many customers, leads, client keys were found), C(legacy) and C(target) rows per
      table (deleted, or anonymised for C(audit_logs); counted in check mode), C(quarantine), C(sync_active),
      C(sync_triggers), C(sync_propagated) (null without sync), C(target_direct), C(remaining) (must be empty),
      C(gone), C(request_marked_done).
  returned: action is erase
  type: dict
carbot_report:
  description: The action's part of the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common
from ansible_collections.carbot.migration.plugins.module_utils.errors import PreconditionError
from ansible_collections.carbot.migration.plugins.module_utils import gdpr


def verify(module, conn):
    """action=verify: the checks of module_utils/gdpr.py, read only."""
    p = module.params
    legacy, target = p["legacy_schema"], p["target_schema"]
    conn.set_session(readonly=True)
    with conn.cursor() as cur:
        res = gdpr.verify(cur, legacy, target)
    conn.rollback()
    msg = "GDPR verification: %s" % ("all checks passed" if res["ok"] else "; ".join(res["failures"]))
    out = dict(changed=False, verify=res, msg=msg, carbot_report=gdpr.report_verify(res))
    if p["fail_on_findings"] and not res["ok"]:
        module.fail_json(**out)
    module.exit_json(**out)


def retention(module, conn):
    """action=retention: expired analytics rows and old IP addresses."""
    p = module.params
    legacy, target = p["legacy_schema"], p["target_schema"]
    dry = p["dry_run"] or module.check_mode
    schemas = p["retention_schemas"] or [legacy, target]
    res = gdpr.retention(conn, schemas, p["analytics_retention_days"], p["ip_retention_days"],
                         dry_run=dry, batch_size=p["batch_size"], reference_time=p["reference_time"])
    would = any(r.get("expired_rows") or r.get("old_ip_addresses") for r in res["tables"].values())
    changed = res.pop("changed") or (module.check_mode and would)
    parts = ["%s: %s" % (t, ", ".join("%s %d" % kv for kv in sorted(r.items())))
             for t, r in sorted(res["tables"].items())]
    msg = "retention%s (events before %s, IPs before %s): %s" % (
        " dry run" if dry else "", res["analytics_events_before"][:10], res["ip_addresses_before"][:10],
        "; ".join(parts))
    report = {"gdpr: retention": dict(res, analytics_retention_days=p["analytics_retention_days"],
                                      ip_retention_days=p["ip_retention_days"])}
    module.exit_json(changed=bool(changed), retention=res, msg=msg, carbot_report=report)


def erase(module, conn):
    """action=erase: one data subject, in both schemas."""
    p = module.params
    legacy, target = p["legacy_schema"], p["target_schema"]
    execute = not (p["dry_run"] or module.check_mode)
    res = gdpr.erase(conn, legacy, target, email=p["email"], kunde_id=p["kunde_id"], sync=p["sync"],
                     request_id=p["request_id"], execute=execute, retries=p["max_retries"])
    changed = res.pop("changed") or (module.check_mode and res["subject_found"])
    if not res["subject_found"]:
        msg = "erase: no data found for the subject"
    else:
        msg = "erase%s: legacy %d rows, target %d rows%s, quarantine %s; sync %s%s" % (
            "" if execute else " (dry run, counts)", sum(res["legacy"].values()),
            sum((res["target"] or {}).values()), " (directly)" if res["target_direct"] else "",
            res["quarantine"], "active" if res["sync_active"] else "not active",
            "" if res["sync_propagated"] is None else (
                ", propagated" if res["sync_propagated"] else ", did NOT propagate everything: deleted directly"))
    if execute:
        msg += "; %s" % ("nothing left in either schema" if res["gone"] else "LEFT: %s" % res["remaining"])
    report = {"notes": ["GDPR erasure: %s" % msg]}
    if execute and not res["gone"]:
        module.fail_json(msg=msg, erase=res, changed=changed, carbot_report=report)
    module.exit_json(changed=changed, erase=res, msg=msg, carbot_report=report)


ACTIONS = {"verify": verify, "retention": retention, "erase": erase}


def main():
    spec = common.argument_spec(
        ("legacy_schema", "target_schema"),
        action=dict(type="str", required=True, choices=["verify", "retention", "erase"]),
        analytics_retention_days=dict(type="int", default=395),
        ip_retention_days=dict(type="int", default=90),
        reference_time=dict(type="str"),
        retention_schemas=dict(type="list", elements="str"),
        dry_run=dict(type="bool", default=False),
        batch_size=dict(type="int", default=10000),
        email=dict(type="str", no_log=True),
        kunde_id=dict(type="str", no_log=True),
        request_id=dict(type="str"),
        sync=dict(type="str", default="auto", choices=["auto", "active", "inactive"]),
        fail_on_findings=dict(type="bool", default=False),
        max_retries=dict(type="int", default=10),
    )
    module = common.database_module(spec, supports_check_mode=True,
                                    required_if=[("action", "erase", ("email", "kunde_id"), True)])
    p = module.params

    def body():
        with common.connection(p, "carbot.migration gdpr %s" % p["action"]) as conn:
            try:
                ACTIONS[p["action"]](module, conn)
            except ValueError as exc:  # module_utils/gdpr.py refuses the request
                raise PreconditionError(str(exc))

    common.run(module, body, "gdpr %s could not run" % p["action"])


if __name__ == "__main__":
    main()
