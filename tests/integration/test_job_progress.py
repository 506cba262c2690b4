"""Backup and validation report progress while they run (issue 15), through the roles and ansible-playbook.

Each role runs its module in the background (async) with a progress file and follows it with the action plugin
carbot.migration.job_follow. To make a run slow on purpose, and know when, a test holds an ACCESS EXCLUSIVE lock
on one table: pg_dump (no lock wait timeout) and the validation's count (lock_timeout 3 s) wait for it. While
they wait, the follower must print progress lines; after the lock is released the task ends with the module's
own result, or on failure with the module's own message, printed once.
"""

import hashlib
import re
import threading
import time

import pytest
from test_failure_messages import TEMPLATE_ERRORS, last_failure, run_role
from test_sync import build_migrated

BACKUP_LINE = re.compile(r"^backup \[(\d)/(\d) ([a-z -]+)\](.*); elapsed (\d+)s", re.M)
VALIDATION_LINE = re.compile(r"^validation \[(\d)/(\d) ([a-z]+)\](.*); elapsed (\d+)s", re.M)


class LockWhileWaiting:
    """Holds ACCESS EXCLUSIVE on ``table`` until a backend of ``application_name`` has waited ``hold`` seconds
    for it (or ``limit`` seconds passed), then releases it. ``waited`` says whether anyone waited."""

    def __init__(self, db, table, application_name, hold, limit=120):
        self.db, self.table, self.app, self.hold, self.limit = db, table, application_name, hold, limit
        self.waited = False
        self.conn = db.connect(autocommit=False)
        with self.conn.cursor() as cur:
            cur.execute("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" % table)  # a fixed test table name
        self.thread = threading.Thread(target=self._release, daemon=True)
        self.thread.start()

    def _release(self):
        watcher = self.db.connect(autocommit=True)
        try:
            deadline = time.monotonic() + self.limit
            while time.monotonic() < deadline:
                with watcher.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                "AND wait_event_type = 'Lock'", (self.app,))
                    if cur.fetchone()[0]:
                        self.waited = True
                        break
                time.sleep(0.1)
            time.sleep(self.hold if self.waited else 0)
        finally:
            watcher.close()
            self.conn.rollback()
            self.conn.close()

    def join(self):
        self.thread.join(timeout=self.limit + 30)


@pytest.fixture
def data_db(legacy_db):
    legacy_db.query("""
        INSERT INTO public.audit_logs (action) SELECT 'a' || g FROM generate_series(1, 500) g;
        INSERT INTO public.leads (id, name) SELECT gen_random_uuid(), 'lead ' || g FROM generate_series(1, 300) g;
        INSERT INTO public.chat_messages (message) SELECT repeat('x', 200) FROM generate_series(1, 2000) g;
    """)
    return legacy_db


@pytest.mark.slow
def test_a_slow_backup_prints_progress_while_it_runs_and_ends_with_its_own_result(data_db, tmp_path):
    lock = LockWhileWaiting(data_db, "public.leads", "carbot.migration backup", hold=4)
    try:
        done = run_role(tmp_path, data_db, "backup", backup_poll_interval=0.5)
    finally:
        lock.join()
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert lock.waited, "pg_dump never waited for the lock: the test proves nothing"
    lines = BACKUP_LINE.findall(done.stdout)
    # while pg_dump waited for the lock (4 s, a line every 0.5 s): the dump phase, 0 tables done, time going on
    waiting = [ln for ln in lines if ln[2] == "dump"]
    assert len(waiting) >= 4, "\n".join(m.group(0) for m in BACKUP_LINE.finditer(done.stdout)) or out[-3000:]
    assert int(waiting[-1][4]) > int(waiting[0][4]), waiting
    assert " / " in waiting[0][3] and "tables" in waiting[0][3] and "written" in waiting[0][3], waiting[0]
    # the phases in order, ending with the publication: step 6 of 6 (the scratch restore check is step 5)
    phases = [ln[2] for ln in lines]
    assert phases.index("dump") < phases.index("publish"), phases
    assert lines[-1][1] == "6" and lines[-1][2] == "publish" and "(done)" in lines[-1][3], lines[-1]
    # the progress came before the result, and the result is the module's own: the file it names is there
    first_line = done.stdout.index("backup [")
    report = re.search(r"Backup (\S+) \(.*?\) verified; sha256 ([0-9a-f]{64})", done.stdout)
    assert report and report.start() > first_line, done.stdout[-3000:]
    dump = report.group(1)
    assert (tmp_path / "backups").exists() and dump.endswith(".dump")
    with open(dump, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == report.group(2)
    assert "Verified backup of run night-1" in done.stdout
    assert data_db.password not in out
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.endswith(".partial")]


@pytest.mark.slow
def test_a_backup_failing_after_its_dump_shows_progress_then_its_own_message_once(data_db, tmp_path):
    lock = LockWhileWaiting(data_db, "public.leads", "carbot.migration backup", hold=2)
    try:
        # a table that does not exist among the tables whose rows are counted in the dump's snapshot: the module
        # fails after pg_dump, in the row counts
        done = run_role(tmp_path, data_db, "backup", backup_poll_interval=0.5,
                        backup_verify_tables=["public.leads", "public.no_such_table"])
    finally:
        lock.join()
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert lock.waited
    assert len([ln for ln in BACKUP_LINE.findall(done.stdout) if ln[2] == "dump"]) >= 2, out[-3000:]
    msg = last_failure(done)
    assert msg.startswith("database error during backup of %s" % data_db.dbname), msg
    assert "no_such_table" in msg
    for bad in TEMPLATE_ERRORS:
        assert bad not in msg, msg
    # once: no task after the follow re-raises it, the follow adds no prefix
    assert done.stdout.count('relation "public.no_such_table" does not exist') == 1, done.stdout[-3000:]
    assert "Backup FAILED" not in done.stdout
    assert data_db.password not in out
    assert list((tmp_path / "backups").iterdir()) == []


@pytest.fixture(scope="module")
def migrated(make_database):
    db = make_database("progress")
    build_migrated(db, scale=0.005)
    return db


@pytest.mark.slow
def test_a_slow_validation_prints_check_and_table_progress_and_ends_with_its_own_result(migrated, tmp_path):
    # the validation's lock_timeout is 3 s: hold the lock 1.5 s after its count started to wait
    lock = LockWhileWaiting(migrated, "carbot_v2.customers", "carbot.migration validate", hold=1.5)
    try:
        done = run_role(tmp_path, migrated, "validate", validate_poll_interval=0.25)
    finally:
        lock.join()
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert lock.waited, "the validation never waited for the lock: the test proves nothing"
    lines = [m.groups() for m in VALIDATION_LINE.finditer(done.stdout)]
    at_customers = [ln for ln in lines if ln[2] == "counts" and "at customers" in ln[3]]
    assert len(at_customers) >= 3, "\n".join(m.group(0) for m in VALIDATION_LINE.finditer(done.stdout))
    total = re.search(r"(\d+) / (\d+) tables", at_customers[0][3])
    assert total and 0 < int(total.group(2)) and int(total.group(1)) < int(total.group(2)), at_customers[0]
    assert lines[0][1] == "6", lines[0]  # check n of 6
    # the module's own result, after the progress: report.yml reads every check from it
    assert "Validation passed: counts, checksums, integrity, quality, consent, unmapped" in done.stdout
    assert done.stdout.index("validation [") < done.stdout.index("Validation passed")
    assert re.search(r"counts: ok \(0 failures, [\d.]+s\); checksums: ok", done.stdout), done.stdout[-3000:]
    assert migrated.password not in out


@pytest.mark.slow
def test_a_validation_that_cannot_run_fails_with_its_own_message_once(migrated, tmp_path):
    done = run_role(tmp_path, migrated, "validate", validate_poll_interval=0.25,
                    validate_mapping_schema="no_such_mapping")
    assert done.returncode != 0, done.stdout[-3000:]
    msg = last_failure(done)
    assert msg.startswith("Validation could not run:"), msg
    assert "no_such_mapping" in msg
    for bad in TEMPLATE_ERRORS:
        assert bad not in msg, msg
    assert done.stdout.count("Validation could not run:") == 1, done.stdout[-3000:]
    assert migrated.password not in done.stdout + done.stderr
