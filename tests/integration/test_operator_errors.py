"""Errors an operator meets first (issue 15): a wrong password or an unknown host is tried once and
printed once, with the cause first and the fix; placeholders in staging/production are refused up front.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def playbook(playbook, db, tmp_path, *extra, inventory="local", password=None, host=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), CARBOT_REPORTS_DIR=str(tmp_path / "reports"),
               CARBOT_DB_PORT=str(db.port), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (pathlib.Path(sys.executable).parent, os.environ.get("PATH", "")))
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(REPO / "playbooks" / playbook),
           "-i", str(REPO / "inventories" / inventory), "-e", "carbot_db_name=%s" % db.dbname,
           "-e", "carbot_db_password=%s" % (password or db.password), "-e", "carbot_db_user=%s" % db.user,
           "-e", "carbot_backup_dir=%s" % (tmp_path / "backups")] + list(extra)
    if host:
        cmd += ["-e", "carbot_db_host=%s" % host]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600)


@pytest.mark.slow
def test_prepare_with_a_wrong_password_is_tried_once_and_said_once(legacy_db, tmp_path):
    done = playbook("prepare.yml", legacy_db, tmp_path, password="wrong-pw")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "retrying" not in out, out[-3000:]
    assert len(re.findall(r"password authentication failed", out)) == 1, out[-5000:]
    assert "carbot_db_password" in out  # the fix
    assert "wrong-pw" not in out
    # the report of the failed run says where and why at the top (the task was no_log)
    report = json.loads(next((tmp_path / "reports").glob("*-prepare/report.json")).read_text())
    assert "Create the target schema" in report["run"]["failed_task"]
    assert "password authentication failed" in report["run"]["failed_reason"]
    assert "password authentication failed" in next((tmp_path / "reports").glob("*-prepare/report.md")).read_text()


@pytest.mark.slow
def test_prepare_with_an_unknown_host_is_tried_once_and_said_once(legacy_db, tmp_path):
    done = playbook("prepare.yml", legacy_db, tmp_path, host="no-such-db.invalid")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "retrying" not in out, out[-3000:]
    assert len(re.findall(r"could not translate host name", out)) == 1, out[-5000:]
    assert "carbot_db_host" in out


@pytest.fixture(scope="module")
def prepared_not_copied(make_database):
    """Legacy data, carbot_v2 and the mapping applied, nothing copied."""
    from test_sync import build_migrated

    db = make_database("notcopied")
    build_migrated(db, scale=0.02, install=False)
    return db


@pytest.mark.slow
def test_a_check_before_the_copy_cuts_the_key_lists(prepared_not_copied, tmp_path):
    from test_failure_messages import last_failure, run_role

    done = run_role(tmp_path, prepared_not_copied, "sync_triggers", sync_triggers_install=False,
                    sync_triggers_check=True, sync_triggers_check_validation=["counts", "checksums"])
    assert done.returncode != 0
    msg = last_failure(done)
    out = done.stdout + done.stderr
    assert len(msg) < 3000, len(msg)
    assert max(len(line) for line in out.splitlines()) < 4000
    assert re.search(r"\d+ missing in target \(e\.g\. [^()]+ \(\+\d+ more\)\)", msg), msg
    assert "not copied: " in msg and "(run migrate.yml first)" in msg
    assert out.count(msg[:120]) == 1, out[-4000:]


@pytest.mark.slow
def test_module_defaults_group_sets_the_connection_once(legacy_db, tmp_path):
    """meta/runtime.yml action_groups: group/carbot.migration.db gives every database module the connection."""
    (tmp_path / "play.yml").write_text("""
- name: The connection once, for every database module
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/carbot.migration.db:
      login_host: "{{ db_host }}"
      login_port: "{{ db_port }}"
      login_db: "{{ db_name }}"
      login_user: "{{ db_user }}"
      login_password: "{{ db_password }}"
      ssl_mode: disable
  tasks:
    - name: Read the copy progress, no connection options given
      carbot.migration.data_copy:
        mode: progress
      register: checked
    - name: It connected
      ansible.builtin.assert:
        that: checked.progress is defined
""")
    variables = {"db_host": legacy_db.host, "db_port": legacy_db.port, "db_name": legacy_db.dbname,
                 "db_user": legacy_db.user, "db_password": legacy_db.password,
                 "ansible_python_interpreter": sys.executable}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), CARBOT_REPORTS_DIR=str(tmp_path / "reports"),
               ANSIBLE_FORCE_COLOR="0")
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c",
                           "local", "-e", "@%s" % (tmp_path / "vars.json"), str(tmp_path / "play.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]  # not 'missing required arguments: login_db'
    assert legacy_db.password not in out


@pytest.mark.slow
def test_assess_baselines_go_to_the_users_reports_dir(legacy_db, tmp_path):
    """Not into the collection (playbook_dir/../reports of an installed collection is its install directory)."""
    work = tmp_path / "ops"
    work.mkdir()
    # an operator's own ansible.cfg, as with an installed collection: the report callback enabled, nothing else
    (work / "ansible.cfg").write_text("[defaults]\ncollections_path = %s\nroles_path = %s\n"
                                      "callbacks_enabled = carbot.migration.migration_report\n"
                                      % (REPO / ".collections", REPO / "roles"))
    env = {k: v for k, v in os.environ.items() if k != "CARBOT_REPORTS_DIR"}
    env.update(ANSIBLE_CONFIG=str(work / "ansible.cfg"), CARBOT_DB_PORT=str(legacy_db.port), PWD=str(work),
               ANSIBLE_FORCE_COLOR="0")
    before = set((REPO / "reports").rglob("*")) if (REPO / "reports").exists() else set()
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"),
                           str(REPO / "playbooks" / "assess.yml"), "-i", str(REPO / "inventories" / "local"),
                           "-e", "carbot_db_name=%s" % legacy_db.dbname, "-e", "carbot_db_user=%s" % legacy_db.user,
                           "-e", "carbot_db_password=%s" % legacy_db.password, "-e", "assess_fail_on_nogo=false",
                           "-e", "carbot_backup_dir=%s" % (tmp_path / "backups")],
                          cwd=str(work), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert list((work / "reports" / "baselines").glob("*.json")), done.stdout[-2000:]
    assert list((work / "reports").glob("*-assess/report.html"))  # the callback's report, same place
    after = set((REPO / "reports").rglob("*")) if (REPO / "reports").exists() else set()
    assert after == before
