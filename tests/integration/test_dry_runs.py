"""Dry runs (issue 15): ``--check --diff`` says what a step would change and changes nothing.

The night before the cutover is built the way molecule/shared/prepare_migrated.yml builds it, through the
playbooks themselves on the session's test cluster: legacy data and the app's role, the stand-ins for the
admin API and Kubernetes (tests/standins, on free ports), prepare.yml, migrate.yml. Then
``cutover.yml --check --diff`` must succeed, never roll back, and leave the database, maintenance mode and
the Deployment exactly as they were.
"""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import urllib.request

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping

REPO = pathlib.Path(__file__).resolve().parents[2]
APP_ROLE = "carbot_app_dryrun"
API_TOKEN = "local-rehearsal-token"  # the local inventory's stand-in token, not a secret


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Night:
    def __init__(self, db, tmp):
        self.db, self.tmp = db, tmp
        self.api_port, self.k8s_port = free_port(), free_port()
        self.vars_file = tmp / "vars.json"
        self.vars_file.write_text(json.dumps({
            "carbot_db_name": db.dbname, "carbot_db_user": db.user, "carbot_db_password": db.password,
            "carbot_app_db_user": APP_ROLE, "carbot_app_db_password": "dry-run-app",
            "carbot_rehearsal_dir": str(tmp / "rehearsal"), "carbot_backup_dir": str(tmp / "backups"),
            "carbot_api_url": "http://127.0.0.1:%d" % self.api_port, "local_standins_k8s_port": self.k8s_port,
            "legacy_db_scale": 0.01, "legacy_db_seed": 5, "data_copy_poll_interval": 1,
            "data_copy_job_file": str(tmp / "copy.jid"), "ansible_python_interpreter": sys.executable}))
        self.vars_file.chmod(0o600)

    def play(self, playbook, *extra):
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), CARBOT_DB_PORT=str(self.db.port),
                   CARBOT_REPORTS_DIR=str(self.tmp / "reports"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-tmp"),
                   PATH="%s:%s" % (pathlib.Path(sys.executable).parent, os.environ.get("PATH", "")))
        # the stand-ins and the legacy data are the rehearsal collection's (rehearsal/playbooks); the steps ship
        # in playbooks/
        rehearsal_only = playbook.startswith(("local_standins", "legacy_data"))
        where = REPO / ("rehearsal/playbooks" if rehearsal_only else "playbooks")
        cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(where / playbook),
               "-i", str(REPO / "inventories" / "local"), "-e", "@%s" % self.vars_file] + list(extra)
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=900)

    def api(self, path):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, path),
                                     headers={"Authorization": "Bearer " + API_TOKEN})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read().decode())

    def state(self):
        """Everything the cutover would change: settings, triggers, the migration's tables, the API, the pods."""
        db = self.db
        return {
            "settings": db.query("SELECT coalesce(r.rolname, '-'), s.setconfig FROM pg_db_role_setting s "
                                 "LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1"),
            "triggers": db.query("SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger "
                                 "WHERE NOT tgisinternal ORDER BY 1, 2"),
            "functions": db.query("SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n "
                                  "ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', "
                                  "'information_schema') ORDER BY 1, 2"),
            "grants": db.query("SELECT table_schema, table_name, privilege_type FROM "
                               "information_schema.role_table_grants WHERE grantee = %s ORDER BY 1, 2, 3",
                               (APP_ROLE,)),
            # not last_value: the live app's own health probe (GET /health/database, read as "health of what is
            # live") inserts a row and rolls it back, which consumes an id; ownership and defaults are compared
            "sequences": db.query("SELECT s.schemaname, s.sequencename, d.refobjid::regclass::text FROM pg_sequences s "
                                  "LEFT JOIN pg_depend d ON d.objid = (quote_ident(s.schemaname) || '.' || "
                                  "quote_ident(s.sequencename))::regclass AND d.deptype IN ('a', 'i') ORDER BY 1, 2"),
            "defaults": db.query("SELECT table_schema, table_name, column_name, column_default FROM "
                                 "information_schema.columns WHERE column_default IS NOT NULL ORDER BY 1, 2, 3"),
            "status": db.query("SELECT target_table, state::text, rows_copied, rows_quarantined, updated_at "
                               "FROM carbot_v2.migration_status ORDER BY 1"),
            # rows per table (not pg_stat counters, which count that rolled-back probe too)
            "rows": [(schema, table, db.scalar('SELECT count(*) FROM "%s"."%s"' % (schema, table)))
                     for schema, table in db.query("SELECT schemaname, relname FROM pg_stat_user_tables "
                                                   "ORDER BY 1, 2")],
            "maintenance": self.api("/admin/maintenance"),
            "backups": sorted(p.name for p in (self.tmp / "backups").glob("*")) if (self.tmp / "backups").exists()
            else [],
        }


@pytest.fixture(scope="module")
def night(make_database, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dryrun")
    night = Night(make_database("dryrun"), tmp)
    try:
        for playbook in ("legacy_data.yml", "local_standins.yml", "prepare.yml", "migrate.yml"):
            done = night.play(playbook)
            assert done.returncode == 0, "%s\n%s\n%s" % (playbook, done.stdout[-4000:], done.stderr[-2000:])
        yield night
    finally:
        night.play("local_standins.yml", "-e", "local_standins_state=stopped")


@pytest.mark.slow
def test_cutover_check_diff_succeeds_and_changes_nothing(night):
    before = night.state()
    done = night.play("cutover.yml", "--check", "--diff")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    summary = out.split("PLAY RECAP", 1)[-1]
    (night.tmp / "cutover-check.out").write_text(out)
    assert "Roll back]" not in out and "It was rolled back" not in out, out[-4000:]
    assert "[ERROR]" not in out, out[-6000:]
    assert "failed=0" in summary and "rescued=0" in summary, summary
    after = night.state()
    changed = {key: [x for x in after[key] if x not in before[key]] if isinstance(after[key], list) else after[key]
               for key in before if after[key] != before[key]}
    assert not changed, changed
    # it says what it would do
    assert "would" in out.lower()
    # and, with --diff, per object (issue 15): the search_path settings, the app role's privileges, the id sequences
    assert "- a new session of %s gets: " % APP_ROLE in out, out[-6000:]
    assert "+ database %s: carbot_v2, public" % night.db.dbname in out, out[-6000:]
    assert "+ table carbot_v2.leads: SELECT, INSERT, UPDATE, DELETE" in out
    assert re.search(r"\+ carbot_v2\.audit_logs\.id: public\.audit_logs_id_seq \(default\), next value \d+", out)


def snapshot(db):
    return {"schemas": db.query("SELECT nspname FROM pg_namespace ORDER BY 1"),
            "relations": db.query("SELECT relnamespace::regnamespace::text, relname, relkind FROM pg_class "
                                  "WHERE relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema', "
                                  "'pg_toast') ORDER BY 1, 2"),
            "triggers": db.query("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal "
                                 "ORDER BY 1, 2"),
            "constraints": db.query("SELECT conrelid::regclass::text, conname, convalidated FROM pg_constraint "
                                    "WHERE connamespace::regnamespace::text NOT IN ('pg_catalog', "
                                    "'information_schema') ORDER BY 1, 2")}


@pytest.mark.slow
def test_prepare_check_on_a_fresh_database_says_what_it_would_create_and_changes_nothing(legacy_db, tmp_path):
    night = Night(legacy_db, tmp_path)
    before = snapshot(legacy_db)
    done = night.play("prepare.yml", "--check", "--diff")
    out = " ".join((done.stdout + done.stderr).split())  # YAML output folds long lines
    assert done.returncode == 0, out[-4000:]
    assert "does not exist" not in out
    assert re.search(r"forward: would create %d \(customers, " % len(mapping.LEGACY_TABLES), out) or \
        re.search(r"forward: would create %d \(" % len(mapping.LEGACY_TABLES), out), out[-3000:]
    assert "once the schema step has applied the mapping" in out
    assert "carbot_v2: would change" in out and "tables to create: " in out
    assert "+ forward: customers" in out and "+ table customers" in out  # the diffs
    assert snapshot(legacy_db) == before


@pytest.mark.slow
def test_check_names_the_table_whose_trigger_is_missing_and_migrate_check_says_would(legacy_db, tmp_path):
    night = Night(legacy_db, tmp_path)
    done = night.play("prepare.yml")
    assert done.returncode == 0, done.stdout[-4000:]
    trigger = legacy_db.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.leads'::regclass "
                              "AND NOT tgisinternal LIMIT 1")[0][0]
    legacy_db.query('DROP TRIGGER "%s" ON public.leads' % trigger)  # a name read from the catalog
    before = snapshot(legacy_db)
    done = night.play("prepare.yml", "--check", "--diff")
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, out[-4000:]
    assert "forward: would create 1 (leads), drop 0" in out, out[-3000:]
    assert "+ forward: leads" in out
    done = night.play("migrate.yml", "--check", "--diff")
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, out[-4000:]
    assert re.search(r"foreign keys to add: [1-9]\d*, to validate: [1-9]\d*", out), out[-3000:]
    assert "foreign keys added" not in out
    assert "+ foreign key " in out
    assert snapshot(legacy_db) == before


@pytest.mark.slow
# cleanup.yml is not among them: before a cutover it refuses on purpose (it would remove the sync), also in
# check mode; test_cleanup_playbook.py runs its --check after a cutover.
@pytest.mark.parametrize("playbook", ["assess.yml", "backup.yml", "prepare.yml", "migrate.yml", "validate.yml",
                                      "performance.yml", "gdpr.yml", "rollback.yml"])
def test_every_step_check_diff_succeeds_and_changes_nothing(night, playbook):
    before = night.state()
    extra = ["-e", "performance_runs=1", "-e", "performance_sample_size=2",
             "-e", "assess_baseline_path=%s/" % (night.tmp / "baselines")]
    done = night.play(playbook, "--check", "--diff", *extra)
    out = done.stdout + done.stderr
    (night.tmp / ("%s-check.out" % playbook)).write_text(out)
    assert done.returncode == 0, out[-5000:]
    assert "[ERROR]" not in out, out[-5000:]
    summary = out.split("PLAY RECAP", 1)[-1]
    assert "failed=0" in summary and "rescued=0" in summary, summary
    after = night.state()
    changed = {key: [x for x in after[key] if x not in before[key]] if isinstance(after[key], list) else after[key]
               for key in before if after[key] != before[key]}
    assert not changed, changed


# What the cutover changes; the preflight's full validation may record its own bookkeeping (the change log's mark,
# migration_status) and is not a change of the night.
NIGHT_STATE = ("settings", "triggers", "functions", "grants", "sequences", "defaults", "maintenance", "backups")


def night_changes(before, after):
    return {key: after[key] for key in NIGHT_STATE if after[key] != before[key]}


@pytest.mark.slow
def test_cutover_tags_preflight_runs_the_preflight_alone_and_changes_nothing(night):
    before = night.state()
    done = night.play("cutover.yml", "--tags", "preflight")
    out = done.stdout + done.stderr
    (night.tmp / "cutover-tags-preflight.out").write_text(out)
    assert done.returncode == 0, out[-6000:]
    # the preflight's own tasks ran (tags on an include alone would run only the include)
    for task in ("Measure volumes, sizes, the pg_stat baseline and run the preflight checks",
                 "Final sync and completeness check (triggers, nothing pending, validation)",
                 "The app's Deployment exists", "Stop unless the preflight verdict is go"):
        assert "TASK [carbot.migration." in out and task in out, task
    # and nothing after it
    for task in ("Grant what the app role lacks", "Dump and verify the database", "Turn maintenance mode on",
                 "Every step before the switch ran"):
        assert task not in out, task
    assert "failed=0" in out.split("PLAY RECAP", 1)[-1]
    assert not night_changes(before, night.state())


@pytest.mark.slow
@pytest.mark.parametrize("skipped", ["backup", "reverse_sync"])
def test_cutover_refuses_the_switch_when_a_step_before_it_was_skipped(night, skipped):
    before = night.state()
    done = night.play("cutover.yml", "--skip-tags", skipped)
    out = done.stdout + done.stderr
    (night.tmp / ("cutover-skip-%s.out" % skipped)).write_text(out)
    assert done.returncode != 0, out[-6000:]
    assert "Refusing the switch: this run skipped %s (--tags or --skip-tags)" % skipped in out, out[-6000:]
    assert "Turn maintenance mode on and confirm it" not in out
    after = night.state()
    assert after["maintenance"] == before["maintenance"] and after["settings"] == before["settings"]
    if skipped == "backup":
        # the steps before ran (privileges, reverse sync: both harmless to the live app), the freeze did not
        assert after["backups"] == before["backups"]
