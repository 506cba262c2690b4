"""carbot.migration.assess against a real PostgreSQL: figures checked against independent SQL.

Also holds the helpers the other issue-5 tests import: ``migrated_database`` builds the real
pipeline (legacy schema + generator, carbot_v2 + mapping, copy engine) at a small scale, and
``run_module`` runs a module the way Ansible does (a JSON args file, JSON on stdout).
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid

import psycopg2
import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data

REPO = pathlib.Path(__file__).resolve().parents[2]
SCALE = 0.02
SEED = 42
LEGACY_TABLES = mapping.LEGACY_TABLES


# ------------------------------------------------------------------------------- shared helpers
def conn_args(db):
    return {"login_host": db.host, "login_port": int(db.port), "login_db": db.dbname, "login_user": db.user,
            "login_password": db.password, "ssl_mode": "disable"}


def run_module(name, db, tmp_path, check_mode=False, **args):
    """Run plugins/modules/<name>.py like Ansible does; returns the parsed result (``rc`` added)."""
    payload = dict(conn_args(db), **args)
    if check_mode:
        payload["_ansible_check_mode"] = True
    path = tmp_path / ("args-%s-%s.json" % (name, uuid.uuid4().hex[:6]))
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    proc = subprocess.run([sys.executable, str(REPO / "plugins" / "modules" / ("%s.py" % name)), str(path)],
                          capture_output=True, text=True, env=env, timeout=600)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON: %s %s" % (name, proc.stdout[-2000:], proc.stderr[-2000:]))
    result["rc"] = proc.returncode
    return result


def migrated_database(make_database, prefix="mig", scale=SCALE):
    """The real pipeline: legacy data (generator), carbot_v2 + mapping (sql/), copy engine."""
    db = make_database(prefix)
    conn = db.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    legacy_data.generate(conn, (REPO / "sql" / "legacy" / "generate.sql").read_text(), SEED, scale, "public")
    conn.autocommit = False
    mapping.apply_all(conn, str(REPO / "sql"))
    conn.commit()
    conn.close()
    result = copy_engine.CopyEngine(conn_args(db), workers=2).run()
    assert not result["failed"], result
    # Settle the relation sizes that tests compare with what a module measured: VACUUM creates the
    # free-space and visibility maps now, not when autovacuum gets to a freshly copied table between the
    # module's measurement and the test's (a 16 kB difference once made test_performance flaky).
    conn = db.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("VACUUM")
    conn.close()
    return db


def clone(template, prefix="clone"):
    """A copy of ``template`` (CREATE DATABASE ... TEMPLATE) that a test may change."""
    name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
    database = type(template)
    admin = database(template.host, template.port, "postgres", template.user, template.password).connect()
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template.dbname))  # generated names
    admin.close()
    return database(template.host, template.port, name, template.user, template.password)


def wait_for_stats(db, schema, table, column, minimum, timeout=10.0):
    """Cumulative statistics are flushed by the backends asynchronously: wait until they show up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = db.scalar("SELECT COALESCE(%s, 0) FROM pg_stat_user_tables WHERE schemaname = %%s AND relname = %%s"
                          % column, (schema, table))
        if value >= minimum:
            return value
        time.sleep(0.2)
    raise AssertionError("%s.%s %s stayed below %s" % (schema, table, column, minimum))


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def migrated(make_database):
    return migrated_database(make_database, "assess")


# ------------------------------------------------------------------------------- tests
def test_volumes_sizes_and_baseline_file(migrated, tmp_path):
    before = datetime.datetime.now(datetime.timezone.utc)
    result = run_module("assess", migrated, tmp_path, backup_dir=str(tmp_path / "backups"),
                        baseline_path=str(tmp_path / "baselines") + "/")
    assert result["rc"] == 0, result.get("msg")
    assert result["verdict"] == "go", result["reasons"]
    doc = result["assessment"]
    assert sorted(doc["tables"]) == sorted(LEGACY_TABLES)
    for table in LEGACY_TABLES:
        rows, total, heap, indexes = migrated.query(
            "SELECT (SELECT count(*) FROM public.%s), pg_total_relation_size('public.%s'), "
            "pg_relation_size('public.%s'), pg_indexes_size('public.%s')" % ((table,) * 4))[0]
        vol = doc["tables"][table]
        assert (vol["rows"], vol["total_bytes"], vol["table_bytes"], vol["index_bytes"]) == (rows, total, heap, indexes)
    assert doc["totals"]["rows"] == sum(migrated.scalar("SELECT count(*) FROM public.%s" % t) for t in LEGACY_TABLES)
    assert doc["totals"]["tables"] == 25
    # the baseline file: timestamped name, timestamped content, the same document
    path = pathlib.Path(result["baseline_file"])
    assert path.parent == tmp_path / "baselines" and path.name.startswith("baseline-") and path.suffix == ".json"
    saved = json.loads(path.read_text())
    taken = datetime.datetime.fromisoformat(saved["taken_at"])
    assert before <= taken <= datetime.datetime.now(datetime.timezone.utc), "taken_at is the time of this run"
    assert path.name == "baseline-%s.json" % taken.strftime("%Y%m%dT%H%M%SZ")
    assert saved["tables"] == doc["tables"] and saved["verdict"] == "go"
    # the report part: the preflight as validation entries, the volumes as a section
    report = result["carbot_report"]
    assert {v["check"] for v in report["validation"]} == {"preflight: %s" % c for c in (
        "server_version", "extensions", "backup_disk", "long_transactions", "primary_keys", "role_settings")}
    assert sorted(report["assessment"]["tables"]) == sorted(LEGACY_TABLES)


def test_pg_stat_baseline_matches_pg_stat_user_tables(migrated, tmp_path):
    conn = migrated.connect()
    with conn.cursor() as cur:
        for _ in range(3):
            cur.execute("SELECT count(*) FROM public.reviews WHERE comment IS NOT NULL")  # sequential scans
        cur.execute("SELECT id FROM public.reviews ORDER BY id LIMIT 5")
        for (rid,) in cur.fetchall():
            cur.execute("SELECT rating FROM public.reviews WHERE id = %s", (rid,))    # index scans
    conn.close()  # a backend flushes its statistics when it exits
    wait_for_stats(migrated, "public", "reviews", "idx_scan", 5)
    # exact_counts=False: the module's own count(*) scans would be flushed (and counted) when it exits
    result = run_module("assess", migrated, tmp_path, backup_dir=str(tmp_path), exact_counts=False)
    stats = result["assessment"]["pg_stat_user_tables"]
    rows = migrated.query("SELECT relname, seq_scan, seq_tup_read, idx_scan, n_tup_ins, n_live_tup "
                          "FROM pg_stat_user_tables WHERE schemaname = 'public'")
    assert len(rows) == 25
    for relname, seq, seq_read, idx, ins, live in rows:
        if relname == "reviews":
            continue  # compared exactly below; other tables are not touched between the two reads
        got = stats[relname]
        assert (got["seq_scan"], got["seq_tup_read"], got["idx_scan"], got["n_tup_ins"], got["n_live_tup"]) == (
            seq, seq_read, idx, ins, live), relname
    reviews = stats["reviews"]
    assert reviews["seq_scan"] >= 3 and reviews["idx_scan"] >= 5
    expected = round(100.0 * reviews["idx_scan"] / (reviews["seq_scan"] + reviews["idx_scan"]), 1)
    assert reviews["index_usage_percent"] == expected
    totals = result["assessment"]["totals"]
    assert totals["seq_scan"] == sum(s["seq_scan"] for s in stats.values())
    assert totals["idx_scan"] == sum(s["idx_scan"] or 0 for s in stats.values())


def test_check_mode_writes_no_baseline(migrated, tmp_path):
    result = run_module("assess", migrated, tmp_path, check_mode=True, backup_dir=str(tmp_path),
                        baseline_path=str(tmp_path / "b.json"))
    assert result["rc"] == 0 and result["changed"] is False and result["baseline_file"] is None
    assert not (tmp_path / "b.json").exists()


def test_no_go_names_every_reason(legacy_db, tmp_path):
    """Every blocking check fails once, and the verdict names each reason."""
    role = "carbot_app_%s" % uuid.uuid4().hex[:8]
    legacy_db.query("CREATE TABLE public.no_pk_table (a int)")
    legacy_db.query('CREATE ROLE "%s"' % role)
    legacy_db.query('ALTER ROLE "%s" IN DATABASE "%s" SET search_path = public' % (role, legacy_db.dbname))
    legacy_db.query('ALTER ROLE "%s" SET work_mem = \'64MB\'' % role)
    holder = legacy_db.connect(autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT txid_current()")  # a transaction that stays open
        time.sleep(1.5)
        result = run_module("assess", legacy_db, tmp_path, backup_dir=str(tmp_path / "nowhere" / "deep"),
                            safety_factor=1e12, required_extensions=["no_such_extension"],
                            max_transaction_seconds=1, exact_counts=False)
    finally:
        holder.rollback()
        holder.close()
        legacy_db.query('DROP ROLE "%s"' % role)
    assert result["rc"] == 0 and result["verdict"] == "no-go"
    failed = {c["check"]: c for c in result["preflight"] if not c["ok"]}
    assert set(failed) == {"extensions", "backup_disk", "long_transactions", "primary_keys", "role_settings"}
    assert "no_such_extension: missing" in failed["extensions"]["message"]
    assert failed["backup_disk"]["details"]["checked_path"] == str(tmp_path)
    assert failed["primary_keys"]["details"]["tables_without_pk"] == ["no_pk_table"]
    assert "%s in %s: search_path=public" % (role, legacy_db.dbname) in failed["role_settings"]["message"]
    assert "work_mem" not in failed["role_settings"]["message"]  # listed, but not blocking
    assert any(s["name"] == "work_mem" for s in failed["role_settings"]["details"]["settings"])
    assert len(failed["long_transactions"]["details"]["transactions"]) == 1
    assert "query" not in failed["long_transactions"]["details"]["transactions"][0]
    assert len(result["reasons"]) == 5 and result["msg"].startswith("verdict no-go: ")
    # fail_on_nogo fails the task, with the same figures
    again = run_module("assess", legacy_db, tmp_path, backup_dir=str(tmp_path), fail_on_nogo=True,
                       exact_counts=False)
    assert again["failed"] is True and again["verdict"] == "no-go"
    assert [r.split(":")[0] for r in again["reasons"]] == ["primary_keys"]


def test_missing_extension_only_warns_when_recommended(legacy_db, tmp_path):
    result = run_module("assess", legacy_db, tmp_path, backup_dir=str(tmp_path), exact_counts=False,
                        recommended_extensions=["no_such_extension"])
    assert result["verdict"] == "go"
    assert result["warnings_found"] == ["extensions: recommended extensions unavailable: "
                                        "no_such_extension: missing (not available on the server)"]


def test_unreachable_database_fails_cleanly(tmp_path, legacy_db):
    bad = type(legacy_db)(legacy_db.host, legacy_db.port, "no_such_db_%s" % uuid.uuid4().hex[:6],
                          legacy_db.user, legacy_db.password)
    result = run_module("assess", bad, tmp_path, backup_dir=str(tmp_path))
    assert result["failed"] is True and result["msg"].startswith("Could not connect")
    assert legacy_db.password not in json.dumps(result)
    with pytest.raises(psycopg2.OperationalError):
        bad.connect()
