#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: copy_follow
short_description: Follow the background copy until it ends, printing its progress
description:
  - Follows a C(carbot.migration.data_copy) job started with C(async) and C(poll=0) until it ends, in one
    task. It checks the job every O(check_interval) seconds (so it returns about a second after the job ends)
    and prints the progress table every O(poll_interval) seconds and once at the end.
  - The table lists the tables in copy order (the dependency order the engine copies in) with rows done /
    total, rows/s and ETA, and one overall line with rows done / total, rows/s, ETA and elapsed time. A
    finished table shows 100 % (its quarantined rows are done too). The overall rate is right from the first
    round (the sum of the rates of the tables being copied, measured from their start in C(migration_status)),
    then measured over the last 30 s of the follow.
  - Runs as an action plugin on the controller, as a loop (no task file including itself, which hit
    RecursionError after ~245 rounds). On a local connection it reads the job's status file and
    C(migration_status) in-process; on other connections it runs C(async_status) and
    C(carbot.migration.data_copy) C(mode=progress) on the host each round.
  - Returns the copy job's own result (see C(carbot.migration.data_copy)); fails with the job's message when
    the job failed.
version_added: 1.1.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.follow
  - carbot.migration.postgres
  - carbot.migration.schemas.target
options:
  jid:
    description: The async job id of the copy (C(ansible_job_id) of the task that started it).
  poll_interval:
    description: Seconds between two progress tables.
    default: 15.0
  timeout:
    description:
      - Seconds to follow before giving up; the job goes on in the background and a rerun of the role
        follows it.
  target_schema:
    description: Schema holding C(migration_status) (the target schema, C(carbot_target_schema)).
  tables:
    description: Target tables to show; V([]) for every table.
    type: list
    elements: str
    default: []
notes:
  - Does not support check mode (there is no job to follow in check mode; the role previews the copy instead).
"""

EXAMPLES = r"""
- name: Start the copy in the background
  carbot.migration.data_copy:
    login_db: carbot
  async: 43200
  poll: 0
  register: copy_job
  no_log: true

- name: Follow the copy, printing its progress, until it ends
  carbot.migration.copy_follow:
    jid: "{{ copy_job.ansible_job_id }}"
    login_db: carbot
    poll_interval: 15
  register: copy_result
  no_log: true
"""

RETURN = r"""
rounds:
  description: Progress tables read while following.
  returned: always
  type: int
followed_seconds:
  description: Seconds this task followed the job.
  returned: always
  type: float
progress:
  description: The last progress records, in copy order (table, state, rows_done, rows_total, rows_per_second,
    eta_seconds, last_error).
  returned: always
  type: list
  elements: dict
progress_lines:
  description: The last progress table, as printed.
  returned: always
  type: list
  elements: str
msg:
  description: The copy job's message.
  returned: when the job ended
  type: str
"""

from ansible_collections.carbot.migration.plugins.module_utils import copy_progress, job_progress


def main():
    job_progress.action_only("copy_follow", copy_progress.follow_argument_spec())


if __name__ == "__main__":
    main()
