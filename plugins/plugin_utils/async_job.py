# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the followers of an async job share (action plugins copy_follow and job_follow).

A module started with ``async`` and ``poll: 0`` writes its result into ``<async_dir>/<jid>`` when it ends.
``AsyncJobMixin`` reads that record (in-process on a local connection: a round costs microseconds;
``async_status`` on the host otherwise), removes it once read, and reads a small file the job writes on the
host (its progress) the same two ways. ``job_result`` turns the finished record into the task's result:
the module's own keys and nothing of the async machinery.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import multiprocessing
import os
import threading
import time

# Keys of the async machinery (and of a raw command's output), not of the module's result.
ASYNC_KEYS = ("started", "finished", "ansible_job_id", "results_file", "invocation", "stdout", "stderr",
              "stdout_lines", "stderr_lines", "_ansible_no_log")


def controller_pid():
    """The pid of ansible-playbook, recorded when it forked this worker: right even when it died before this
    task's run() began (os.getppid() would then already be 1 or a subreaper, and never change again)."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else os.getppid()


def stop_when_orphaned(interval=0.5):
    """End this worker process when ansible-playbook (its parent) is gone.

    ansible-core's workers call setsid(), so a kill -9 of ansible-playbook (even of its process group) leaves
    the worker that runs a follower's loop alive. An orphaned follower must not go on: at the job's end it would
    remove the job's status file (cleanup) under the follower of the rerun, which then finds the job unknown.
    Nobody reads its output any more either: its display writes block for ever once the pipe to the dead parent
    is full, so a check inside the loop is not enough. A daemon thread ends the process, leaving the job and its
    status file alone; a rerun follows the job (roles/data_copy/tasks/running.yml).
    """
    controller = controller_pid()

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != controller:
                os._exit(3)

    threading.Thread(target=watch, name="follower: stop when orphaned", daemon=True).start()


class AsyncJobMixin:
    """For an ActionBase subclass. ``JOB_LABEL`` names the job in messages."""

    JOB_LABEL = "job"

    def _async_dir(self):
        return self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))

    def _local(self):
        return getattr(self._connection, "transport", None) == "local" or \
            getattr(self._connection, "_load_name", "") in ("local", "ansible.builtin.local")

    def _job_status(self, jid, task_vars):
        """The async job's record: {'started', 'finished', ...}; the module result once it finished."""
        if self._local():
            path = os.path.join(os.path.expanduser(self._async_dir()), jid)
            try:
                with open(path) as handle:
                    text = handle.read()
            except OSError as exc:
                return {"failed": True, "finished": 1, "msg": "the %s %s is unknown: %s (a job file removed, "
                        "or started on another host)" % (self.JOB_LABEL, jid, exc)}
            try:
                data = json.loads(text)
            except ValueError:
                if not text.strip():  # being written
                    return {"started": 1, "finished": 0}
                return {"failed": True, "finished": 1,
                        "msg": "could not parse the output of the %s: %s" % (self.JOB_LABEL, text[:2000])}
            if "started" not in data:
                data["finished"] = 1
            elif "finished" not in data:
                data["finished"] = 0
            return data
        return self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                    module_args={"jid": jid, "_async_dir": self._async_dir()})

    def _cleanup(self, jid, task_vars):
        if self._local():
            try:
                os.remove(os.path.join(os.path.expanduser(self._async_dir()), jid))
            except OSError:
                pass
            return
        self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                             module_args={"jid": jid, "mode": "cleanup", "_async_dir": self._async_dir()})

    def _read_host_file(self, path, task_vars):
        """The text of a small file on the host, or None when it is not there (yet)."""
        if self._local():
            try:
                with open(os.path.expanduser(path)) as handle:
                    return handle.read()
            except OSError:
                return None
        res = self._execute_module(module_name="ansible.legacy.slurp", task_vars=task_vars,
                                   module_args={"src": path})
        if res.get("failed") or "content" not in res:
            return None
        try:
            return base64.b64decode(res["content"]).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return None

    def _remove_host_file(self, path, task_vars):
        if self._local():
            try:
                os.remove(os.path.expanduser(path))
            except OSError:
                pass
            return
        self._execute_module(module_name="ansible.legacy.file", task_vars=task_vars,
                             module_args={"path": path, "state": "absent"})


def job_result(status):
    """The finished job's own result: its keys without those of the async machinery."""
    return dict((k, v) for k, v in status.items() if k not in ASYNC_KEYS)
