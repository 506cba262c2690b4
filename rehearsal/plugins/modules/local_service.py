#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: local_service
short_description: Start or stop a local background process (the rehearsal's stand-ins and write load)
description:
  - Starts a command in the background, detached from Ansible, with a PID file, and waits until it writes
    its ready file (a JSON document the module returns). Stops it with SIGTERM, then SIGKILL.
  - Idempotent; a process whose PID file points at a live process counts as started.
  - Only for the local rehearsal and tests (collection C(carbot.rehearsal), never shipped with C(carbot.migration));
    real environments have real services.
version_added: 1.0.0
author: CarBot operations (@carbot)
options:
  name:
    description: Name of the service, for messages.
    type: str
    required: true
  state:
    description: Wanted state.
    type: str
    choices: [started, stopped]
    default: started
  argv:
    description: Command and arguments (no shell). Required for O(state=started).
    type: list
    elements: str
  chdir:
    description: Working directory of the process.
    type: path
  env:
    description: Extra environment variables (secrets belong here or in files, never in O(argv)).
    type: dict
    default: {}
  pid_file:
    description: File holding the process ID.
    type: path
    required: true
  ready_file:
    description:
      - File the process writes once it serves (JSON); the module waits for it and returns its content.
      - Without it, the module only checks that the process is still alive after a moment.
    type: path
  log_file:
    description: File receiving the process's stdout and stderr.
    type: path
  timeout:
    description: Seconds to wait for the ready file, or for the process to stop.
    type: int
    default: 30
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Start the admin API stand-in
  carbot.rehearsal.local_service:
    name: admin-api
    argv: ["{{ ansible_playbook_python }}", -m, tests.standins.admin_api, --port, "18080", --ready-file, /tmp/api.json]
    chdir: /path/to/the/repository
    pid_file: /tmp/api.pid
    ready_file: /tmp/api.json
"""

RETURN = r"""
pid:
  description: Process ID of the running service (null when stopped).
  returned: always
  type: int
ready:
  description: Content of the ready file.
  returned: when state is started and ready_file is given
  type: dict
"""

import json
import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.carbot.rehearsal.plugins.module_utils import daemon


def read_pid(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_ready(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except (OSError, TypeError):
        return ""


def start(module, p):
    if p["ready_file"] and os.path.exists(p["ready_file"]):
        os.unlink(p["ready_file"])
    for path in (p["pid_file"], p["ready_file"], p["log_file"]):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        proc = daemon.spawn(p["argv"], cwd=p["chdir"], env=daemon.environment(p["env"]), log_file=p["log_file"])
    except OSError as exc:
        module.fail_json(msg="Could not start %s: %s" % (p["name"], exc))
    with open(p["pid_file"], "w") as handle:
        handle.write(str(proc.pid))
    deadline = time.time() + p["timeout"]
    ready = None
    while time.time() < deadline:
        if proc.poll() is not None:
            module.fail_json(msg="%s exited with status %s while starting. Last lines of %s:\n%s"
                             % (p["name"], proc.returncode, p["log_file"], tail(p["log_file"])))
        if not p["ready_file"]:
            time.sleep(1)
            if proc.poll() is None:
                break
            continue
        ready = read_ready(p["ready_file"])
        if ready is not None:
            break
        time.sleep(0.1)
    else:
        proc.terminate()
        module.fail_json(msg="%s did not become ready within %s s. Last lines of %s:\n%s"
                         % (p["name"], p["timeout"], p["log_file"], tail(p["log_file"])))
    return proc.pid, ready


def stop(module, p, pid):
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + p["timeout"]
    while time.time() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for path in (p["pid_file"], p["ready_file"]):
        if path and os.path.exists(path):
            os.unlink(path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped"]),
            argv=dict(type="list", elements="str"),
            chdir=dict(type="path"),
            env=dict(type="dict", default={}, no_log=True),
            pid_file=dict(type="path", required=True),
            ready_file=dict(type="path"),
            log_file=dict(type="path"),
            timeout=dict(type="int", default=30),
        ),
        required_if=[("state", "started", ["argv"])],
        supports_check_mode=True,
    )
    p = module.params
    pid = read_pid(p["pid_file"])
    running = alive(pid)
    if p["state"] == "started":
        if running:
            module.exit_json(changed=False, pid=pid, ready=read_ready(p["ready_file"]) if p["ready_file"] else None)
        if module.check_mode:
            module.exit_json(changed=True, pid=None, ready=None)
        pid, ready = start(module, p)
        module.exit_json(changed=True, pid=pid, ready=ready)
    if not running:
        for path in (p["pid_file"], p["ready_file"]):
            if path and os.path.exists(path) and not module.check_mode:
                os.unlink(path)
        module.exit_json(changed=False, pid=None)
    if not module.check_mode:
        stop(module, p, pid)
    module.exit_json(changed=True, pid=None)


if __name__ == "__main__":
    main()
