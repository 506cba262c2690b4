"""playbooks/cleanup.yml, run as ops run it (ansible-playbook at -vvv) against the test cluster.

Issue 12:
  item 5: after a successful cutover to a target schema whose name needs quoting ("Carbot V2") cleanup
          used to refuse ("the cutover has not happened");
  item 8: the archive of the quarantine was 0644 (in whatever directory mode there was);
  item 9: the archive's pg_dump got PGPASSWORD through `environment:`, which ansible-core prints in the
          EXEC line at -vvv despite no_log.
Issue 16: the archive is made by carbot.migration.db_backup (its own private passfile, 0700 directory, 0600
files, verified, checksummed) and the cutover check reads the search_path through the search_path module;
a rerun finds the archive instead of making another.
The migration role here has a password with the characters a pgpass file must escape (':' and '\\').
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import uuid

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping, sync

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET = "Carbot V2"


@pytest.fixture
def cut_over(legacy_db):
    """carbot_v2 as "Carbot V2", the mapping and the forward sync, a quarantined row, the database's
    search_path switched as search_path's switch does it, and a superuser with a telling password."""
    db = legacy_db
    conn = db.connect(autocommit=False)
    mapping.apply_all(conn, str(REPO / "sql"), target_schema=TARGET)
    conn.commit()
    plan = sync.Plan(conn, target_schema=TARGET)
    conn.close()
    db.role = "migr_%s" % uuid.uuid4().hex[:8]
    db.secret = "s3cr:t\\pw-%s" % uuid.uuid4().hex  # ':' and '\' must be escaped in a pgpass line
    db.query('CREATE ROLE "%s" LOGIN SUPERUSER PASSWORD %%s' % db.role, (db.secret,))  # generated name
    sync.install({"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
                  "login_password": db.password, "lock_timeout_ms": 3000}, plan, sync.FORWARD)
    db.query('INSERT INTO "Carbot V2".migration_quarantine (target_table, source_table, source_pk, reason, row_data) '
             "VALUES ('users', 'users', '1', 'invalid_email', '{\"password_hash\": \"x\"}')")
    db.query('ALTER DATABASE "%s" SET search_path TO %%s, %%s' % db.dbname, (TARGET, "public"))
    assert db.query("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                    "WHERE d.datname = current_database()")[0][0] == ['search_path="Carbot V2", public']
    return db


def run_cleanup(db, tmp_path, *extra):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[carbot_db]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
                         % sys.executable)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({
        "carbot_db_host": db.host, "carbot_db_port": db.port, "carbot_db_name": db.dbname,
        "carbot_db_user": db.role, "carbot_db_password": db.secret, "carbot_db_sslmode": "disable",
        "carbot_legacy_schema": "public", "carbot_target_schema": TARGET, "carbot_mapping_schema": "carbot_migration",
        "carbot_backup_dir": str(tmp_path / "backups")}))
    vars_file.chmod(0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), CARBOT_REPORTS_DIR=str(tmp_path / "reports"),
               PATH="/usr/lib/postgresql/15/bin:" + os.environ["PATH"])
    env.pop("PGPASSWORD", None)
    return subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                           "-e", "@%s" % vars_file, *extra, str(REPO / "playbooks" / "cleanup.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_cleanup_after_a_cutover_to_a_quoted_schema_at_vvv(cut_over, tmp_path):
    db = cut_over
    backups = tmp_path / "backups"
    (backups / "migration-archive").mkdir(parents=True)
    for path in (backups, backups / "migration-archive"):
        path.chmod(0o755)  # existing, world-readable directories

    checked = run_cleanup(db, tmp_path, "--check")
    assert checked.returncode == 0, checked.stdout[-5000:] + checked.stderr[-2000:]
    assert db.scalar("SELECT to_regnamespace('carbot_migration') IS NOT NULL")
    assert list((backups / "migration-archive").iterdir()) == []

    done = run_cleanup(db, tmp_path, "-vvv")
    out = done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "<127.0.0.1> EXEC" in out or "EXEC /bin/sh" in out  # -vvv really printed the commands
    # The password in no form: as given, and as escaped in the passfile.
    escaped = db.secret.replace("\\", "\\\\").replace(":", "\\:")
    assert db.secret not in out and escaped not in out and db.secret.split(":")[1] not in out

    archive_dir = backups / "migration-archive"
    archives = sorted(archive_dir.glob("*.dump"))
    assert len(archives) == 1, sorted(archive_dir.iterdir())
    archive = archives[0]
    assert oct(archive_dir.stat().st_mode & 0o777) == "0o700"
    for part in (archive, archive.with_suffix(".sha256"), archive.with_suffix(".json")):
        assert oct(part.stat().st_mode & 0o777) == "0o600", part
    manifest = json.loads(archive.with_suffix(".json").read_text())
    assert manifest["verified"] and manifest["run_id"] == "cleanup-" + TARGET
    assert manifest["tables"] == [TARGET + ".migration_status", TARGET + ".migration_quarantine"]
    assert subprocess.run(["sha256sum", "-c", archive.with_suffix(".sha256").name], cwd=archive_dir,
                          capture_output=True).returncode == 0
    listing = subprocess.run(["/usr/lib/postgresql/15/bin/pg_restore", "--list", str(archive)],
                             capture_output=True, text=True, check=True).stdout
    assert re.search(r"TABLE DATA \"?Carbot V2\"? migration_quarantine", listing), listing
    assert re.search(r"TABLE DATA \"?Carbot V2\"? migration_status", listing), listing
    assert "TABLE DATA public" not in listing and "customers" not in listing  # the two tables, nothing else
    # The sync and the mapping are gone; no passfile left behind.
    assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'carbot\\_sync\\_%%'") == 0
    assert db.scalar("SELECT to_regnamespace('carbot_migration') IS NULL")
    assert "PGPASSFILE" not in out and "PGPASSWORD" not in out  # no task hands a password file or value around

    again = run_cleanup(db, tmp_path)  # the rerun finds the archive (verified again) and makes no second one
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-2000:]
    assert "Found " in again.stdout and sorted(archive_dir.glob("*.dump")) == [archive], again.stdout[-3000:]


def test_cleanup_still_refuses_before_the_cutover(cut_over, tmp_path):
    db = cut_over
    db.query('ALTER DATABASE "%s" SET search_path TO public, %%s' % db.dbname, (TARGET,))
    done = run_cleanup(db, tmp_path)
    assert done.returncode != 0
    assert "the cutover has not happened" in done.stdout, done.stdout[-3000:]
    assert db.scalar("SELECT to_regnamespace('carbot_migration') IS NOT NULL")


def test_no_task_passes_a_password_through_its_environment():
    """PGPASSWORD in a task's environment is printed at -vvv: roles, playbooks and Molecule use passfiles."""
    found = []
    for base in ("roles", "playbooks", "molecule"):
        for path in (REPO / base).rglob("*.yml"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "PGPASSWORD" in line:
                    found.append("%s:%d" % (path.relative_to(REPO), number))
    assert found == []
