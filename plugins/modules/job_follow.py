#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: job_follow
short_description: Follow a long background job (backup, validation) until it ends, printing its progress
description:
  - Follows a job started with C(async) and C(poll=0), for example C(carbot.migration.db_backup) or
    C(carbot.migration.validate) given a C(progress_file), until it ends, in one task.
  - 'It checks the job every O(check_interval) seconds (so it returns about a second after the job ends) and
    prints one progress line read from O(progress_file) every O(poll_interval) seconds and once at the end
    (job, step n of total and phase, done / total, bytes written, the object at hand, elapsed time), for example
    C(backup [2/6 dump]: 7 / 25 tables, 1.2 MiB written, at public.leads; elapsed 12s).'
  - Returns the job's own result, unchanged (plus RV(rounds), RV(followed_seconds) and the last
    progress); a failed job fails this task with the module's own message, without any prefix.
  - Runs as an action plugin on the controller, as a loop. On a local connection it reads the job's status
    file and the progress file in-process; on other connections it runs C(async_status) and C(slurp) on the host.
  - C(carbot.migration.copy_follow) is the same for the copy, with the copy's per-table progress table.
version_added: 1.1.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.follow
options:
  progress_file:
    description:
      - The file the job writes its progress into (the module's own C(progress_file) option), on the host.
      - Without it only the job's end is waited for.
    type: path
  label:
    description: What the job is, in messages (C(backup), C(validation)).
    type: str
    default: job
  poll_interval:
    description: Seconds between two progress lines (the first one comes after at most 2 s).
  cleanup:
    description: Remove the job's status file and O(progress_file) once the job ended.
notes:
  - Does not support check mode itself; give the task C(check_mode=false) when it follows a read-only job
    that runs in check mode too (the validation).
"""

EXAMPLES = r"""
- name: Start the backup in the background, writing its progress
  carbot.migration.db_backup:
    login_db: carbot
    login_password: "{{ carbot_db_password }}"
    backup_dir: /var/backups/carbot
    progress_file: /tmp/carbot-backup.progress
  async: 43200
  poll: 0
  register: backup_job
  no_log: true

- name: Follow the backup, printing its progress, until it ends
  carbot.migration.job_follow:
    jid: "{{ backup_job.ansible_job_id }}"
    progress_file: /tmp/carbot-backup.progress
    label: backup
    poll_interval: 10
  register: backup_result
"""

RETURN = r"""
rounds:
  description: Progress lines read while following.
  returned: always
  type: int
followed_seconds:
  description: Seconds this task followed the job.
  returned: always
  type: float
progress:
  description: The last progress record (C(job), C(phase), C(step), C(steps), C(done), C(total), C(unit),
    C(current), C(bytes), C(started), C(updated)).
  returned: always
  type: dict
progress_lines:
  description: The last progress lines printed (at most 20).
  returned: always
  type: list
  elements: str
msg:
  description: The job's own message.
  returned: when the job returned one
  type: str
"""

from ansible_collections.carbot.migration.plugins.module_utils import job_progress


def main():
    job_progress.action_only("job_follow", job_progress.follow_argument_spec())


if __name__ == "__main__":
    main()
