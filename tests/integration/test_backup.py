"""carbot.migration.db_backup with the real pg_dump/pg_restore against a real PostgreSQL 15.

Checksum matches the file(s), pg_restore --list verified, scratch restore counts equal (also while
rows are being written), a corrupted or truncated dump is detected, a failing pg_dump or an unwritable
directory fails clearly and leaves nothing half-done, retention keeps the newest N, check mode only
says what it would dump, the password is never on a command line.
"""

import contextlib
import hashlib
import importlib
import io
import json
import os
import pathlib
import subprocess
import threading
import time
import uuid

import pytest
from ansible.module_utils.testing import patch_module_args
from conftest import PLAY_CONNECTION

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_module(name, args, check=False):
    """Run one of the collection's modules in-process, the way Ansible would; returns its result dict."""
    module = importlib.import_module("ansible_collections.carbot.migration.plugins.modules." + name)
    if check:
        args = dict(args, _ansible_check_mode=True)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main()
    return json.loads(out.getvalue())


@pytest.fixture
def data_db(legacy_db):
    legacy_db.query("""
        INSERT INTO public.audit_logs (action) SELECT 'a' || g FROM generate_series(1, 500) g;
        INSERT INTO public.leads (id, name) SELECT gen_random_uuid(), 'lead ' || g FROM generate_series(1, 300) g;
        INSERT INTO public.chat_messages (message) SELECT repeat('x', 200) FROM generate_series(1, 2000) g;
    """)
    return legacy_db


def args_for(db, backup_dir, **extra):
    args = {"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
            "login_password": db.password, "ssl_mode": "disable", "backup_dir": str(backup_dir)}
    args.update(extra)
    return args


def listing(path):
    return sorted(p.name for p in pathlib.Path(path).iterdir()) if pathlib.Path(path).exists() else []


def test_custom_format_backup_verified_checksum_and_scratch_restore(data_db, tmp_path):
    db = data_db
    result = run_module("db_backup", args_for(db, tmp_path, run_id="run-1", verify_restore=True,
                                              verify_tables=["public.audit_logs", "public.leads",
                                                             "public.chat_messages"]))
    assert result["changed"] is True and result["verified"] is True, result.get("msg")
    dump = pathlib.Path(result["path"])
    assert dump.suffix == ".dump" and dump.is_file()
    assert result["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert result["size"] == dump.stat().st_size
    assert result["run_id"] == "run-1" and "run-1" in dump.name
    manifest = json.loads(pathlib.Path(result["manifest_path"]).read_text())
    assert manifest["sha256"] == result["sha256"] and manifest["verified"] is True
    assert manifest["row_counts"] == {"public.audit_logs": 500, "public.leads": 300, "public.chat_messages": 2000}
    assert manifest["scratch_restore"]["counts_equal"] is True
    assert manifest["toc"]["table_data_entries"] >= 25
    # sha256sum -c, from the backup directory, agrees.
    check = subprocess.run(["sha256sum", "-c", os.path.basename(result["checksum_file"])], cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # pg_restore --list reads it independently.
    toc = subprocess.run(["/usr/lib/postgresql/15/bin/pg_restore", "--list", str(dump)], capture_output=True, text=True)
    assert toc.returncode == 0 and "TABLE DATA public audit_logs" in toc.stdout
    # The scratch database is gone again, no .partial left.
    assert db.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", (db.dbname + "_backup_verify",)) == 0
    assert not [n for n in listing(tmp_path) if "partial" in n or n.endswith(".tmp")]
    assert result["carbot_report"]["backup"]["verified"] is True


def test_directory_format_with_jobs_and_counts_from_the_dump_snapshot(data_db, tmp_path):
    """Rows written while pg_dump runs: the counts come from the dump's own snapshot, so they still match."""
    db = data_db
    stop = threading.Event()

    def writer():
        conn = db.connect()
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("INSERT INTO public.audit_logs (action) VALUES ('live')")
                time.sleep(0.002)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = run_module("db_backup", args_for(db, tmp_path, run_id="run-dir", format="directory", jobs=2,
                                                  verify_restore=True))
    finally:
        stop.set()
        thread.join()
    assert result["verified"] is True, result.get("msg")
    dump = pathlib.Path(result["path"])
    assert dump.is_dir() and dump.name.endswith(".dir")
    lines = pathlib.Path(result["checksum_file"]).read_text().splitlines()
    assert len(lines) == len(list(dump.iterdir()))
    assert result["sha256"] == hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()
    assert subprocess.run(["sha256sum", "-c", "--quiet", os.path.basename(result["checksum_file"])],
                          cwd=tmp_path).returncode == 0
    counts = result["manifest"]["row_counts"]
    assert len(counts) == 25 and counts["public.leads"] == 300 and counts["public.audit_logs"] >= 500


def test_verify_mode_finds_the_backup_of_the_run_and_detects_corruption(data_db, tmp_path):
    db = data_db
    made = run_module("db_backup", args_for(db, tmp_path, run_id="run-c"))
    assert made["verified"], made.get("msg")
    ok = run_module("db_backup", args_for(db, tmp_path, mode="verify", run_id="run-c"))
    assert ok["verified"] is True and ok["changed"] is False and ok["path"] == made["path"]

    other = run_module("db_backup", args_for(db, tmp_path, mode="verify", run_id="another-run"))
    assert other["failed"] is True and "no backup of run another-run" in other["msg"]

    dump = pathlib.Path(made["path"])
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the data
    dump.write_bytes(bytes(data))
    bad = run_module("db_backup", args_for(db, tmp_path, mode="verify", run_id="run-c"))
    assert bad["failed"] is True and bad["verified"] is False
    assert "checksum mismatch" in bad["msg"]

    dump.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    truncated = run_module("db_backup", args_for(db, tmp_path, mode="verify", path=str(dump)))
    assert truncated["failed"] is True and "checksum mismatch" in truncated["msg"]


def test_truncated_archive_fails_pg_restore_list_even_without_a_checksum(data_db, tmp_path):
    """The TOC check on its own: an archive cut short is not readable by pg_restore --list."""
    db = data_db
    made = run_module("db_backup", args_for(db, tmp_path, run_id="run-t"))
    dump = pathlib.Path(made["path"])
    dump.write_bytes(dump.read_bytes()[:200])
    # Re-record the checksum of the damaged file, so only pg_restore --list can catch it.
    pathlib.Path(made["checksum_file"]).write_text("%s  %s\n" % (hashlib.sha256(dump.read_bytes()).hexdigest(),
                                                                dump.name))
    manifest_path = pathlib.Path(made["manifest_path"])
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = hashlib.sha256(dump.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    bad = run_module("db_backup", args_for(db, tmp_path, mode="verify", path=str(dump)))
    assert bad["failed"] is True and "pg_restore --list" in bad["msg"]


def test_wrong_password_fails_clearly_and_creates_nothing(data_db, tmp_path):
    db = data_db
    target = tmp_path / "backups"
    result = run_module("db_backup", args_for(db, target, login_password="wrong-password", run_id="run-x"))
    assert result["failed"] is True and result["verified"] is False
    assert "password authentication failed" in result["msg"]
    assert "wrong-password" not in result["msg"]
    assert listing(target) == []


def test_pg_dump_failure_leaves_nothing_half_done(data_db, tmp_path):
    """pg_dump itself fails (a table the backup role may not read): no .partial, no manifest, clear message."""
    db = data_db
    role = "bk_%s" % uuid.uuid4().hex[:8]
    db.query('CREATE ROLE "%s" LOGIN PASSWORD %%s' % role, ("bk-pass",))
    db.query('GRANT USAGE ON SCHEMA public TO "%s"; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s";'
             'GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO "%s"' % (role, role, role))
    db.query("REVOKE SELECT ON public.leads FROM \"%s\"" % role)
    result = run_module("db_backup", args_for(db, tmp_path, login_user=role, login_password="bk-pass",
                                              run_id="run-f"))
    assert result["failed"] is True and result["verified"] is False
    assert "pg_dump of %s failed" % db.dbname in result["msg"]
    assert "permission denied" in result["msg"]
    assert "bk-pass" not in result["msg"]
    assert listing(tmp_path) == []


def test_unwritable_backup_dir_fails_before_dumping(data_db, tmp_path):
    if os.geteuid() == 0:
        # root ignores directory modes: use a path below a regular file instead.
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        target = blocker / "backups"
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    result = run_module("db_backup", args_for(data_db, target, run_id="run-w"))
    assert result["failed"] is True
    assert "backup_dir" in result["msg"] and str(target) in result["msg"]


def test_retention_keeps_the_newest_and_never_foreign_files(data_db, tmp_path):
    db = data_db
    (tmp_path / "notes.txt").write_text("operator's file")
    (tmp_path / "other.json").write_text(json.dumps({"kind": "something else"}))
    paths = []
    for i in range(4):
        result = run_module("db_backup", args_for(db, tmp_path, run_id="r%d" % i, retention_keep=2))
        assert result["verified"], result.get("msg")
        paths.append(result["path"])
        time.sleep(1.05)  # distinct created_at seconds
    assert [os.path.exists(p) for p in paths] == [False, False, True, True]
    assert result["removed"] == [paths[1]]
    names = listing(tmp_path)
    assert "notes.txt" in names and "other.json" in names
    assert len([n for n in names if n.endswith(".sha256")]) == 2

    would = run_module("db_backup", args_for(db, tmp_path, run_id="r9", retention_keep=2), check=True)
    assert would["removed"] == [paths[2]]


def test_check_mode_says_what_it_would_dump(data_db, tmp_path):
    result = run_module("db_backup", args_for(data_db, tmp_path / "b", run_id="run-cm", format="directory"),
                        check=True)
    assert result["changed"] is True and result["verified"] is False
    assert result["would_dump"]["database"] == data_db.dbname and result["would_dump"]["tables"] == 25
    assert result["path"].endswith("-run-cm.dir")
    assert not (tmp_path / "b").exists()


def test_password_is_passed_through_a_pgpass_file_not_argv(data_db, tmp_path, monkeypatch):
    from ansible_collections.carbot.migration.plugins.module_utils import backup, job_progress

    seen = []
    real_run, real_popen = subprocess.run, subprocess.Popen

    def watch(argv, kwargs):
        env = kwargs.get("env") or {}
        seen.append((list(argv), env.get("PGPASSWORD"), env.get("PGPASSFILE")))
        if env.get("PGPASSFILE"):
            assert oct(os.stat(env["PGPASSFILE"]).st_mode & 0o777) == "0o600"

    def spy(argv, *args, **kwargs):
        watch(argv, kwargs)
        return real_run(argv, *args, **kwargs)

    def spy_popen(argv, *args, **kwargs):  # pg_dump and pg_restore run --verbose through Popen (progress)
        watch(argv, kwargs)
        return real_popen(argv, *args, **kwargs)

    monkeypatch.setattr(backup.subprocess, "run", spy)
    monkeypatch.setattr(job_progress.subprocess, "Popen", spy_popen)
    result = run_module("db_backup", args_for(data_db, tmp_path, run_id="run-p"))
    assert result["verified"], result.get("msg")
    dumps = [s for s in seen if s[0][0].endswith("pg_dump") and "--version" not in s[0]]
    assert dumps and all(data_db.password not in " ".join(argv) for argv, _, _ in seen)
    assert all(pw is None for _, pw, _ in dumps) and all(pf for _, _, pf in dumps)
    assert not os.path.exists(dumps[0][2])  # removed afterwards


# ----------------------------------------------------------------------------------------------
# The role, through ansible-playbook: a failed backup stops the play before any change
# ----------------------------------------------------------------------------------------------
ROLE_PLAY = """
- name: Backup first, then a change
  hosts: localhost
  gather_facts: false
""" + PLAY_CONNECTION + """  tasks:
    - name: Back up
      ansible.builtin.include_role:
        name: carbot.migration.backup
    - name: The first change of the cutover (must not run without a verified backup)
      ansible.builtin.file:
        path: "{{ marker }}"
        state: touch
        mode: "0600"
    - name: Later, the cutover asserts the backup of this run again
      ansible.builtin.include_role:
        name: carbot.migration.backup
        tasks_from: assert
"""


def run_play(tmp_path, play, variables, extra_args=()):
    import sys

    (tmp_path / "play.yml").write_text(play)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(dict(variables, ansible_python_interpreter=sys.executable)))
    vars_file.chmod(0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), CARBOT_REPORTS_DIR=str(tmp_path / "reports"))
    return subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", "-e", "@%s" % vars_file, *extra_args, str(tmp_path / "play.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def inventory_vars(db, backup_dir, **extra):
    out = {"carbot_db_host": db.host, "carbot_db_port": db.port, "carbot_db_name": db.dbname,
           "carbot_db_user": db.user, "carbot_db_password": db.password, "carbot_db_sslmode": "disable",
           "carbot_legacy_schema": "public", "carbot_target_schema": "carbot_v2",
           "carbot_backup_dir": str(backup_dir), "carbot_run_id": "night-1"}
    out.update(extra)
    return out


@pytest.mark.slow
def test_backup_role_failure_aborts_before_any_change(data_db, tmp_path):
    marker = tmp_path / "changed-something"
    done = run_play(tmp_path, ROLE_PLAY, inventory_vars(data_db, tmp_path / "b", carbot_db_password="wrong-pw",
                                                        marker=str(marker)))
    assert done.returncode != 0
    # the module's own message, once (issue 15): no second task re-raising it
    assert done.stdout.count("password authentication failed") == 1, done.stdout[-3000:]
    assert "database error during backup" in done.stdout
    assert not marker.exists()
    assert listing(tmp_path / "b") == []
    assert "wrong-pw" not in done.stdout + done.stderr


@pytest.mark.slow
def test_backup_role_success_then_the_change_and_the_later_assert(data_db, tmp_path):
    marker = tmp_path / "changed-something"
    checked = run_play(tmp_path, ROLE_PLAY.split("    - name: Later")[0],
                       inventory_vars(data_db, tmp_path / "b", marker=str(marker)), ["--check"])
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert "Would dump %s" % data_db.dbname in checked.stdout
    assert not (tmp_path / "b").exists() and not marker.exists()

    done = run_play(tmp_path, ROLE_PLAY, inventory_vars(data_db, tmp_path / "b", marker=str(marker)))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert marker.exists()
    assert "Verified backup of run night-1" in done.stdout
    assert data_db.password not in done.stdout + done.stderr
    names = listing(tmp_path / "b")
    assert len([n for n in names if n.endswith(".dump")]) == 1


# ----------------------------------------------------------------------------------------------
# Issue 12, item 8: the dump holds every secret; nobody but its owner may read it
# ----------------------------------------------------------------------------------------------
def modes_below(path):
    path = pathlib.Path(path)
    return {str(p.relative_to(path)): oct(p.stat().st_mode & 0o777) for p in [path, *path.rglob("*")]}


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_backup_files_are_private_in_an_existing_world_readable_directory(data_db, tmp_path, fmt):
    target = tmp_path / "backups"
    target.mkdir()
    target.chmod(0o755)
    old_umask = os.umask(0o022)  # what a login shell usually has
    try:
        result = run_module("db_backup", args_for(data_db, target, run_id="run-private", format=fmt))
    finally:
        os.umask(old_umask)
    assert result["verified"], result.get("msg")
    modes = modes_below(target)
    assert modes.pop(".") == "0o700"
    assert modes and all(mode == ("0o700" if (target / name).is_dir() else "0o600") for name, mode in modes.items()), \
        modes
