"""The migration on data this project's generator did not make: bench/tenant_data.sql (issue 14's tenant mix, written
apart from sql/legacy/generate.sql, with its own dirt: fullwidth, combining and zero-width characters, infinite
timestamps, chat histories stored four ways, case and blank variants of every closed set), at a small fraction.

The copy, the full validation and the app's writes through the sync triggers succeed on it, and every legacy row is
accounted for, counted from the legacy tables directly (not through the mapping): in carbot_v2 or in the quarantine.
"""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import validation
from conftest import REPO
from test_sync import build_migrated

FRACTION = "0.002"  # 300 workshops, 1,200 customers and leads, 4,000 chat messages, 600 appointments
TABLES = {"users": "users", "workshops": "workshops", "customers": "customers", "leads": "leads",
          "chat_messages": "chat_messages", "appointments": "appointments"}


def load_tenant_mix(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('search_path', 'public', false), "
                    "set_config('carbot.tenant_fraction', %s, false)", (FRACTION,))
        cur.execute((REPO / "bench" / "tenant_data.sql").read_text())
        cur.execute("SET search_path TO DEFAULT")


@pytest.fixture(scope="module")
def tenant(make_database):
    """The tenant mix migrated: forward sync, copy (build_migrated asserts that no table failed), foreign keys."""
    db = make_database("tenant_mix")
    build_migrated(db, load=load_tenant_mix)
    return db


def full_validation(db):
    conn = db.connect(autocommit=False)
    try:
        return validation.Validator(conn).run()
    finally:
        conn.close()


def test_the_dataset_is_the_mix_it_claims(tenant):
    db = tenant
    counts = {t: db.query("SELECT count(*) FROM public.%s" % t)[0][0] for t in TABLES}
    assert counts == {"users": 300, "workshops": 300, "customers": 1200, "leads": 1200, "chat_messages": 4000,
                      "appointments": 600}
    # the dirt it is there for
    assert db.query("SELECT count(*) FROM public.customers WHERE name ~ '[Ａ-ｚ]'")[0][0] > 0
    assert db.query("SELECT count(*) FROM public.customers WHERE strpos(name, chr(8203)) > 0")[0][0] > 0
    assert db.query("SELECT count(*) FROM public.leads WHERE jsonb_typeof(chatverlauf) = 'string'")[0][0] > 0
    assert db.query("SELECT count(*) FROM public.chat_messages WHERE created_at = 'infinity'")[0][0] > 0


def test_the_full_validation_passes(tenant):
    db = tenant
    report = full_validation(db)
    assert report["failed"] is False, report["msg"]


def test_every_legacy_row_is_in_carbot_v2_or_quarantined(tenant):
    """Counted from the legacy tables and the target, not from the views: nothing dropped, nothing invented."""
    db = tenant
    for legacy, target in TABLES.items():
        src = db.query("SELECT count(*) FROM public.%s" % legacy)[0][0]
        kept = db.query("SELECT count(*) FROM carbot_v2.%s" % target)[0][0]
        quarantined = db.query("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = %s",
                               (target,))[0][0]
        assert kept + quarantined == src, (legacy, src, kept, quarantined)
    # one session per conversation that has a migrated message, from the legacy messages directly
    conversations = db.query(
        "SELECT count(DISTINCT (m.workshop_id, m.kunde_id)) FROM public.chat_messages m "
        "WHERE m.workshop_id IS NOT NULL AND m.kunde_id IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM carbot_v2.workshops w WHERE w.id = m.workshop_id)")[0][0]
    assert db.query("SELECT count(*) FROM carbot_v2.chat_sessions")[0][0] == conversations


def test_app_writes_on_this_data_go_through_the_sync(tenant):
    db = tenant
    key = db.query("SELECT id FROM public.customers WHERE strpos(name, chr(8203)) > 0 ORDER BY id LIMIT 1")[0][0]
    db.query("UPDATE public.customers SET name = %s, email = %s, updated_at = 'infinity' WHERE id = %s",
             ("Ｊｏｓé" + chr(769) + " de la Cruz", " NEU@Example.DE ", key))
    conv = db.query("SELECT workshop_id, kunde_id FROM public.chat_messages ORDER BY id LIMIT 1")[0]
    db.query("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
             "VALUES (%s, %s, ' BOT', 'مرحبا 👋', now()), (%s, %s, 'user', '', '-infinity')",
             (conv[0], conv[1], conv[0], conv[1]))
    db.query("DELETE FROM public.leads WHERE id = (SELECT id FROM public.leads ORDER BY id LIMIT 1)")
    assert db.query("SELECT email FROM carbot_v2.customers WHERE id = %s", (key,))[0][0] == "neu@example.de"
    report = full_validation(db)
    assert report["failed"] is False, report["msg"]
