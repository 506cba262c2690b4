# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: migration_report
type: aggregate
short_description: Writes the migration report after every playbook run and prints a summary
description:
  - Times every play (a step of the migration) and collects the C(carbot_report) part that
    carbot.migration modules return.
  - At the end of the run writes C(report.json), C(report.md) and a self-contained C(report.html)
    into a new directory under O(reports_dir), and prints the timings that matter and where the report is.
  - A task with C(no_log) (every task that passes the database password) reaches callbacks censored, its
    C(carbot_report) included. Such a task registers its result and the next task hands the part over with
    C(ansible.builtin.set_stats) and C(data.carbot_report), which this callback merges like a module's part.
requirements:
  - enable in ansible.cfg (callbacks_enabled = carbot.migration.migration_report)
options:
  reports_dir:
    description: Directory that receives one sub-directory per run.
    default: reports
    env:
      - name: CARBOT_REPORTS_DIR
    ini:
      - section: carbot_migration
        key: reports_dir
    type: path
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

from ansible_collections.carbot.migration.plugins.module_utils import report as report_lib


def _exception_message(result):
    """The innermost message of a failed task's error (ansible-core 2.19 keeps it also for a no_log task)."""
    event = getattr(getattr(result, "exception", None), "event", None)
    msgs = []
    while event is not None:
        if getattr(event, "msg", None):
            msgs.append(event.msg)
        chain = getattr(event, "chain", None)
        event = chain.event if chain is not None and getattr(chain, "follow", True) else None
    return msgs[-1] if msgs else None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "carbot.migration.migration_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = time.time()
        self.playbook = None
        self.environment = None
        self.report = None
        self.current = None
        self.failed_task = None
        self.failed_reason = None  # the message of the failure that ended the run (the last one not rescued)

    # -- the run ---------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(playbook._file_name)
        self.report = report_lib.new_report({"playbook": self.playbook, "started": self.started})

    def v2_playbook_on_play_start(self, play):
        self._close_step()
        self.current = {"name": play.get_name().strip() or "play", "start": time.time(), "status": "ok"}
        if self.environment is None:
            try:
                manager = play.get_variable_manager()
                hosts = play.get_variable_manager()._inventory.get_hosts(play.hosts)
                if hosts:
                    env = manager.get_vars(play=play, host=hosts[0]).get("carbot_environment")
                    self.environment = env if isinstance(env, str) else None
            except Exception:  # noqa: BLE001 - the report must never break a run
                self.environment = None

    def _close_step(self):
        if self.current:
            self.current["end"] = time.time()
            self.current["seconds"] = round(self.current["end"] - self.current["start"], 3)
            self.report["steps"].append(self.current)
            self.current = None

    # -- results -----------------------------------------------------------------
    def _collect(self, result):
        res = result._result if isinstance(result._result, dict) else {}
        parts = [res.get("carbot_report")]
        # the hand-over of a no_log task's part: ansible.builtin.set_stats with data.carbot_report
        stats = res.get("ansible_stats")
        if isinstance(stats, dict) and isinstance(stats.get("data"), dict):
            parts.append(stats["data"].get("carbot_report"))
        for part in parts:
            if part and self.report is not None:
                report_lib.merge(self.report, part)

    def v2_runner_on_ok(self, result):
        self._collect(result)

    def v2_runner_item_on_ok(self, result):
        self._collect(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._collect(result)
        if not ignore_errors:
            if self.current:
                self.current["status"] = "failed"
            if self.failed_task is None:
                self.failed_task = "%s (%s)" % (result._task.get_name(), self.current["name"] if self.current else "")
            # The last failure's message: a rescued failure is followed by the one that ends the run (the cutover's
            # summary says why and what state everything is in). A no_log task's message reaches callbacks
            # censored: then the run's output holds it ('[ERROR]: Task failed').
            msg = result._result.get("msg") or _exception_message(result)
            if msg:
                self.failed_reason = str(msg)
            elif self.failed_reason is None:
                self.failed_reason = ("hidden by no_log (the task passes a password): see the '[ERROR]: Task failed' "
                                      "line of the run's output")

    def v2_runner_on_unreachable(self, result):
        if self.current:
            self.current["status"] = "unreachable"

    # -- the end -------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats):
        if self.report is None:
            return
        self._close_step()
        finished = time.time()
        failed = any(stats.failures.get(h) or stats.dark.get(h) for h in stats.processed)
        run = self.report["run"]
        run.update({
            "finished": finished,
            "seconds": round(finished - self.started, 1),
            "status": "failed" if failed else "ok",
            "environment": self.environment or "unknown",
        })
        if self.failed_task:
            if failed:
                run["failed_task"] = self.failed_task
                run["failed_reason"] = self.failed_reason
            else:
                # The failure was rescued (block/rescue) or ignored: the run went on and ended well.
                run["recovered_from"] = self.failed_task
                for step in self.report["steps"]:
                    if step["status"] == "failed":
                        step["status"] = "rescued"
        base = self.get_option("reports_dir")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.started))
        name = "%s-%s" % (stamp, os.path.splitext(self.playbook or "run")[0])
        directory = os.path.join(base, name)
        try:
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "report.json"), "w") as handle:
                json.dump(self.report, handle, indent=2, sort_keys=True, default=str)
            with open(os.path.join(directory, "report.md"), "w") as handle:
                handle.write(report_lib.to_markdown(self.report))
            with open(os.path.join(directory, "report.html"), "w") as handle:
                handle.write(report_lib.to_html(self.report))
            latest = os.path.join(base, "latest")
            if os.path.islink(latest) or not os.path.exists(latest):
                if os.path.islink(latest):
                    os.unlink(latest)
                os.symlink(name, latest)
        except OSError as exc:
            self._display.warning("carbot.migration: could not write the migration report: %s" % exc)
            return
        self._summary(os.path.join(directory, "report.html"))

    def _summary(self, path):
        run = self.report["run"]
        lines = ["", "CarBot migration: %s %s in %.1f s" % (self.playbook, run["status"].upper(), run["seconds"])]
        if run.get("failed_task"):
            lines.append("  failed at: %s" % run["failed_task"])
        # not the reason: it was printed once already, where the task failed; the report holds it
        for step in self.report["steps"]:
            lines.append("  %-60s %8.1f s  %s" % (step["name"][:60], step["seconds"], step["status"]))
        windows = report_lib.freeze_windows(self.report)
        if windows:
            lines.append("  write freeze (maintenance on to off): %s" % ", ".join("%.1f s" % w for w in windows))
        tables = self.report["tables"]
        if tables:
            quarantined = sum(t.get("quarantined") or 0 for t in tables.values())
            lines.append("  tables: %d, rows quarantined: %d" % (len(tables), quarantined))
        failed_checks = [v for v in self.report["validation"] if not v.get("ok")]
        if self.report["validation"]:
            lines.append("  validation: %d checks, %d failed" % (len(self.report["validation"]), len(failed_checks)))
        lines.append("  report: %s" % os.path.abspath(path))
        self._display.display("\n".join(lines), color="red" if run["status"] != "ok" else "green")
