"""A copy left running by a killed ansible-playbook (issue 12, item 6).

migrate.yml runs the copy as an async job; after ``kill -9`` of ansible-playbook that job goes on without an
owner. roles/data_copy records the job id (data_copy_job_file), so that:

* a rerun of migrate.yml follows that job to its end instead of starting a second copy beside it, and says so;
* the cutover's preflight refuses while the job runs, before anything changes.

The copy is made slow on purpose: small batches, one worker, and a test-only trigger on migration_status (the
"brake") that sleeps after every batch's checkpoint while the test holds it on. The test takes the brake off
once the orphaned job has been killed, refused by the cutover and found by the rerun, so the copy then ends.

Two copies would be seen three ways: another job id in the job file, another run_id in migration_status (every
run of the engine writes its own into each table's row when it starts it) and a second copy session in
pg_stat_activity (one worker: never more than one ``carbot.migration copy <table>`` session at a time).
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping, sync, validation
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data
from conftest import playbook_pids

REPO = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")
BRAKE_SECONDS = 0.2  # per batch while the brake is on: 5 batches/s, so the copy runs for minutes
# The most sessions of one copy step at once ('carbot.migration copy <table>', 'copy plan'). One copy has one
# session per step; a second copy beside it would be a second session on the same step (its batches take turns on
# the same tables). Counted per name: when the copy moves from one table to the next, the closing session of the
# last table can still be listed beside the new one (a race of the observation, not a second copy).
COPY_SESSIONS = ("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_stat_activity "
                 "WHERE datname = current_database() AND application_name LIKE 'carbot.migration copy %%' "
                 "AND application_name <> 'carbot.migration copy progress' GROUP BY application_name) s")


@pytest.fixture
def prepared(make_database):
    """Legacy data, carbot_v2 with the mapping and the forward sync (prepare.yml's result), nothing copied,
    and the brake on migration_status (on)."""
    db = make_database("orphan")
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    conn.commit()
    legacy_data.generate(conn, (REPO / "sql" / "legacy" / "generate.sql").read_text(), 11, 0.005, "public")
    mapping.apply_all(conn, str(REPO / "sql"))
    conn.commit()
    plan = sync.Plan(conn)
    conn.close()
    sync.install({"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
                  "login_password": db.password, "lock_timeout_ms": 3000}, plan, sync.FORWARD)
    db.query("CREATE SCHEMA test_brake")
    db.query("CREATE TABLE test_brake.brake (seconds float8 NOT NULL)")
    db.query("INSERT INTO test_brake.brake VALUES (%s)", (BRAKE_SECONDS,))
    db.query("CREATE FUNCTION test_brake.slow_down() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN PERFORM pg_sleep((SELECT seconds FROM test_brake.brake)); RETURN NEW; END $$")
    db.query("CREATE TRIGGER test_brake AFTER UPDATE ON carbot_v2.migration_status FOR EACH ROW "
             "WHEN (NEW.last_key IS DISTINCT FROM OLD.last_key) EXECUTE FUNCTION test_brake.slow_down()")
    return db


class Runs:
    """ansible-playbook runs against the test database, each in its own process group."""

    def __init__(self, db, tmp_path):
        self.db, self.tmp = db, tmp_path
        self.started = []
        self.inventory = tmp_path / "hosts.ini"
        self.inventory.write_text("[carbot_db]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
                                  % sys.executable)
        self.vars_file = tmp_path / "vars.json"
        self.vars_file.write_text(json.dumps({
            "carbot_db_host": db.host, "carbot_db_port": db.port, "carbot_db_name": db.dbname,
            "carbot_db_user": db.user, "carbot_db_password": db.password, "carbot_db_sslmode": "disable",
            "carbot_legacy_schema": "public", "carbot_target_schema": "carbot_v2",
            "carbot_mapping_schema": "carbot_migration", "carbot_backup_dir": str(tmp_path / "backups"),
            "carbot_app_db_user": "carbot_app", "carbot_app_db_password": "app-pw",
            # nothing answers here: the cutover must refuse before it needs them
            "carbot_api_url": "http://127.0.0.1:9", "carbot_api_token": "token",
            "carbot_k8s_namespace": "carbot", "carbot_k8s_deployment": "carbot-app",
            "carbot_k8s_kubeconfig": str(tmp_path / "no-kubeconfig"),
            # slow on purpose (the brake does the rest): small batches, one table at a time, quick polls
            "data_copy_batch_size": 20, "data_copy_workers": 1, "data_copy_poll_interval": 1}))
        self.vars_file.chmod(0o600)
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), CARBOT_REPORTS_DIR=str(tmp_path / "reports"))
        # the role's default, on the host that runs the module (here: this one)
        self.job_file = pathlib.Path(os.path.expanduser(
            "~/.ansible_async/carbot-data-copy-%s-%s.jid" % (db.dbname, db.port)))

    def command(self, playbook, *extra):
        return [ANSIBLE_PLAYBOOK, "-i", str(self.inventory), "-e", "@%s" % self.vars_file, *extra,
                str(REPO / "playbooks" / playbook)]

    def start(self, name, playbook, *extra):
        """Start ansible-playbook in the background, in a new process group; its output goes to a file."""
        out = self.tmp / ("%s.log" % name)
        with out.open("w") as handle:
            proc = subprocess.Popen(self.command(playbook, *extra), cwd=REPO, env=self.env, stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = out
        self.started.append(proc)
        return proc

    def run(self, playbook, *extra):
        return subprocess.run(self.command(playbook, *extra), cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=240)


def async_job_pids(jid):
    """Pids of the async job ``jid``: its async_wrapper processes (argv[1] is the jid before the dot) and
    every process in their session (the module they run)."""
    number = jid.split(".")[0]
    wrappers, sessions = set(), {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        sid = int(stat.rsplit(")", 1)[1].split()[3])
        sessions[int(entry.name)] = sid
        if any(a.endswith(b"async_wrapper.py") for a in argv) and number.encode() in argv:
            wrappers.add(int(entry.name))
    sids = {sessions[p] for p in wrappers if p in sessions}
    return sorted(p for p, sid in sessions.items() if sid in sids and p != os.getpid())


def wait_for(what, check, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail("%s: ansible-playbook ended first (rc %s):\n%s" % (what, proc.returncode,
                                                                          proc.log.read_text()[-4000:]))
        if time.monotonic() > deadline:
            pytest.fail("%s: not within %d s" % (what, timeout))
        time.sleep(0.2)


def flat(text):
    """ansible-playbook's output with its line wrapping undone (the yaml result format folds long messages)."""
    return " ".join(text.split())


def copying_run_ids(db):
    return {r[0] for r in db.query("SELECT run_id FROM carbot_v2.migration_status WHERE state = 'copying'")}


def rows_done(db):
    return db.scalar("SELECT coalesce(sum(rows_copied + rows_quarantined), 0) FROM carbot_v2.migration_status")


@pytest.mark.slow
def test_a_rerun_follows_the_orphaned_copy_and_the_cutover_refuses_beside_it(prepared, tmp_path):
    db = prepared
    runs = Runs(db, tmp_path)
    jid = None
    try:
        # 1. migrate.yml until its copy job runs (the job file is written right after the job started).
        first = runs.start("first", "migrate.yml")
        jid = wait_for("the job file of the first run", lambda: runs.job_file.exists()
                       and runs.job_file.read_text().strip(), 120, first)
        run_ids = wait_for("the copy of the first run in migration_status", lambda: copying_run_ids(db), 60, first)
        assert len(run_ids) == 1, run_ids
        (run_id,) = run_ids

        # 2. kill -9 of ansible-playbook (its process group: the workers too), not of the async job.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
        # The killed run's worker that followed the job has its own session: it must stop by itself, not go on
        # following (at the job's end it would remove the job's status file under the rerun's follower).
        wait_for("the killed run's follower stopping", lambda: not playbook_pids(runs.vars_file, "migrate.yml"), 30)
        assert async_job_pids(jid), "the async copy job died with ansible-playbook"
        before = rows_done(db)
        wait_for("the orphaned copy making progress", lambda: rows_done(db) > before, 30)

        # 3. The cutover refuses while the orphaned job runs, before anything changes.
        refused = runs.run("cutover.yml", "-e", "k8s_rollout_image=registry.example/carbot-app:2.0.0")
        out = flat(refused.stdout + refused.stderr)
        assert refused.returncode != 0, out[-4000:]
        assert re.search(r"Refusing to start: the copy job %s started by an earlier migrate\.yml is still running"
                         % re.escape(jid), out), out[-4000:]
        assert "Preflight of the database" not in out, "the cutover went on past the running copy job"
        assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'carbot\\_sync\\_rev%%'") == 0, \
            "the reverse sync was installed"
        assert async_job_pids(jid), "the orphaned copy ended before the rerun: make the brake stronger"

        # 4. migrate.yml again: it must follow the orphaned job, not start a second copy.
        second = runs.start("second", "migrate.yml")
        most_sessions = 0

        def follows():
            nonlocal most_sessions
            most_sessions = max(most_sessions, db.scalar(COPY_SESSIONS))
            return "of an earlier run is still running: following it" in flat(second.log.read_text())

        wait_for("the rerun saying it follows the earlier job", follows, 120, second)
        assert async_job_pids(jid), "the orphaned copy ended before the rerun found it: make the brake stronger"
        for _ in range(10):  # a second copy would start right after this point: look for it a while
            most_sessions = max(most_sessions, db.scalar(COPY_SESSIONS))
            assert copying_run_ids(db) <= {run_id}, "a second copy started beside the orphaned one"
            time.sleep(0.2)
        db.query("UPDATE test_brake.brake SET seconds = 0")  # the brake off: the copy ends now
        deadline = time.monotonic() + 180
        while second.poll() is None:
            most_sessions = max(most_sessions, db.scalar(COPY_SESSIONS))
            if time.monotonic() > deadline:
                pytest.fail("the rerun did not end:\n" + second.log.read_text()[-4000:])
            time.sleep(0.2)
        log = flat(second.log.read_text())

        # (1) no second copy: every table's row names the orphaned job's run of the engine (a second run writes
        # its own run_id into each table it starts), the job file still names that job, never two copy sessions
        status = db.query("SELECT target_table, state, run_id FROM carbot_v2.migration_status ORDER BY 1")
        assert {r[2] for r in status} == {run_id}, "a second copy ran beside the orphaned one: %s" % status
        assert runs.job_file.read_text().strip() == jid, "another copy job was started"
        assert most_sessions == 1, ("%d copy sessions of one step at once: a second copy ran beside the first"
                                    % most_sessions)
        # ... and the rerun said so, and reported the outcome of the job it followed
        assert second.returncode == 0, second.log.read_text()[-6000:]
        assert "The copy job %s of an earlier run is still running: following it, not starting another." % jid in log
        assert "Start carbot.migration.data_copy in the background" not in log
        assert "(run %s," % run_id in log, log[-4000:]
        # (2) every table copied, the foreign keys validated and the data as the mapping says
        assert {t["target"] for t in mapping.TABLES} <= {r[0] for r in status}
        assert [r for r in status if r[1] != "copied"] == [], status
        # the job reported its end; its async_wrapper processes exit a moment later
        wait_for("the orphaned job's processes ending", lambda: not async_job_pids(jid), 30)
        assert db.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated "
                         "AND connamespace = 'carbot_v2'::regnamespace") == 0
        assert db.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                         "AND connamespace = 'carbot_v2'::regnamespace") > 0
        conn = db.connect(autocommit=False)
        try:
            report = validation.Validator(conn).run(checks=("counts", "checksums", "integrity"))
        finally:
            conn.close()
        assert report["failed"] is False, report["msg"]

        # 3'. with the job ended, the same preflight check lets the cutover go on past it
        again = runs.run("cutover.yml", "-e", "k8s_rollout_image=registry.example/carbot-app:2.0.0")
        after = flat(again.stdout + again.stderr)
        assert "Refusing to start: the copy job" not in after
        assert "Preflight of the database" in after, again.stdout[-4000:]
    finally:
        for proc in runs.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        for pid in playbook_pids(runs.vars_file, "migrate.yml"):  # workers outlive their group's kill (setsid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if jid:
            for pid in async_job_pids(jid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            pathlib.Path(os.path.expanduser("~/.ansible_async"), jid).unlink(missing_ok=True)
        runs.job_file.unlink(missing_ok=True)
