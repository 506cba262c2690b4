# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin carbot.migration.job_follow: follow a long async job (backup, validation) until it ends.

The backup and the validation take tens of seconds to hours and a module says nothing until it returns.
Started with ``async`` and ``poll: 0`` and given a ``progress_file``, the module writes what it is doing
there (module_utils/job_progress.py); this plugin, like copy_follow, loops on the controller:

* the job is checked every ``check_interval`` seconds, so the task returns about a second after the job ends;
* every ``poll_interval`` seconds (and once at the end) one progress line is printed: phase, done / total,
  bytes written, the object at hand, elapsed time;
* the result is the job's own result, unchanged; a failed job fails this task with the module's own ``msg``
  (no prefix: the operator reads the module's message once, last).

Local connections read the job's status file and the progress file in-process; others run ``async_status``
and ``slurp`` on the host. The module plugins/modules/job_follow.py holds the documentation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.carbot.migration.plugins.module_utils import job_progress
from ansible_collections.carbot.migration.plugins.plugin_utils.async_job import (
    AsyncJobMixin, job_result, stop_when_orphaned)

display = Display()


class ActionModule(AsyncJobMixin, ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = False
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=job_progress.follow_argument_spec())
        jid, label, path = args["jid"], args["label"], args["progress_file"]
        self.JOB_LABEL = "%s job" % label
        poll, check = max(args["poll_interval"], 0.0), max(args["check_interval"], 0.01)
        stop_when_orphaned()  # after a kill -9 of ansible-playbook this worker lives on (setsid)
        started = time.monotonic()
        next_line = started + min(poll, 2.0)  # the first line soon, then every poll_interval
        rounds, record, lines = 0, None, []
        while True:
            status = self._job_status(jid, task_vars)
            finished = bool(int(status.get("finished") or 0))
            now = time.monotonic()
            if path and (finished or now >= next_line):
                rounds += 1
                got = job_progress.parse(self._read_host_file(path, task_vars) or "")
                record = got or record
                if record is not None:
                    line = job_progress.format_line(record)
                else:  # the job has not written its first record yet (or failed before it could)
                    line = "%s [starting]; followed %s" % (label, job_progress.duration(now - started))
                if not finished or got is not None:
                    lines.append(line)
                    display.display(line)
                next_line = now + poll
            if finished:
                break
            if now - started > args["timeout"]:
                result.update(failed=True, rounds=rounds, followed_seconds=round(now - started, 1),
                              msg="the %s job %s still runs after %d s of following; it goes on in the background "
                                  "(async_status jid=%s)" % (label, jid, args["timeout"], jid))
                return result
            time.sleep(max(min(check, next_line - time.monotonic()), 0.001))
        result.update(job_result(status))
        result.update(ansible_job_id=jid, rounds=rounds, followed_seconds=round(time.monotonic() - started, 1),
                      progress=record or {}, progress_lines=lines[-20:])
        if args["cleanup"]:
            self._cleanup(jid, task_vars)
            if path:
                self._remove_host_file(path, task_vars)
        if status.get("failed"):
            result["failed"] = True
            result["msg"] = status.get("msg") or "the %s job ended without a message" % label
        return result
