"""Copy conflict rules (docs/architecture.md): a row the sync already wrote is newer than the copy's snapshot.

The forward triggers are installed before the copy (as prepare.yml does), the app changes a few legacy rows, the
sync writes them into carbot_v2, and only then does the copy reach them: it must leave the sync's rows alone
(``ON CONFLICT DO NOTHING``: not one new row version) and count them as already present, not as copied.
"""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, validation
from test_sync import build_migrated, module_params

SYNCED = 5


@pytest.fixture
def synced_first(make_database):
    """Generated data + mapping + forward triggers, no copy yet; then the app updates SYNCED leads."""
    from ansible_collections.carbot.migration.plugins.module_utils import sync

    db = make_database("conflict")
    plan = build_migrated(db, install=False)
    sync.install(module_params(db), plan, sync.FORWARD)
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads") == 0
    ids = [r[0] for r in db.query(
        "SELECT _src_key FROM carbot_migration.map_leads WHERE _quarantine_reason IS NULL ORDER BY _src_key "
        "LIMIT %s", (SYNCED,))]
    # spread over the key range would be nicer, but the first keys are what the copy's first batch reaches
    db.query("UPDATE leads SET lead_score = 77, anliegen = 'vom Sync geschrieben' WHERE id = ANY(%s::uuid[])",
             ([str(i) for i in ids],))
    rows = dict(db.query("SELECT id::text, xmin::text FROM carbot_v2.leads"))
    assert sorted(rows) == sorted(str(i) for i in ids), "the sync wrote exactly the updated leads"
    return db, rows


def test_the_sync_rows_win_and_are_counted_as_already_present(synced_first):
    db, synced = synced_first
    migrating = db.scalar("SELECT count(*) FROM carbot_migration.map_leads WHERE _quarantine_reason IS NULL")
    quarantining = db.scalar("SELECT count(*) FROM carbot_migration.map_leads WHERE _quarantine_reason IS NOT NULL")
    assert migrating > 10 * SYNCED, "too few leads to tell copied from already present"

    parents = copy_engine.CopyEngine(module_params(db), selected=["organizations", "users", "workshops"]).run()
    assert parents["failed"] == [], parents
    result = copy_engine.CopyEngine(module_params(db), selected=["leads"], workers=1, batch_size=50,
                                    adaptive=False).run()
    assert result["failed"] == [], result
    leads = result["tables"]["leads"]
    counters = (leads["copied"], leads["already_present"], leads["quarantined"])
    assert counters == (migrating - SYNCED, SYNCED, quarantining), (
        "copied / already present / quarantined are %d/%d/%d, expected %d/%d/%d: the copy must not count (or "
        "write) the %d rows the sync wrote first" % (counters + (migrating - SYNCED, SYNCED, quarantining, SYNCED)))
    status = db.query("SELECT rows_copied, rows_quarantined FROM carbot_v2.migration_status "
                      "WHERE target_table = 'leads'")[0]
    assert status == (migrating - SYNCED, quarantining), status

    after = dict(db.query("SELECT id::text, xmin::text FROM carbot_v2.leads WHERE id = ANY(%s::uuid[])",
                          (list(synced),)))
    rewritten = sorted(k for k in synced if after.get(k) != synced[k])
    assert not rewritten, "the copy wrote over %d row(s) the sync had written: %s" % (len(rewritten), rewritten)
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads WHERE lead_score = 77 "
                     "AND description = 'vom Sync geschrieben'") == SYNCED
    conn = db.connect(autocommit=False)
    try:
        report = validation.Validator(conn, selected=["leads"]).run(checks=("counts", "checksums"))
    finally:
        conn.close()
    assert report["failed"] is False, report["msg"]
