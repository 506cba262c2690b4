#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: data_copy
short_description: Copy the legacy CarBot data into carbot_v2 through the mapping views, resumably
description:
  - Copies every target table of the mapping declaration (C(plugins/module_utils/mapping.py), C(TABLES))
    from its projection view C(<mapping_schema>.map_<table>) into C(<target_schema>.<table>), parents before
    children, several tables in parallel.
  - Each table is walked in keyset batches over the driving legacy table's primary key. One batch is one
    statement that locks its source keys (C(FOR KEY SHARE)), inserts the view's rows for exactly those keys
    (C(ON CONFLICT DO NOTHING)), records rows with a C(_quarantine_reason) in C(migration_quarantine), and is
    committed together with its checkpoint in C(migration_status). Killing the run at any moment and running
    it again finishes the job with no duplicate and nothing missing.
  - Idempotent. A second run copies nothing and reports C(changed=false).
  - Rows deleted by the application while the copy runs never come back (the batch only inserts keys it
    could lock; the sync trigger removes rows deleted after that).
  - Progress (rows done / total, rows per second, ETA per table) is written to C(migration_status) after
    every batch and, with O(progress_file), as JSON lines. Run the module with C(async) and poll it with
    O(mode=progress) to show it while the copy runs (the C(carbot.migration.data_copy) role does this).
  - Statements run under C(lock_timeout) (O(lock_timeout_ms)) and are retried with jittered backoff on lock
    timeouts, deadlocks and dropped connections (reconnecting), up to O(max_retries) attempts per batch.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas
options:
  mode:
    description:
      - V(copy) copies (in check mode it reports per table how many rows it would copy and quarantine).
      - V(progress) only reads C(migration_status) and returns the progress table; it never writes.
    type: str
    choices: [copy, progress]
    default: copy
  tables:
    description:
      - Target tables to copy; default all tables of the mapping declaration.
      - They are still copied in dependency order; a dependency that is not listed is not waited for.
    type: list
    elements: str
    default: []
  batch_size:
    description:
      - Rows per batch (one transaction each). When not set, batches start at 10000 rows and adapt to about
        one second each (between 500 and 100000 rows), so that the locks on the source keys stay short.
    type: int
  workers:
    description: Tables copied in parallel, each on its own connection. Default one per CPU core of the host.
    type: int
  progress_file:
    description: Append a JSON line per batch (table, rows done/total, rows/s, ETA, retries) to this file.
    type: path
  max_retries:
    description: Attempts per batch before the table is marked C(failed) (retryable errors only).
    type: int
    default: 10
notes:
  - Supports check mode. O(mode=copy) then reports what it would copy and quarantine and writes nothing.
  - Run it C(async) for big databases and poll with O(mode=progress).
  - Two runs at the same time (for example an orphaned async job and its rerun) are safe; they take turns
    per batch on the checkpoint row.
seealso:
  - module: carbot.migration.validate
  - name: docs/architecture.md
    description: The contract between the mapping, the copy and the validation.
    link: https://git.carbot.example/ops/carbot.migration/-/blob/main/docs/architecture.md
"""

EXAMPLES = r"""
- name: Copy everything, in the background
  carbot.migration.data_copy:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    workers: 4
    progress_file: /var/log/carbot/copy-progress.jsonl
  async: 86400
  poll: 0
  register: copy_job
  no_log: true

- name: Show the progress
  carbot.migration.data_copy:
    login_db: carbot
    mode: progress
  register: copy_progress

- name: What would be copied
  carbot.migration.data_copy:
    login_db: carbot
    tables: [customers, leads]
  check_mode: true
"""

RETURN = r"""
tables:
  description:
    - Per target table. After a copy C(source_rows), C(copied) and C(quarantined) (by this run),
      C(already_present) (target rows that were there before this run), C(target_rows), C(batches),
      C(elapsed) seconds, C(rows_per_second), C(state). In check mode C(source_rows), C(would_copy),
      C(would_quarantine).
  returned: mode=copy
  type: dict
  sample:
    customers: {state: copied, source_rows: 20000, copied: 19900, quarantined: 100, already_present: 0,
                target_rows: 19900, batches: 3, elapsed: 1.8, rows_per_second: 11111.1}
rows_copied:
  description: Rows this run inserted into the target (0 on a rerun after success).
  returned: mode=copy
  type: int
rows_quarantined:
  description: Rows this run recorded in C(migration_quarantine).
  returned: mode=copy
  type: int
failed_tables:
  description: Tables that failed after all retries (their dependants are in C(skipped_tables)).
  returned: mode=copy
  type: list
  elements: str
skipped_tables:
  description: Tables not copied because a table they depend on failed.
  returned: mode=copy
  type: list
  elements: str
run_id:
  description: Id of this run, written to C(migration_status.run_id) and C(migration_quarantine.run_id).
  returned: mode=copy and not check mode
  type: str
progress:
  description: One record per table from C(migration_status) (table, state, rows_done, rows_total,
    rows_per_second, eta_seconds, last_error).
  returned: always
  type: list
  elements: dict
progress_lines:
  description: The same as a small text table, for C(ansible.builtin.debug).
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds the whole copy took.
  returned: mode=copy and not check mode
  type: float
"""

from ansible_collections.carbot.migration.plugins.module_utils import common, copy_engine


def argument_spec():
    return common.argument_spec(
        ("target_schema", "mapping_schema", "legacy_schema"),
        mode=dict(type="str", default="copy", choices=["copy", "progress"]),
        tables=dict(type="list", elements="str", default=[]),
        batch_size=dict(type="int"),
        workers=dict(type="int"),
        progress_file=dict(type="path"),
        max_retries=dict(type="int", default=10),
    )


def progress(params, tables=None):
    with common.connection(params, "carbot.migration copy progress", autocommit=True) as conn:
        records = copy_engine.read_progress(conn, params["target_schema"], tables)
    return records, copy_engine.format_progress(records)


def main():
    module = common.database_module(argument_spec(), supports_check_mode=True)
    p = module.params
    for name in ("batch_size", "workers", "max_retries"):
        if p[name] is not None and p[name] < 1:
            module.fail_json(msg="%s must be at least 1, got %s" % (name, p[name]))

    if p["mode"] == "progress":
        records, lines = common.run(module, lambda: progress(p, p["tables"] or None),
                                    "Could not read the copy progress", prefix_known=True)
        module.exit_json(changed=False, progress=records, progress_lines=lines,
                         finished=bool(records) and all(r["state"] in ("copied", "failed") for r in records))

    engine = common.run(module, lambda: copy_engine.CopyEngine(
        p, legacy_schema=p["legacy_schema"], mapping_schema=p["mapping_schema"],
        target_schema=p["target_schema"], selected=p["tables"], batch_size=p["batch_size"],
        workers=p["workers"], progress_file=p["progress_file"], max_retries=p["max_retries"],
    ), "The copy could not start")

    if module.check_mode:
        preview = common.run(module, engine.preview, "Could not work out what the copy would do", prefix_known=True)
        would = sum(t["would_copy"] for t in preview.values())
        would_q = sum(t["would_quarantine"] for t in preview.values())
        module.exit_json(changed=(would + would_q) > 0, tables=preview, rows_copied=0, rows_quarantined=0,
                         rows_would_copy=would, rows_would_quarantine=would_q, failed_tables=[],
                         skipped_tables=[], progress=[], progress_lines=[],
                         msg="would copy %d rows and quarantine %d" % (would, would_q))

    # a CopyError (errors.TableError: a missing view or table) says so; anything else: "The copy could not start"
    result = common.run(module, engine.run, "The copy could not start")
    try:
        records, lines = progress(p, p["tables"] or None)
    except Exception:  # noqa: BLE001 - the copy result matters more than the progress table
        records, lines = [], []
    out = dict(
        changed=(result["rows_copied"] + result["rows_quarantined"]) > 0,
        tables=result["tables"], rows_copied=result["rows_copied"], rows_quarantined=result["rows_quarantined"],
        failed_tables=result["failed"], skipped_tables=result["skipped"], run_id=result["run_id"],
        retries=result["retries"], workers=result["workers"], elapsed=result["elapsed"],
        progress=records, progress_lines=lines,
    )
    if result["failed"] or result["skipped"]:
        reasons = ["%s: %s" % (name, result["tables"][name].get("error") or result["tables"][name].get("reason"))
                   for name in result["failed"] + result["skipped"]]
        module.fail_json(msg="The copy did not finish; rerun it to resume. " + "; ".join(reasons), **out)
    out["msg"] = "copied %d rows, quarantined %d, in %.1fs" % (
        result["rows_copied"], result["rows_quarantined"], result["elapsed"])
    module.exit_json(**out)


if __name__ == "__main__":
    main()
