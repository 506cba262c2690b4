"""Errors an operator meets first (issue 15): a wrong password or an unknown host is tried once and
printed once, with the cause first and the fix; placeholders in staging/production are refused up front.
"""

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


@pytest.mark.slow
def test_prepare_with_an_unknown_host_is_tried_once_and_said_once(legacy_db, tmp_path):
    done = playbook("prepare.yml", legacy_db, tmp_path, host="no-such-db.invalid")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "retrying" not in out, out[-3000:]
    assert len(re.findall(r"could not translate host name", out)) == 1, out[-5000:]
    assert "carbot_db_host" in out
