# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin carbot.migration.copy_follow: follow the background copy until it ends, in one task.

It replaces a task file that included itself once per round (roles/data_copy/tasks/follow.yml): each
include nested one level deeper in ansible-core's include machinery, and the same pattern hit
RecursionError after ~245 rounds (a 12 h copy polled every 15 s is 2880 rounds). Here the rounds are a
plain loop on the controller:

* the job is checked every ``check_interval`` seconds (1 s), so the task returns within about a second
  of the job's end instead of after a fixed sleep (a 2.5 s copy took 18.8 s with a 15 s poll);
* every ``poll_interval`` seconds, and once at the end, the progress table is printed: tables in copy
  order, overall rows done / total, rows/s and ETA (module_utils/copy_progress.py);
* it ends, leaving the job and its status file alone, as soon as ansible-playbook has gone (its
  workers call setsid(), so a kill -9 of ansible-playbook leaves this loop running otherwise);
* on a local connection (every inventory of this collection runs the modules on the controller) the
  job's status file and migration_status are read in-process, a round costs milliseconds; on any other
  connection (or without psycopg2 on the controller) each round runs ``async_status`` and
  ``data_copy mode=progress`` on the host.

The result is the copy job's own result (``msg``, ``tables``, ``rows_copied`` ...) plus ``rounds`` and
``followed_seconds``; a failed job fails this task with the job's message. The module
(plugins/modules/copy_follow.py) holds the documentation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.carbot.migration.plugins.module_utils import copy_progress
from ansible_collections.carbot.migration.plugins.plugin_utils.async_job import (
    AsyncJobMixin, job_result, stop_when_orphaned)

display = Display()

CONNECTION_ARGS = ("login_host", "login_port", "login_db", "login_user", "login_password", "ssl_mode",
                   "connect_timeout", "lock_timeout_ms", "statement_timeout_ms")


class ActionModule(AsyncJobMixin, ActionBase):
    JOB_LABEL = "copy job"
    TRANSFERS_FILES = False
    _supports_check_mode = False
    _supports_async = False

    # ------------------------------------------------------------- the progress
    def _progress(self, args, task_vars):
        """migration_status records, or (None, reason) when they cannot be read this round."""
        if self._local():
            try:
                from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, db
                if db.HAS_PSYCOPG2:
                    params = dict((k, args[k]) for k in CONNECTION_ARGS)
                    conn = db.connect(params, autocommit=True, application_name="carbot.migration copy follow")
                    try:
                        return copy_engine.read_progress(conn, args["target_schema"], args["tables"] or None), None
                    finally:
                        conn.close()
            except Exception as exc:  # noqa: BLE001 - a round without progress, said once below
                return None, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        module_args = dict((k, args[k]) for k in CONNECTION_ARGS)
        module_args.update(mode="progress", target_schema=args["target_schema"], tables=args["tables"])
        res = self._execute_module(module_name="carbot.migration.data_copy", task_vars=task_vars,
                                   module_args=module_args)
        if res.get("failed"):
            return None, res.get("msg") or "no message"
        return res.get("progress") or [], None

    # ------------------------------------------------------------------ the loop
    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=copy_progress.follow_argument_spec())
        jid = args["jid"]
        poll, check = max(args["poll_interval"], 0.0), max(args["check_interval"], 0.01)
        order = copy_progress.copy_order()
        tracker = copy_progress.Tracker()
        stop_when_orphaned()  # after a kill -9 of ansible-playbook this worker lives on (setsid)
        started = time.monotonic()
        next_table = started
        rounds, records, lines, said = 0, [], [], set()
        while True:
            status = self._job_status(jid, task_vars)
            finished = bool(int(status.get("finished") or 0))
            now = time.monotonic()
            if finished or now >= next_table:
                rounds += 1
                got, problem = self._progress(args, task_vars)
                if got is not None:
                    records = got
                    overall = tracker.update(records, now)
                    lines = copy_progress.format_lines(records, overall, elapsed=now - started, order=order)
                    display.display("\n".join(lines))
                elif problem not in said:  # once per kind of problem, not once per round
                    said.add(problem)
                    display.warning("copy_follow: no progress this round (%s); the copy goes on" % problem)
                next_table = now + poll
            if finished:
                break
            if now - started > args["timeout"]:
                result.update(failed=True, rounds=rounds, followed_seconds=round(now - started, 1),
                              msg="the copy job %s still runs after %d s of following; it goes on in the background: "
                                  "run migrate.yml again to follow it to its end" % (jid, args["timeout"]))
                return result
            time.sleep(max(min(check, next_table - time.monotonic()), 0.001))
        result.update(job_result(status))
        result.update(ansible_job_id=jid, rounds=rounds, followed_seconds=round(time.monotonic() - started, 1),
                      progress=[copy_progress.normalised(r) for r in copy_progress.in_copy_order(records, order)],
                      progress_lines=lines)
        if args["cleanup"]:
            self._cleanup(jid, task_vars)
        if status.get("failed"):
            result["failed"] = True
            result["msg"] = "data_copy failed: %s" % (status.get("msg") or "the job ended without a message")
        return result
