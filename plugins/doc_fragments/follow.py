# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of the followers of a background job (carbot.migration.job_follow, carbot.migration.copy_follow),
    # built by module_utils/job_progress.follow_argument_spec(). A follower may document an option again to say
    # more (its own description or default), nothing else.
    DOCUMENTATION = r"""
options:
  jid:
    description: The async job id (C(ansible_job_id) of the task that started the job).
    type: str
    required: true
  poll_interval:
    description: Seconds between two progress reports.
    type: float
    default: 10.0
  check_interval:
    description: Seconds between two checks whether the job ended.
    type: float
    default: 1.0
  timeout:
    description: Seconds to follow before giving up; the job goes on in the background.
    type: int
    default: 43200
  cleanup:
    description: Remove the job's status file once the job ended.
    type: bool
    default: true
attributes:
  action:
    description: Runs as an action plugin on the controller.
    support: full
  check_mode:
    description: Not supported.
    support: none
"""
