"""Each role's failure path ends with the module's own message, never a template error (issue 12, item 4).

On ansible-core 2.19 an ``assert`` renders ``success_msg`` even when the assertion fails: a role that
reads a result attribute there without a default replaced the reason with ``object of type 'dict' has
no attribute ...``. Each test drives one role into failure through ansible-playbook (wrong password,
missing table, failed verification) and checks the last FAILED line the operator sees.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import PLAY_CONNECTION

REPO = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE_ERRORS = ("has no attribute", "is undefined", "AnsibleUndefined", "template error")

PLAY = """
- name: One role, driven into its failure path
  hosts: localhost
  gather_facts: false
""" + PLAY_CONNECTION + """  tasks:
    - name: Run the role
      ansible.builtin.include_role:
        name: "carbot.migration.{{ role }}"
        tasks_from: "{{ tasks_from | default('main') }}"
"""


def run_role(tmp_path, db, role, password=None, **extra):
    (tmp_path / "play.yml").write_text(PLAY)
    variables = {"carbot_db_host": db.host, "carbot_db_port": db.port, "carbot_db_name": db.dbname,
                 "carbot_db_user": db.user, "carbot_db_password": password or db.password,
                 "carbot_db_sslmode": "disable", "carbot_legacy_schema": "public",
                 "carbot_target_schema": "carbot_v2", "carbot_mapping_schema": "carbot_migration",
                 "carbot_backup_dir": str(tmp_path / "backups"), "carbot_run_id": "night-1",
                 "carbot_app_db_user": "carbot_app_missing", "carbot_app_db_password": "app-pw",
                 "role": role, "ansible_python_interpreter": sys.executable}
    variables.update(extra)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(variables))
    vars_file.chmod(0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_CALLBACK_FORMAT_PRETTY="false",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               CARBOT_REPORTS_DIR=str(tmp_path / "reports"), ANSIBLE_STDOUT_CALLBACK="default")
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", "-e", "@%s" % vars_file, str(tmp_path / "play.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return done


def last_failure(done):
    """The message of the last failure the operator sees: an '[ERROR]: Task failed: ...' line (ansible-core 2.19
    prints it also for a no_log task), else the msg of the last 'FAILED! =>' line (one JSON document per line)."""
    errors = re.findall(r"\[ERROR\]: Task failed: (?:Module|Action) failed: (.*)", done.stdout + done.stderr)
    if errors:
        return errors[-1]
    lines = [line for line in done.stdout.splitlines() if "FAILED! =>" in line]
    assert lines, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(lines[-1].split("FAILED! =>", 1)[1]).get("msg", "")


def assert_own_message(done, *expected):
    assert done.returncode != 0, done.stdout[-3000:]
    msg = last_failure(done)
    for bad in TEMPLATE_ERRORS:
        assert bad not in msg, msg
    for text in expected:
        assert re.search(text, msg), msg
    # printed once (issue 15): no module error re-raised by a second task
    assert (done.stdout + done.stderr).count(msg[:80]) == 1, done.stdout[-5000:]
    assert "...ignoring" not in done.stdout
    return msg


WRONG_PASSWORD = r"password authentication failed|authentication failed"


@pytest.mark.slow
def test_assess_wrong_password_says_so(legacy_db, tmp_path):
    done = run_role(tmp_path, legacy_db, "assess", password="wrong-pw")
    assert_own_message(done, "^Could not connect", WRONG_PASSWORD, "fix: check carbot_db_user")
    assert "verdict" not in done.stdout.split("PLAY RECAP", 1)[-1]  # the summary blames the connection
    assert "wrong-pw" not in done.stdout + done.stderr


@pytest.mark.slow
def test_backup_assert_without_a_backup_says_so(legacy_db, tmp_path):
    (tmp_path / "backups").mkdir()
    done = run_role(tmp_path, legacy_db, "backup", tasks_from="assert", backup_assert_run_id="night-1")
    assert_own_message(done, "no backup of run night-1 .*needs a verified backup")


@pytest.mark.slow
def test_backup_wrong_password_says_so(legacy_db, tmp_path):
    done = run_role(tmp_path, legacy_db, "backup", password="wrong-pw")
    assert_own_message(done, "database error during backup", WRONG_PASSWORD, "fix: check carbot_db_user")


@pytest.mark.slow
def test_data_copy_without_the_target_schema_says_so(legacy_db, tmp_path):
    # No carbot_v2, no mapping: the copy job fails with the module's own message.
    done = run_role(tmp_path, legacy_db, "data_copy", data_copy_poll_interval=1)
    msg = assert_own_message(done, "data_copy failed")
    assert "no message" not in msg


@pytest.mark.slow
def test_search_path_verify_after_a_failed_switch_says_why(legacy_db, tmp_path):
    # A wrong password: the module fails with its own message, once; nothing claims 'unchanged' after it.
    done = run_role(tmp_path, legacy_db, "search_path", password="wrong-pw")
    assert_own_message(done, "Could not connect to .* as postgres", WRONG_PASSWORD)
    assert "unchanged" not in done.stdout


@pytest.mark.slow
def test_validate_missing_tables_says_so(legacy_db, tmp_path):
    done = run_role(tmp_path, legacy_db, "validate")
    assert_own_message(done)
