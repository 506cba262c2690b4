"""carbot.migration.monitoring on a real PostgreSQL 15 with pg_stat_statements preloaded.

The old pg_stat_statements API (1.7: total_time/mean_time) is installed for real with
``CREATE EXTENSION ... VERSION '1.7'``, so both column sets are read from a live view.
"""

import pytest
from test_assess import run_module, wait_for_stats


@pytest.fixture
def db(make_database):
    return make_database("mon")


def test_absent_extension_is_a_clear_message_not_a_crash(db, tmp_path):
    result = run_module("monitoring", db, tmp_path)
    assert result["rc"] == 0 and result["changed"] is False
    stmts = result["statements"]
    assert stmts["available"] is False and stmts["preloaded"] is True
    assert stmts["message"] == ("pg_stat_statements is not installed in database %s: CREATE EXTENSION "
                                "pg_stat_statements (or create_extension=true)" % db.dbname)
    assert result["carbot_report"]["notes"] == ["Monitoring: %s" % stmts["message"]]


def test_check_mode_does_not_create_the_extension(db, tmp_path):
    result = run_module("monitoring", db, tmp_path, check_mode=True, create_extension=True)
    assert result["changed"] is True and "would CREATE EXTENSION" in result["statements"]["message"]
    assert db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'") == 0


def test_current_api_top_statements(db, tmp_path):
    result = run_module("monitoring", db, tmp_path, create_extension=True, sections=["statements"])
    assert result["changed"] is True
    db.query("CREATE TABLE busy (id int PRIMARY KEY, v text)")
    for i in range(7):
        db.query("INSERT INTO busy VALUES (%s, 'x')", (i,))
    result = run_module("monitoring", db, tmp_path, sections=["statements"], top=50)
    stmts = result["statements"]
    assert stmts["available"] is True and stmts["columns"] == {"total": "total_exec_time", "mean": "mean_exec_time"}
    assert stmts["extversion"] == db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
    insert = [r for r in stmts["rows"] if r["query"].startswith("INSERT INTO busy")]
    assert len(insert) == 1 and insert[0]["calls"] == 7
    assert insert[0]["query"] == "INSERT INTO busy VALUES ($1, $2)"  # normalised: no literal values
    calls = db.scalar("SELECT calls FROM pg_stat_statements WHERE query = 'INSERT INTO busy VALUES ($1, $2)' "
                      "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
    assert calls == 7
    totals = [r["total_ms"] for r in stmts["rows"]]
    assert totals == sorted(totals, reverse=True)
    assert result["carbot_report"]["monitoring: top statements"] == stmts["rows"]


def test_old_api_total_time_mean_time(db, tmp_path):
    """pg_stat_statements 1.7 (PostgreSQL 12 and older) has total_time/mean_time: read those."""
    db.query("CREATE EXTENSION pg_stat_statements VERSION '1.7'")
    db.query("SELECT 42")
    result = run_module("monitoring", db, tmp_path, sections=["statements"])
    stmts = result["statements"]
    assert stmts["available"] is True and stmts["extversion"] == "1.7"
    assert stmts["columns"] == {"total": "total_time", "mean": "mean_time"}
    assert stmts["rows"] and all(r["total_ms"] is not None for r in stmts["rows"])


def test_missing_index_report(db, tmp_path):
    db.query("CREATE SCHEMA app")
    db.query("CREATE TABLE app.scanned (id int PRIMARY KEY, workshop int)")
    db.query("CREATE TABLE app.indexed (id int PRIMARY KEY, workshop int)")
    db.query("INSERT INTO app.scanned SELECT g, g % 50 FROM generate_series(1, 20000) g")
    db.query("INSERT INTO app.indexed SELECT g, g % 50 FROM generate_series(1, 20000) g")
    conn = db.connect()
    with conn.cursor() as cur:
        for w in range(3):
            cur.execute("SELECT count(*) FROM app.scanned WHERE workshop = %s", (w,))
            cur.execute("SELECT count(*) FROM app.indexed WHERE id = %s", (w + 1,))
            cur.execute("SELECT count(*) FROM app.indexed WHERE id = %s", (w + 2,))
    conn.close()
    wait_for_stats(db, "app", "scanned", "seq_scan", 3)
    wait_for_stats(db, "app", "indexed", "idx_scan", 6)
    result = run_module("monitoring", db, tmp_path, sections=["missing_indexes"], schemas=["app"])
    found = result["missing_indexes"]
    assert [f["table"] for f in found] == ["scanned"]
    row = found[0]
    seq, idx, seq_read = db.query("SELECT seq_scan, COALESCE(idx_scan, 0), seq_tup_read FROM pg_stat_user_tables "
                                  "WHERE schemaname = 'app' AND relname = 'scanned'")[0]
    assert (row["seq_scan"], row["idx_scan"], row["seq_tup_read"]) == (seq, idx, seq_read)
    assert row["seq_tup_read"] >= 60000 and row["avg_rows_per_seq_scan"] == seq_read // seq
    assert row["indexes"] == ["app.scanned_pkey"]
    # below the threshold nothing is reported
    quiet = run_module("monitoring", db, tmp_path, sections=["missing_indexes"], schemas=["app"],
                       min_seq_tup_read=10 ** 9)
    assert quiet["missing_indexes"] == []
