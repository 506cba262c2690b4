"""cutover.yml -e cutover_mode=online, run as ops run it (ansible-playbook) against a migrated database and the
stand-ins (the admin API and the Kubernetes API, in this process), while the app writes from both sides the whole
time: old pods as the app role on the legacy schema, new pods as the new version's role on carbot_v2, both through
unqualified names (issue 17).

1. The rollout fails halfway (an image whose pods never start: ImagePullBackOff): the run fails, rolls back by
   itself (rollout undo while both versions write), the old image serves again, the database search_path never
   moved, maintenance mode was never on, and every write of both sides is on both sides (validation clean).
2. The online cutover: old and new pods serve together for a while (the stand-in's rollout timeline), then every
   pod is new, the database-level search_path is carbot_v2's, no maintenance mode at any time, no failed write on
   either side, validation clean.
3. A rerun changes nothing.
4. rollback.yml -e cutover_mode=online: no maintenance mode, the search_path back while the new pods keep carbot_v2
   through their role, the rollout undo; both roles write through it, nothing is lost.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg2
import pytest
from conftest import make_app_role, playbook_pids
from test_sync import assert_valid, build_migrated

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.standins.admin_api import start_admin_api  # noqa: E402
from tests.standins.k8s_api import DEPLOYMENTS, TIMELINE_PATH, StandIn  # noqa: E402

TOKEN = "online-drill-token"  # throwaway credentials of loopback stand-ins and a test cluster, not secrets
OLD_PASSWORD = "online-drill-old"
NEW_PASSWORD = "online-drill-new"
OLD_IMAGE = "registry.carbot.example/carbot-app:1.9.0"
NEW_IMAGE = "registry.carbot.example/carbot-app:2.0.0"
FAILING_IMAGE = "registry.carbot.example/carbot-app:2.0.0-fail"
POD_READY_SECONDS = 4


class Writer(threading.Thread):
    """One app pod's writes: a customer edit and a consent record per transaction, through unqualified names,
    retried on PostgreSQL's retryable errors as the app does; counts what committed and what failed."""

    def __init__(self, db, user, password, keys, tag, alive=None):
        super().__init__(daemon=True, name="writer-%s" % tag)
        self.db, self.user, self.password, self.keys, self.tag = db, user, password, keys, tag
        self.alive = alive or (lambda: True)  # False once this version has no pod left: the writer ends
        self.stopping = threading.Event()
        self.committed, self.retried, self.failed, self.errors = 0, 0, 0, []
        self.reconnects = 0
        self.inserted = []
        self.schemas = set()

    def run(self):
        conn = None
        while not self.stopping.is_set() and self.alive():
            if conn is None:
                try:
                    conn = psycopg2.connect(host=self.db.host, port=self.db.port, dbname=self.db.dbname,
                                            user=self.user, password=self.password, application_name=self.tag)
                    conn.autocommit = True
                except psycopg2.OperationalError:
                    time.sleep(0.2)  # the new version's role is not there yet
                    continue
            try:
                self._one(conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                # the session was ended under the app (old sessions recycled at the switch): the pool
                # reconnects and the transaction, which never committed, runs again
                self.reconnects += 1
                conn = None
                continue
            self.stopping.wait(0.05)
        if conn is not None:
            conn.close()

    def _one(self, conn):
        cur = conn.cursor()
        for _attempt in range(10):
            try:
                cur.execute("BEGIN")
                cur.execute("SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'customers'::regclass")
                schema = cur.fetchone()[0]
                self.schemas.add(schema)
                key = self.keys[self.committed % len(self.keys)]
                cur.execute("UPDATE customers SET phone = %s WHERE id = %s",
                            ("%s-%d" % (self.tag, self.committed), key))
                if schema == "carbot_v2":
                    cur.execute("INSERT INTO consent_log (workshop_id, client_key, consent_type, granted, created_at) "
                                "SELECT workshop_id, %s, consent_type, true, now() FROM consent_log "
                                "ORDER BY id LIMIT 1 RETURNING id", (self.tag,))
                else:
                    cur.execute("INSERT INTO consent_log (workshop_id, kunde_id, consent_type, granted, created_at) "
                                "SELECT workshop_id, %s, consent_type, true, now() FROM consent_log "
                                "ORDER BY id LIMIT 1 RETURNING id", (self.tag,))
                new_id = cur.fetchone()[0]
                cur.execute("COMMIT")
                self.committed += 1
                self.inserted.append(new_id)
                return
            except (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure):
                cur.execute("ROLLBACK")
                self.retried += 1
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                raise
            except psycopg2.Error as exc:
                cur.execute("ROLLBACK")
                self.failed += 1
                self.errors.append(str(exc).splitlines()[0])
                return
        self.failed += 1

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
        return {"committed": self.committed, "retried": self.retried, "failed": self.failed,
                "reconnects": self.reconnects,
                "errors": self.errors[:5], "schemas": sorted(self.schemas)}


@pytest.fixture(scope="module")
def night(make_database, tmp_path_factory):
    db = make_database("online")
    build_migrated(db, scale=0.005)
    db.app_role = make_app_role(db, OLD_PASSWORD, sequences="USAGE, SELECT, UPDATE")
    db.new_role = db.app_role + "_v2"
    work = tmp_path_factory.mktemp("online")
    dsn = "host=%s port=%s dbname=%s user=%%s password=%%s" % (db.host, db.port, db.dbname)
    api = start_admin_api(TOKEN, dsn % (db.app_role, OLD_PASSWORD), status_dsn=db.dsn,
                          new_db_dsn=dsn % (db.new_role, NEW_PASSWORD), state_file=str(work / "api-state.json"))
    k8s = StandIn(token=TOKEN, pod_ready_seconds=POD_READY_SECONDS, work_dir=work / "k8s").start()
    k8s.api.ensure_namespace("carbot")
    k8s.api.seed_deployment("carbot-app", "carbot", OLD_IMAGE, replicas=2, container_name="carbot-app")
    kubeconfig = k8s.write_kubeconfig(work / "kubeconfig", context="carbot-drill", namespace="carbot")
    inventory = work / "hosts.ini"
    inventory.write_text("[carbot_db]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
                         % sys.executable)
    vars_file = work / "vars.json"
    vars_file.write_text(json.dumps({
        "carbot_environment": "molecule",
        "carbot_db_host": db.host, "carbot_db_port": db.port, "carbot_db_name": db.dbname,
        "carbot_db_user": db.user, "carbot_db_password": db.password, "carbot_db_sslmode": "disable",
        "carbot_app_db_user": db.app_role, "carbot_app_db_password": OLD_PASSWORD,
        "carbot_app_v2_db_user": db.new_role, "carbot_app_v2_db_password": NEW_PASSWORD,
        "carbot_legacy_schema": "public", "carbot_target_schema": "carbot_v2",
        "carbot_mapping_schema": "carbot_migration",
        "carbot_api_url": api.url, "carbot_api_token": TOKEN,
        "carbot_k8s_namespace": "carbot", "carbot_k8s_deployment": "carbot-app",
        "carbot_k8s_kubeconfig": str(kubeconfig), "carbot_k8s_context": "carbot-drill",
        "carbot_backup_dir": str(work / "backups"), "carbot_reports_dir": str(work / "reports"),
        "online_cutover_poll_seconds": 1, "health_check_retries": 3, "health_check_delay": 1,
        "k8s_rollout_wait_timeout": 60}))
    vars_file.chmod(0o600)
    db.api, db.k8s, db.work, db.inventory, db.vars_file = api, k8s, work, inventory, vars_file
    try:
        yield db
    finally:
        k8s.stop()
        api.stop()


def cutover(db, *extra, playbook="cutover.yml"):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(db.work / "ansible-tmp"), CARBOT_REPORTS_DIR=str(db.work / "reports"),
               ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               PATH="/usr/lib/postgresql/15/bin:" + os.environ["PATH"])
    return subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(db.inventory),
                           "-e", "@%s" % db.vars_file, "-e", "cutover_mode=online", *extra,
                           str(REPO / "playbooks" / playbook)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def deployment(db):
    with db.k8s.api.store.lock:
        return json.loads(json.dumps(db.k8s.api.store.get(DEPLOYMENTS, "carbot", "carbot-app")))


def old_pods_serve(db):
    """Some pod of an image other than the new one is ready (the stand-in's record)."""
    with db.k8s.api.store.lock:
        last = [e for e in db.k8s.api.controller.timeline if e["deployment"] == "carbot/carbot-app"][-1:]
    return not last or any(r["ready"] > 0 and r["image"] != NEW_IMAGE for r in last[0]["revisions"].values())


def database_path(db):
    rows = db.query("SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d "
                    "ON d.oid = s.setdatabase WHERE d.datname = current_database() AND s.setrole = 0")
    return rows[0][0] if rows else ""


def run_with_writers(db, *extra, playbook="cutover.yml", old_alive=True):
    keys = [str(r[0]) for r in db.query("SELECT id FROM carbot_v2.customers ORDER BY id LIMIT 4")]
    writers = [Writer(db, db.app_role, OLD_PASSWORD, keys, "old-%s" % uuid.uuid4().hex[:6],
                      alive=(lambda: old_pods_serve(db)) if old_alive else None),
               Writer(db, db.new_role, NEW_PASSWORD, keys, "new-%s" % uuid.uuid4().hex[:6])]
    for w in writers:
        w.start()
    since = time.time()
    run = cutover(db, *extra, playbook=playbook)
    time.sleep(1)
    stats = {w.tag: w.stop() for w in writers}
    return run, stats, writers, since


def assert_every_write_on_both_sides(db, writers):
    for w in writers:
        legacy = db.scalar("SELECT count(*) FROM public.consent_log WHERE kunde_id = %s", (w.tag,))
        target = db.scalar("SELECT count(*) FROM carbot_v2.consent_log WHERE client_key = %s", (w.tag,))
        assert legacy == target == w.committed > 0, (w.tag, legacy, target, w.committed)


# Three or four whole playbooks (cutover, rerun, rollback) with live writers: 120-210 s on 2 cores, too close to
# pytest.ini's 300 s per-test limit on a loaded CI machine (a run hit it beside Molecule).
@pytest.mark.timeout(900)
def test_a_failing_rollout_is_rolled_back_and_nothing_is_lost_then_the_online_cutover(night):
    db = night
    # 0. A dry run (--check) of the online night changes nothing: no role, no Secret, the same Deployment and path.
    dry = cutover(db, "--check", "-e", "k8s_rollout_image=%s" % NEW_IMAGE)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-6000:]
    assert db.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", (db.new_role,)) == 0
    assert deployment(db)["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE
    assert database_path(db) == "" and db.api.api.maintenance.changes() == []

    # 1. The rollout fails halfway: the old pods keep serving, the new one never starts.
    run, stats, writers, since = run_with_writers(db, "-e", "k8s_rollout_image=%s" % FAILING_IMAGE)
    out = run.stdout + run.stderr
    print("failing rollout:", stats)
    assert run.returncode != 0, out[-6000:]
    assert "new pods cannot start (ImagePullBackOff)" in out, out[-6000:]
    assert "rolled back" in out and "rollout undo: ok" in out, out[-4000:]
    dep = deployment(db)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE
    assert database_path(db) == ""  # the database-level path never moved
    assert db.api.api.maintenance.changes() == []  # maintenance mode was never turned on
    for tag, s in stats.items():
        assert s["failed"] == 0 and s["committed"] > 0, (tag, s)
    assert stats[writers[0].tag]["schemas"] == ["public"] and stats[writers[1].tag]["schemas"] == ["carbot_v2"]
    assert_every_write_on_both_sides(db, writers)
    assert_valid(db)

    # 2. The online cutover: old and new pods together, then only new ones, then the database-level switch.
    run, stats, writers, since = run_with_writers(db, "-e", "k8s_rollout_image=%s" % NEW_IMAGE)
    out = run.stdout + run.stderr
    print("online cutover:", stats)
    assert run.returncode == 0, out[-8000:]
    assert "Cutover done" in out, out[-4000:]
    dep = deployment(db)
    template = dep["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert template["metadata"]["annotations"]["carbot.migration/db-role"] == db.new_role
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert env["CARBOT_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "carbot-app-db-v2"
    assert NEW_PASSWORD not in out and OLD_PASSWORD not in out
    assert database_path(db) == "search_path=carbot_v2, public"
    assert db.api.api.maintenance.changes() == []  # no write freeze
    # The stand-in's record: at some moment pods of both revisions were ready together, at the end only new ones.
    timeline = [e for e in db.k8s.api.controller.timeline
                if e["ts"] >= since and e["deployment"] == "carbot/carbot-app"]
    both = [e for e in timeline if sum(1 for r in e["revisions"].values() if r["ready"] > 0) >= 2]
    assert both, timeline
    assert [r["image"] for r in timeline[-1]["revisions"].values()] == [NEW_IMAGE], timeline[-1]
    # The report: zero seconds of write freeze, the rollout timeline, both versions serving together for a while.
    report = json.loads(sorted((db.work / "reports").glob("*-cutover/report.json"))[-1].read_text())
    online = report["sections"]["online_cutover"]
    assert online["write_freeze_seconds"] == 0 and online["rollout_timeline"], online
    assert "revision" in online["rollout_timeline"][-1] and "health old" in online["rollout_timeline"][-1]
    assert report["sections"]["version_role"]["role"] == db.new_role
    for tag, s in stats.items():
        assert s["failed"] == 0 and s["committed"] > 0, (tag, s)
    assert_every_write_on_both_sides(db, writers)
    assert_valid(db)
    assert TIMELINE_PATH.startswith("/_standin/")

    # 3. A rerun changes nothing.
    again = cutover(db, "-e", "k8s_rollout_image=%s" % NEW_IMAGE)
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert "already cut over: nothing to do" in again.stdout

    # 4. The online rollback on purpose: both roles write through it (the app role resolves carbot_v2 until the path
    # is back, then public, as old pods that come back through the undo do); nothing is lost, no freeze.
    run, stats, writers, since = run_with_writers(db, playbook="rollback.yml", old_alive=False)
    out = run.stdout + run.stderr
    print("online rollback:", stats)
    assert run.returncode == 0, out[-8000:]
    assert "Rollback done" in out, out[-4000:]
    assert deployment(db)["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE
    assert database_path(db) == ""
    assert db.api.api.maintenance.changes() == []
    for tag, s in stats.items():
        assert s["failed"] == 0 and s["committed"] > 0, (tag, s)
    assert stats[writers[1].tag]["schemas"] == ["carbot_v2"]
    assert_every_write_on_both_sides(db, writers)
    assert_valid(db)


# Three or four whole playbooks (cutover, rerun, rollback) with live writers: 120-210 s on 2 cores, too close to
# pytest.ini's 300 s per-test limit on a loaded CI machine (a run hit it beside Molecule).
@pytest.mark.timeout(900)
def test_an_online_cutover_killed_in_the_middle_of_its_rollout_is_finished_by_a_rerun(night):
    """The worst moment for an online cutover to die: old and new pods serve together, the database-level
    search_path not switched yet. kill -9 of ansible-playbook (and its workers) there; a rerun must finish the
    night (every pod new, the path switched) and every write of both versions must be on both sides."""
    db = night
    assert deployment(db)["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE  # after the rollback
    keys = [str(r[0]) for r in db.query("SELECT id FROM carbot_v2.customers ORDER BY id LIMIT 4")]
    writers = [Writer(db, db.app_role, OLD_PASSWORD, keys, "old-%s" % uuid.uuid4().hex[:6],
                      alive=lambda: old_pods_serve(db)),
               Writer(db, db.new_role, NEW_PASSWORD, keys, "new-%s" % uuid.uuid4().hex[:6])]
    for w in writers:
        w.start()
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(db.work / "ansible-tmp"), CARBOT_REPORTS_DIR=str(db.work / "reports"),
               PATH="/usr/lib/postgresql/15/bin:" + os.environ["PATH"])
    log = db.work / "killed-run.log"
    with log.open("w") as handle:
        first = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i",
                                  str(db.inventory), "-e", "@%s" % db.vars_file, "-e", "cutover_mode=online",
                                  "-e", "k8s_rollout_image=%s" % NEW_IMAGE, str(REPO / "playbooks" / "cutover.yml")],
                                 cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)

    def both_versions_ready():
        with db.k8s.api.store.lock:
            last = [e for e in db.k8s.api.controller.timeline if e["deployment"] == "carbot/carbot-app"][-1:]
        if not last:
            return False
        ready = {r["image"] for r in last[0]["revisions"].values() if r["ready"] > 0}
        return ready == {OLD_IMAGE, NEW_IMAGE}

    deadline = time.monotonic() + 300
    while not both_versions_ready():
        assert first.poll() is None, "the run ended before its rollout overlapped:\n" + log.read_text()[-4000:]
        assert time.monotonic() < deadline, "no overlap of old and new pods within 300 s"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    for pid in playbook_pids(db.vars_file):
        os.kill(pid, signal.SIGKILL)
    assert database_path(db) == "", "the killed run had switched the database-level path already"

    rerun = cutover(db, "-e", "k8s_rollout_image=%s" % NEW_IMAGE)
    time.sleep(1)
    stats = {w.tag: w.stop() for w in writers}
    out = rerun.stdout + rerun.stderr
    print("killed, then rerun:", stats)
    assert rerun.returncode == 0, out[-8000:]
    assert "Cutover done" in out, out[-4000:]
    assert deployment(db)["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert database_path(db) == "search_path=carbot_v2, public"
    assert db.api.api.maintenance.changes() == []
    for tag, s in stats.items():
        assert s["failed"] == 0 and s["committed"] > 0, (tag, s)
    assert_every_write_on_both_sides(db, writers)
    assert_valid(db)
