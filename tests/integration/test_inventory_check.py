"""Placeholders in staging/production are refused up front, and the vault example is no inventory source (issue 15).

The staging inventory is copied as shipped; the playbooks run only their always-tagged check play
(``--tags inventory-only`` selects no other task), so nothing needs a database.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REPORTS = pathlib.Path(os.environ["CARBOT_REPORTS_DIR"])  # set by conftest.py, outside the repository
REAL = {"vault_carbot_db_password": "s3cret-db", "vault_carbot_api_token": "s3cret-token",
        "vault_carbot_app_db_password": "s3cret-app"}
REAL_HOSTS = ["-e", "carbot_db_host=db1.staging.internal", "-e", "carbot_api_url=https://admin.staging.internal"]


def run(inventory, playbook="assess.yml", *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               CARBOT_REPORTS_DIR=str(REPORTS))
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(REPO / "playbooks" / playbook),
           "-i", str(inventory), "--tags", "inventory-only"] + list(extra)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300)
    return done, done.stdout + done.stderr


@pytest.fixture
def staging(tmp_path):
    inventory = tmp_path / "staging"
    shutil.copytree(REPO / "inventories" / "staging", inventory)
    return inventory


def write_vault(inventory, values):
    (inventory / "group_vars" / "all" / "vault.yml").write_text(
        "---\n" + "".join("%s: %s\n" % kv for kv in values.items()))


def test_the_shipped_staging_inventory_parses_without_warnings(staging):
    done, out = run(staging)
    assert "Failed to parse" not in out, out
    assert "vault.yml.example" not in out.split("copy ", 1)[0]


@pytest.mark.parametrize("playbook", ["assess.yml", "prepare.yml", "migrate.yml", "cutover.yml", "rollback.yml",
                                      "backup.yml", "validate.yml", "gdpr.yml", "performance.yml", "cleanup.yml"])
def test_a_missing_vault_is_refused_with_the_fix(staging, playbook):
    done, out = run(staging, playbook)
    assert done.returncode != 0
    assert "The vault of staging is missing" in out, out[-3000:]
    assert "vault.yml.example to vault.yml" in out


def test_placeholders_are_refused_by_name_and_values_are_never_shown(staging):
    write_vault(staging, dict(REAL, vault_carbot_db_password="CHANGE-ME"))
    done, out = run(staging, "prepare.yml")
    assert done.returncode != 0
    assert "still holds placeholders in carbot_db_host, carbot_db_password, carbot_api_url" in out, out[-3000:]
    assert "carbot_api_token" not in out.split("placeholders in", 1)[1].split(":", 1)[0]
    for secret in REAL.values():
        assert secret not in out


def test_real_values_pass(staging):
    write_vault(staging, REAL)
    done, out = run(staging, "prepare.yml", *REAL_HOSTS)
    assert done.returncode == 0, out[-3000:]
    for secret in REAL.values():
        assert secret not in out


def test_the_local_rehearsal_is_not_checked(tmp_path):
    done, out = run(REPO / "inventories" / "local", "prepare.yml")
    assert done.returncode == 0, out[-3000:]
