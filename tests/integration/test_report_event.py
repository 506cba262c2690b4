"""carbot.migration.report_event: the action plugin (what playbooks run) and the module (what runs when the
action is bypassed) take the same arguments and return the same part, and the events reach the report.

The write-freeze breakdown of the cutover is built from these events (bench/freeze_window.py reads them
from report.json), so they are tested through a real ansible-playbook run and the real callback.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

from conftest import REPO, run_module_process

PLAY = """
- name: Events
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Start of a window
      carbot.migration.report_event:
        label: maintenance on
      register: first

    - name: A note
      carbot.migration.report_event:
        label: something worth a line
        timeline: notes

    - name: End of the window, red
      carbot.migration.report_event:
        label: maintenance off
        ok: false
      register: last

    - name: Both ran on the controller and returned their time
      ansible.builtin.assert:
        that:
          - first.at <= last.at
          - first.carbot_report.freeze.events[0].label == 'maintenance on'
          - not first.changed

    - name: A wrong argument is refused
      carbot.migration.report_event:
        label: x
        colour: red
      register: wrong
      ignore_errors: true

    - name: The refusal names the argument
      ansible.builtin.assert:
        that:
          - wrong.failed
          - "'colour' in wrong.msg"
"""


def test_events_reach_the_report_through_the_action_plugin(tmp_path):
    (tmp_path / "events.yml").write_text(PLAY)
    reports = tmp_path / "reports"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), CARBOT_REPORTS_DIR=str(reports))
    started = time.time()
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
                           str(tmp_path / "events.yml")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(next(reports.glob("*/report.json")).read_text())
    events = report["freeze"]["events"]
    assert [(e["label"], e["ok"]) for e in events] == [("maintenance on", True), ("maintenance off", False)]
    assert started <= events[0]["at"] <= events[1]["at"] <= time.time()
    assert any(note.endswith(": something worth a line") for note in report["notes"]), report["notes"]


def test_the_module_returns_the_same_part():
    out = run_module_process("report_event", {"label": "search_path switch", "ok": True})
    assert out["changed"] is False and not out.get("failed"), out
    assert out["carbot_report"] == {"freeze": {"events": [{"at": out["at"], "label": "search_path switch",
                                                            "ok": True}]}}
    note = run_module_process("report_event", {"label": "hello", "timeline": "notes"})
    assert note["carbot_report"]["notes"][0].endswith(": hello")
    wrong = run_module_process("report_event", {"label": "x", "colour": "red"})
    assert wrong.get("failed") is True and "colour" in wrong["msg"]
