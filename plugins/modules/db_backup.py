#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: db_backup
short_description: A verified pg_dump of the CarBot database, tied to the run that made it
description:
  - V(backup) runs C(pg_dump) in custom format (C(-Fc)) or directory format (C(-Fd -j N)) into O(backup_dir),
    then verifies it and only then publishes it. Files per backup, named C(<db>-<UTC time>-<run_id>),
    the dump (C(.dump) file or C(.dir) directory), C(.sha256) (readable by C(sha256sum -c) from O(backup_dir))
    and C(.json), the manifest (run id, database, server, format, checksum, size, row counts, verification).
  - The dump is written under a C(.partial) name and renamed only after it verified; a failed C(pg_dump) or a
    failed verification leaves nothing behind but the error (no half-written backup that looks complete).
  - B(Verification.) The SHA-256 is computed from the file(s) on disk; C(pg_restore --list) must read the
    archive's table of contents; with O(verify_restore) the archive is restored into a scratch database
    (O(scratch_db), dropped afterwards) and row counts are compared, table by table, with the counts taken in
    B(the same snapshot) the dump was made from (C(pg_dump --snapshot) of an exported snapshot), so they must be
    equal even while the application writes.
  - V(verify) checks an existing backup again (O(path), or the newest backup of O(run_id) in O(backup_dir))
    against its C(.sha256) and manifest; a flipped byte, a truncated file or a missing part fails. This is how
    the cutover asserts that a verified backup from this very run exists before it changes anything.
  - B(Retention.) After a new backup verified, only the newest O(retention_keep) complete backups of the same
    database in O(backup_dir) are kept (files this module did not write are never touched).
  - The password goes to C(pg_dump)/C(pg_restore) through a temporary pgpass file (mode 0600, removed
    afterwards), never on the command line.
  - B(Private files.) C(pg_dump) runs under umask 077 and every file of the backup is made 0600 (directories
    0700) afterwards, in a O(backup_dir) made 0700 whatever its mode was.
  - Check mode says what would be dumped (database, size, tables, target path) and changes nothing.
  - B(Progress.) With O(progress_file) the module writes what it is doing into that file while it runs, the phase
    (snapshot, dump, row counts, verify archive, restore-verify, publish), tables dumped / total (from
    C(pg_dump --verbose)), bytes written, the table at hand, and in the scratch restore the tables restored /
    total (C(pg_restore --verbose)). Run the module with C(async) and follow it with C(carbot.migration.job_follow),
    which prints a line every few seconds (the C(carbot.migration.backup) role does this).
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
options:
  mode:
    description: V(backup) makes a new backup; V(verify) checks an existing one.
    type: str
    choices: [backup, verify]
    default: backup
  backup_dir:
    description:
      - Directory for backups (C(carbot_backup_dir)); created if missing, and made mode 0700 if it exists with
        another mode (a dump holds every secret of the database). The backup, its checksum and manifest are 0600.
    type: path
    required: true
  run_id:
    description:
      - Id of the run the backup belongs to (recorded in the manifest and the file name). V(verify) without
        O(path) looks for the newest backup of this run.
      - Default for V(backup) is the current UTC time.
    type: str
  path:
    description: V(verify) this backup (the C(.dump) file or C(.dir) directory).
    type: path
  format:
    description: V(custom) (one compressed file) or V(directory) (one file per table, dumped with O(jobs) workers).
    type: str
    choices: [custom, directory]
    default: custom
  jobs:
    description: Parallel workers for C(pg_dump -Fd) and for the scratch C(pg_restore).
    type: int
    default: 2
  compress:
    description: Compression level for C(pg_dump -Z) (default that of pg_dump).
    type: int
  schemas:
    description: Only these schemas (C(pg_dump -n)); default the whole database.
    type: list
    elements: str
  tables:
    description:
      - Only these tables, as C(schema.table) (the first dot separates them; C(pg_dump -t) with both names quoted, so
        they are matched literally, also names that need quoting such as C(Carbot V2.migration_status)).
      - Each must exist; with O(schemas) too, a table must also be in one of them.
    type: list
    elements: str
  verify_restore:
    description: Also restore into O(scratch_db) and compare row counts.
    type: bool
    default: false
  scratch_db:
    description:
      - Scratch database for O(verify_restore); dropped before and after. Default C(<login_db>_backup_verify).
        Never the database being backed up.
    type: str
  verify_tables:
    description:
      - C(schema.table) names whose row counts are recorded and compared after the scratch restore. Default every
        table of the dump.
    type: list
    elements: str
    default: []
  retention_keep:
    description: Keep this many newest complete backups of the database in O(backup_dir); 0 keeps all.
    type: int
    default: 3
  progress_file:
    description:
      - Write the progress into this file (JSON, replaced atomically, mode 0600) while the module runs; see
        C(carbot.migration.job_follow). Default none.
    type: path
  bin_dir:
    description:
      - Directory of C(pg_dump) and C(pg_restore). Default C(/usr/lib/postgresql/<server major>/bin) if it exists,
        else the newest installed version that is not older than the server, else the C(PATH).
    type: path
notes:
  - The connecting role needs to read everything dumped (C(carbot_db_user) owns both schemas), and C(CREATEDB)
    for O(verify_restore).
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Back up the CarBot database before the cutover
  carbot.migration.db_backup:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    backup_dir: "{{ carbot_backup_dir }}"
    run_id: "{{ carbot_run_id }}"
    format: directory
    jobs: 4
    verify_restore: true
  register: backup
  no_log: true

- name: The same in the background, printing its progress every 10 s
  carbot.migration.db_backup:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    backup_dir: "{{ carbot_backup_dir }}"
    progress_file: /tmp/carbot-backup.progress
  async: 43200
  poll: 0
  register: backup_job
  no_log: true

- name: Follow the backup until it ends
  carbot.migration.job_follow:
    jid: "{{ backup_job.ansible_job_id }}"
    progress_file: /tmp/carbot-backup.progress
    label: backup
  register: backup

- name: Archive two tables of the target schema, kept however many backups follow
  carbot.migration.db_backup:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    backup_dir: "{{ carbot_backup_dir }}/migration-archive"
    run_id: cleanup-carbot_v2
    tables: [carbot_v2.migration_status, carbot_v2.migration_quarantine]
    retention_keep: 0
  no_log: true

- name: Refuse to go on without a verified backup of this run
  carbot.migration.db_backup:
    mode: verify
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    backup_dir: "{{ carbot_backup_dir }}"
    run_id: "{{ carbot_run_id }}"
  no_log: true
"""

RETURN = r"""
path:
  description: The backup (C(.dump) file or C(.dir) directory); in check mode, where it would go.
  returned: always
  type: str
sha256:
  description: SHA-256 of the dump file (custom) or of the C(.sha256) listing of every file (directory).
  returned: success
  type: str
size:
  description: Bytes on disk.
  returned: success
  type: int
seconds:
  description: Time taken by the dump (V(backup)) or the check (V(verify)).
  returned: success
  type: float
verified:
  description: Checksum, table of contents (and, if asked, the scratch restore) all fine.
  returned: always
  type: bool
run_id:
  description: The run the backup belongs to.
  returned: always
  type: str
manifest:
  description: The C(.json) manifest, as written.
  returned: success
  type: dict
removed:
  description: Older backups removed by retention (or that would be, in check mode).
  returned: always
  type: list
  elements: str
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common
from ansible_collections.carbot.migration.plugins.module_utils.backup import Backup


def main():
    argument_spec = common.argument_spec(
        mode=dict(type="str", default="backup", choices=["backup", "verify"]),
        backup_dir=dict(type="path", required=True),
        run_id=dict(type="str"),
        path=dict(type="path"),
        format=dict(type="str", default="custom", choices=["custom", "directory"]),
        jobs=dict(type="int", default=2),
        compress=dict(type="int"),
        schemas=dict(type="list", elements="str"),
        tables=dict(type="list", elements="str"),
        verify_restore=dict(type="bool", default=False),
        scratch_db=dict(type="str"),
        verify_tables=dict(type="list", elements="str", default=[]),
        retention_keep=dict(type="int", default=3),
        bin_dir=dict(type="path"),
        progress_file=dict(type="path"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True)
    for name in module.params["verify_tables"]:
        if "." not in name:
            module.fail_json(msg="verify_tables entries are schema.table, got %r" % name)
    job = Backup(module)
    result = common.run(
        module, job.verify if module.params["mode"] == "verify" else job.backup,
        "database error during %s of %s" % (module.params["mode"], module.params["login_db"]),
        out=lambda error: dict(verified=False, run_id=module.params["run_id"], removed=[],
                               carbot_report={"backup": {"verified": False, "error": error}}),
        on_error=lambda: job.progress.finish("failed"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
