"""The live-sync proof under load, at small scale: not a single write may be lost, either way.

Forward: pgbench drives the legacy tables at ~30 transactions/s (~60 writes/s: new leads and chat messages,
analytics events, lead status updates, customer edits, GDPR erasures, appointment cancellations, new
customers) while a reporting query keeps AccessShareLock on ``leads``; through it the triggers are
installed, the copy runs, the foreign keys are added and validation runs. After the load stops the
validation finds zero differences and every journaled write is in carbot_v2.

Reverse: the switch (reverse triggers), the app writes to carbot_v2, then the rollback (reverse triggers
removed): the legacy tables hold every one of those writes (validation clean, journal verified).
"""

import pathlib
import sys
import time

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, sync, validation

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "load"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import driver  # noqa: E402
from test_sync import build_migrated, module_params  # noqa: E402

RATE = 30  # transactions/s; the mix averages ~2 writes per transaction


def validate(db, checks=("counts", "checksums", "integrity")):
    conn = db.connect(autocommit=False)
    try:
        return validation.Validator(conn).run(checks=checks)
    finally:
        conn.close()


def verify(db, mode):
    conn = db.connect(autocommit=False)
    try:
        return driver.verify(conn, mode=mode)
    finally:
        conn.close()


@pytest.mark.slow
def test_no_write_is_lost_forward_and_after_a_rollback(make_database, tmp_path):
    db = make_database("syncload")
    plan = build_migrated(db, scale=0.005, install=False)
    params = module_params(db, lock_timeout_ms=300)
    kwargs = dict(db.params)

    started = time.monotonic()
    load = driver.LoadRun(kwargs, mode="legacy", rate=RATE, reader_table="leads", reader_hold=3.0,
                          log=str(tmp_path / "pgbench-legacy.log")).start()
    try:
        time.sleep(3)
        installed = sync.install(params, plan, sync.FORWARD, lock_timeout_ms=300, max_attempts=100)
        assert set(installed["tables"]) == set(mapping.LEGACY_TABLES)
        copied = copy_engine.CopyEngine(params, workers=2, batch_size=500).run()
        assert copied["failed"] == [] and copied["skipped"] == []
        conn = db.connect(autocommit=False)
        mapping.add_foreign_keys(conn, "carbot_v2")
        conn.commit()
        conn.close()
        validate(db, ("counts", "checksums"))  # under load: differences may be in flight, not asserted
        time.sleep(max(3.0, 16 - (time.monotonic() - started)))  # at least ~15 s of load in all
    finally:
        # whatever failed above, pgbench and the long reader stop here: never write into later tests
        summary = load.stop()
    assert summary["failed"] == 0 and not summary["errors"], summary
    assert summary["transactions"] >= 10 * RATE, summary
    assert summary["reader_holds"] >= 2 and summary["reader_error"] is None

    report = validate(db)
    assert report["failed"] is False, report["msg"]
    journal = verify(db, "legacy")
    assert journal["writes"] > 0 and journal["lost"] == [], journal["lost"][:20]

    # the switch: writes go to carbot_v2 and flow back to the legacy tables
    sync.install(params, plan, sync.REVERSE, lock_timeout_ms=300, max_attempts=100)
    v2 = driver.LoadRun(kwargs, mode="v2", rate=RATE, reader_table="leads", reader_hold=3.0, duration=12,
                        log=str(tmp_path / "pgbench-v2.log")).start()
    try:
        summary = v2.wait()
    finally:
        v2.stop()  # a no-op after wait(); stops pgbench and the reader when wait() was interrupted
    assert summary["failed"] == 0 and not summary["errors"], summary
    assert summary["transactions"] >= 5 * RATE, summary
    # the rollback: the reverse triggers go (legacy sequences move past carbot_v2's ids)
    removed = sync.remove(params, plan, sync.REVERSE, lock_timeout_ms=300, max_attempts=100)
    assert removed["sequences"]
    report = validate(db)
    assert report["failed"] is False, report["msg"]
    journal = verify(db, "v2")
    assert journal["writes"] > 0 and journal["lost"] == [], journal["lost"][:20]
    # a legacy insert after the rollback does not collide with an id carbot_v2 handed out
    next_id = db.scalar("SELECT nextval(pg_get_serial_sequence('public.analytics_events', 'id'))")
    assert next_id > db.scalar("SELECT max(id) FROM carbot_v2.analytics_events")

    sync.remove(params, plan, sync.FORWARD)
    assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'carbot_sync%%'") == 0
