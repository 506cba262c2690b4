"""The copy is followed by one task (action plugin carbot.migration.copy_follow), not a task file that
includes itself (issue 15): no RecursionError however long the copy, progress in copy order with an
overall total, rate and ETA, quarantined rows counted as done, and the task returns when the job ends.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping
from test_failure_messages import run_role
from test_sync import build_migrated

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared(make_database):
    """Legacy data with dirt (rows that go to quarantine), carbot_v2 and the mapping, nothing copied."""
    db = make_database("follow")
    build_migrated(db, scale=0.02, install=False)
    return db


@pytest.mark.slow
def test_the_role_follows_a_real_copy_in_copy_order_and_returns_when_it_ends(prepared, tmp_path):
    # a poll interval far longer than the copy: the old loop slept it out before it looked again
    done = run_role(tmp_path, prepared, "data_copy", data_copy_poll_interval=30,
                    data_copy_job_file=str(tmp_path / "copy.jid"), data_copy_workers=2)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    tables = [t for t in out.split("table (copy order)")[-1].split("\n")[1:] if t.strip()][:len(mapping.TABLES)]
    names = [line.split()[0] for line in tables]
    assert names == [d["target"] for d in copy_engine.order_tables(mapping.TABLES)], names
    assert names != sorted(names)  # copy order, not alphabetical
    # the last table: every table copied, at 100 %, quarantined rows included
    assert all(" copied " in line and line.split()[-3] == "100%" for line in tables), "\n".join(tables)
    overall = re.findall(r"copy: ([\d,]+) / ([\d,]+) rows \(([\d.]+) %\), ([\d,]+|-) rows/s, ETA (\S+)", out)
    assert overall and overall[-1][0] == overall[-1][1] and overall[-1][2] == "100.0", overall[-3:]
    quarantined = prepared.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine")
    migrated = sum(prepared.scalar('SELECT count(*) FROM carbot_v2."%s"' % d["target"]) for d in mapping.TABLES)
    assert quarantined > 0
    assert int(overall[-1][0].replace(",", "")) == migrated + quarantined
    # returned about a second after the job ended, not after the 30 s poll interval
    report = re.search(r"copy took ([\d.]+) s, followed ([\d.]+) s in (\d+) rounds", out)
    assert report, out[-3000:]
    took, followed = float(report.group(1)), float(report.group(2))
    assert took < 25, "the copy itself took too long for this test to prove anything: %s s" % took
    assert followed < took + 4, (took, followed)
    assert "RecursionError" not in out


PLAY = """
- name: Follow a long job in many rounds
  hosts: localhost
  gather_facts: false
  tasks:
    - name: A job that runs a while (a stand-in for a long copy)
      ansible.builtin.command: sleep {seconds}
      async: 300
      poll: 0
      register: job
      changed_when: false

    - name: Follow it with a short interval
      carbot.migration.copy_follow:
        jid: "{{{{ job.ansible_job_id }}}}"
        poll_interval: 0.01
        check_interval: 0.01
        login_host: "{{{{ db_host }}}}"
        login_port: "{{{{ db_port }}}}"
        login_db: "{{{{ db_name }}}}"
        login_user: "{{{{ db_user }}}}"
        login_password: "{{{{ db_password }}}}"
        ssl_mode: disable
      register: followed
      no_log: true

    - name: Write down the rounds
      ansible.builtin.copy:
        content: >-
          {{{{ {{'rounds': followed.rounds, 'rc': followed.rc,
              'failed': followed.failed | default(false)}} | to_json }}}}
        dest: "{out}"
        mode: "0600"
"""


@pytest.mark.slow
def test_more_than_300_rounds_without_recursion_error(prepared, tmp_path):
    out_file = tmp_path / "rounds.json"
    (tmp_path / "play.yml").write_text(PLAY.format(seconds=25, out=out_file))
    variables = {"db_host": prepared.host, "db_port": prepared.port, "db_name": prepared.dbname,
                 "db_user": prepared.user, "db_password": prepared.password,
                 "ansible_python_interpreter": sys.executable}
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               CARBOT_REPORTS_DIR=str(tmp_path / "reports"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c",
                           "local", "-e", "@%s" % vars_file, str(tmp_path / "play.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    result = json.loads(out_file.read_text())
    assert result["rounds"] > 300, result
    assert result["rc"] == 0 and not result["failed"]
    assert "RecursionError" not in done.stdout + done.stderr
    assert prepared.password not in done.stdout
