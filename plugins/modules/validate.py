#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: validate
short_description: Prove that carbot_v2 holds exactly the mapped legacy data
description:
  - Compares the legacy CarBot data, seen through the mapping views, with carbot_v2 and checks the
    target on its own. Read-only; it runs in check mode too.
  - V(counts) per table, legacy rows = target rows + quarantined rows (for derived tables the view's rows).
  - V(checksums) per table, a hash of every mapped row
    (C(SELECT <target columns> FROM map_<table> WHERE _quarantine_reason IS NULL)) against the same columns
    of the target, computed in chunks of key ranges (about O(chunk_rows) rows each). Differing chunks are
    compared row by row and the differing keys named as missing, extra or different, with a masked sample of
    the differing values.
  - V(integrity) every foreign key declared in the target schema (also C(NOT VALID) ones) is checked for rows
    without a parent.
  - V(quality) invalid emails, postal codes and licence plates in the target.
  - V(consent) true/false/NULL consent per table in legacy and target; consent is never fabricated (target
    true = legacy true of the migrated rows, and no target true whose legacy value is not true).
  - V(unmapped) legacy values the mapping does not know (the mapping's C(unmapped_values) view) and legacy
    tables with rows that no mapping entry reads.
  - Personal data in any returned sample is masked (C(m***@w***.de), names as initials).
  - B(Progress.) With O(progress_file) the module writes the check at hand (n of total), the table (or foreign
    key) at hand and how many of them are done into that file while it runs. Run it with C(async) and follow it
    with C(carbot.migration.job_follow), which prints a line every few seconds (the C(carbot.migration.validate)
    role does this).
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas
options:
  checks:
    description: The checks to run, in this order.
    type: list
    elements: str
    choices: [counts, checksums, integrity, quality, consent, unmapped, changes]
    default: [counts, checksums, integrity, quality, consent, unmapped]
  tables:
    description: Target tables to check (counts, checksums, quality, consent); default all of the mapping.
    type: list
    elements: str
    default: []
  chunk_rows:
    description: About how many rows one checksum chunk covers.
    type: int
    default: 10000
  max_keys:
    description: At most this many differing keys are named per table and kind.
    type: int
    default: 20
  quality_max_invalid:
    description: The V(quality) check fails when a column has more invalid values than this.
    type: int
    default: 0
  consent_columns:
    description:
      - Consent columns to compare, each C({target, legacy_column, target_column}).
      - Default C(customers.marketing_consent -> gdpr_consent_given), C(leads.consent_given -> consent_given),
        C(consent_log.granted -> granted).
    type: list
    elements: dict
  progress_file:
    description:
      - Write the progress into this file (JSON, replaced atomically, mode 0600) while the module runs; see
        C(carbot.migration.job_follow). Default none. Written in check mode too (the module reads either way).
    type: path
  fail_on_mismatch:
    description: Fail the task when a check fails. With V(false) the result still says C(validation_failed).
    type: bool
    default: true
notes:
  - Supports check mode (the module never writes).
  - Every statement runs in one read-only transaction per check, under the connection's C(statement_timeout).
seealso:
  - module: carbot.migration.data_copy
"""

EXAMPLES = r"""
- name: Validate everything
  carbot.migration.validate:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
  register: validation
  no_log: true

- name: Only the cheap checks, report but do not fail
  carbot.migration.validate:
    login_db: carbot
    checks: [counts, integrity]
    fail_on_mismatch: false

- name: Validate in the background, writing the progress
  carbot.migration.validate:
    login_db: carbot
    progress_file: /tmp/carbot-validation.progress
  async: 43200
  poll: 0
  register: validation_job

- name: Follow the validation, a line every 10 s, until it ends
  carbot.migration.job_follow:
    jid: "{{ validation_job.ansible_job_id }}"
    progress_file: /tmp/carbot-validation.progress
    label: validation
  register: validation
"""

RETURN = r"""
checks:
  description:
    - One entry per check that ran, each with C(ok) (bool), C(failures) (list of messages) and its details
      (C(tables) for counts/checksums/consent, C(foreign_keys) for integrity, C(columns) for quality,
      C(unmapped_values)/C(unread_tables) for unmapped).
  returned: always
  type: dict
  sample:
    counts:
      ok: false
      failures:
        - "customers: 20000 public.customers rows != 19890 in carbot_v2.customers + 100 quarantined (difference +10)"
      tables: {customers: {source_rows: 20000, target_rows: 19890, quarantined: 100, difference: 10, ok: false}}
    checksums:
      ok: false
      failures: ["customers: 1 different: 0b9e..."]
      tables:
        customers:
          ok: false
          different_keys: ["0b9e..."]
          samples: [{key: "0b9e...", columns: {email: {expected: "m***@w***.de", found: "m***@g***.de"}}}]
failed_checks:
  description: Names of the checks that failed.
  returned: always
  type: list
  elements: str
validation_failed:
  description: True when any check failed.
  returned: always
  type: bool
elapsed:
  description: Seconds per check.
  returned: always
  type: dict
msg:
  description: One line per failed check, or that all passed.
  returned: always
  type: str
carbot_report:
  description: The validation's part of the migration report (per-table counts, quarantine reasons, checksum verdicts).
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common, job_progress, validation

CHECKS = ["counts", "checksums", "integrity", "quality", "consent", "unmapped", "changes"]


def main():
    spec = common.argument_spec(
        ("target_schema", "mapping_schema", "legacy_schema"),
        # changes: only for the final sync check (the sync's change log), not a default
        checks=dict(type="list", elements="str", choices=CHECKS, default=[c for c in CHECKS if c != "changes"]),
        tables=dict(type="list", elements="str", default=[]),
        chunk_rows=dict(type="int", default=10000),
        max_keys=dict(type="int", default=20, no_log=False),
        quality_max_invalid=dict(type="int", default=0),
        consent_columns=dict(type="list", elements="dict"),
        fail_on_mismatch=dict(type="bool", default=True),
        progress_file=dict(type="path"),
    )
    module = common.database_module(spec, supports_check_mode=True)
    p = module.params
    for pair in p["consent_columns"] or []:
        if not {"target", "legacy_column", "target_column"} <= set(pair):
            module.fail_json(msg="consent_columns entries need target, legacy_column and target_column: %s" % pair)
    progress = job_progress.ProgressFile(p["progress_file"], "validation")
    progress.update(phase="connecting", detail="to %s" % p["login_db"])

    def validate():
        with common.connection(p, "carbot.migration validate") as conn:
            conn.set_session(readonly=True)
            return validation.Validator(
                conn, legacy_schema=p["legacy_schema"], mapping_schema=p["mapping_schema"],
                target_schema=p["target_schema"], selected=p["tables"], chunk_rows=p["chunk_rows"],
                max_keys=p["max_keys"], consent_columns=p["consent_columns"],
                quality_max_invalid=p["quality_max_invalid"], progress=progress).run(p["checks"])

    result = common.run(module, validate, "Validation could not run", on_error=lambda: progress.finish("failed"),
                        prefix_known=True)
    out = dict(changed=False, checks=result["checks"], failed_checks=result["failed_checks"],
               validation_failed=result["failed"], elapsed=result["elapsed"], msg=result["msg"],
               carbot_report=validation.report_part(result))
    progress.update(phase="done", step=None, steps=None, detail=result["msg"][:200])
    progress.finish("failed" if result["failed"] else "done")
    if result["failed"] and p["fail_on_mismatch"]:
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
