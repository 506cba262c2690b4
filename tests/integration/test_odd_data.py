"""Data this team did not generate: infinite and extreme timestamps, dates and numbers, odd Unicode. The copy,
the validation and the live app's writes through the sync triggers all succeed; a row the sync cannot map is
quarantined with its reason instead of failing the app's write, and validation names it."""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, sync
from test_sync import build_migrated, module_params, validate

NTH = "(SELECT id FROM public.{t} ORDER BY id LIMIT 1 OFFSET {n})"
ODD = [
    "UPDATE public.vehicles SET created_at = 'infinity' WHERE id = " + NTH.format(t="vehicles", n=0),
    "UPDATE public.vehicles SET created_at = '-infinity', updated_at = 'infinity' WHERE id = "
    + NTH.format(t="vehicles", n=1),
    "UPDATE public.vehicles SET year = 2147483647, mileage_km = -2147483648 WHERE id = "
    + NTH.format(t="vehicles", n=2),
    "UPDATE public.customers SET created_at = 'infinity', updated_at = '-infinity', email = 'ａda@example.de', "
    "city = E'\\u200b\\u200b' WHERE id = " + NTH.format(t="customers", n=0),
    "UPDATE public.customers SET email = 'ﬁnn@exämple.de', name = E'Ｊａｎ\\u200b Müller' WHERE id = "
    + NTH.format(t="customers", n=1),
    "UPDATE public.leads SET \"timestamp\" = '-infinity', consent_at = 'infinity', created_at = 'infinity' "
    "WHERE id = " + NTH.format(t="leads", n=0),
    "UPDATE public.appointments SET appointment_date = 'infinity' WHERE id = " + NTH.format(t="appointments", n=0),
    "UPDATE public.appointments SET appointment_date = '5874897-12-31' WHERE id = " + NTH.format(t="appointments", n=1),
    "UPDATE public.appointments SET appointment_date = '-infinity' WHERE id = " + NTH.format(t="appointments", n=2),
    "UPDATE public.chat_messages SET created_at = 'infinity', message = E'\\u200b🚗\\u0301 ﬁ' "
    "WHERE id = (SELECT min(id) FROM public.chat_messages)",
    "UPDATE public.invoices SET issued_at = 'infinity', paid_at = '-infinity' WHERE id = "
    + NTH.format(t="invoices", n=0),
    "UPDATE public.users SET last_login_at = 'infinity', created_at = '-infinity', "
    "email = E'ＡＤＭＩＮ@Example.de\\u200b' WHERE id = " + NTH.format(t="users", n=0),
    "UPDATE public.workshops SET created_at = 'infinity', city = E'\\u200b' WHERE id = "
    + NTH.format(t="workshops", n=0),
    "UPDATE public.gdpr_requests SET requested_at = '-infinity', completed_at = 'infinity' WHERE id = "
    + NTH.format(t="gdpr_requests", n=0),
    "UPDATE public.services SET price_cents = 2147483647, duration_minutes = -2147483648 WHERE id = "
    + NTH.format(t="services", n=0),
]



@pytest.fixture(scope="module")
def odd(make_database):
    db = make_database("odd")
    plan = build_migrated(db, install=False)
    for statement in ODD:
        db.query(statement)
    sync.install(module_params(db), plan, sync.FORWARD)
    result = copy_engine.CopyEngine(module_params(db), workers=2).run()
    conn = db.connect(autocommit=False)
    mapping.add_foreign_keys(conn, "carbot_v2")
    conn.commit()
    conn.close()
    return db, plan, result


def test_the_copy_and_validation_take_infinite_extreme_and_odd_unicode_values(odd):
    db, _plan, result = odd
    assert result["failed"] == [], result
    report = validate(db)
    assert report["failed"] is False, report["msg"]
    customer = db.query("SELECT email, city FROM carbot_v2.customers WHERE id = " + NTH.format(t="customers", n=0))
    assert customer == [("ada@example.de", None)]  # NFKC; a city of zero-width spaces is blank
    assert db.scalar("SELECT email FROM carbot_v2.users WHERE id = " + NTH.format(t="users", n=0)) == "admin@example.de"
    # a date no timestamp can hold keeps its date and has no instant
    assert db.query("SELECT scheduled_date::text, scheduled_datetime FROM carbot_v2.appointments WHERE id = "
                    + NTH.format(t="appointments", n=1)) in ([("5874897-12-31", None)], [])


def test_the_old_app_writes_those_rows_and_the_triggers_keep_up(odd):
    db, _plan, _result = odd
    db.query("UPDATE public.vehicles SET mileage_km = 12345 WHERE id = " + NTH.format(t="vehicles", n=0))
    db.query("INSERT INTO public.vehicles (id, customer_id, workshop_id, make, year, created_at, updated_at) "
             "SELECT gen_random_uuid(), customer_id, workshop_id, 'VW', 2020, 'infinity', '-infinity' "
             "FROM public.vehicles WHERE id = " + NTH.format(t="vehicles", n=0))
    db.query("UPDATE public.appointments SET notes = 'odd' WHERE id = " + NTH.format(t="appointments", n=1))
    db.query("UPDATE public.customers SET email = E'ＺＥＲＯ\\u200d@example.de' WHERE id = "
             + NTH.format(t="customers", n=2))
    db.query("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
             "SELECT workshop_id, kunde_id, 'user', E'\\ufeff\\u202eevil', '-infinity' FROM public.chat_messages "
             "ORDER BY id LIMIT 1")
    report = validate(db)
    assert report["failed"] is False, report["msg"]
    assert db.scalar("SELECT email FROM carbot_v2.customers WHERE id = " + NTH.format(t="customers", n=2)) \
        == "zero@example.de"


def test_a_row_the_sync_cannot_map_is_quarantined_and_the_write_goes_through(odd):
    """A carbot_v2 rule the mapping does not know of (a CHECK added for this test) makes the sync's upsert fail:
    the app's write still commits, the row is quarantined with the database's reason, validation names the key,
    and once the value is fixed the row syncs and leaves the quarantine."""
    db, _plan, _result = odd
    db.query("ALTER TABLE carbot_v2.customers ADD CONSTRAINT odd_no_boom CHECK (phone IS DISTINCT FROM 'BOOM') "
             "NOT VALID")
    try:
        key = str(db.scalar("SELECT id FROM public.customers ORDER BY id LIMIT 1 OFFSET 5"))
        conn = db.connect()
        with conn.cursor() as cur:
            cur.execute("UPDATE public.customers SET phone = 'BOOM' WHERE id = %s", (key,))
        assert any("quarantined, the write goes through" in n for n in conn.notices), conn.notices
        conn.close()
        assert db.scalar("SELECT phone FROM public.customers WHERE id = %s", (key,)) == "BOOM"
        reason = db.scalar("SELECT reason FROM carbot_v2.migration_quarantine WHERE target_table = 'customers' "
                           "AND source_pk = %s", (key,))
        assert reason.startswith("sync failed: ") and "odd_no_boom" in reason, reason
        report = validate(db)
        assert report["failed"] is True and key in report["msg"] and "could not map" in report["msg"], report["msg"]
        db.query("UPDATE public.customers SET phone = '+49 30 1' WHERE id = %s", (key,))
        assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'customers' "
                         "AND source_pk = %s", (key,)) == 0
        assert validate(db)["failed"] is False
    finally:
        db.query("ALTER TABLE carbot_v2.customers DROP CONSTRAINT odd_no_boom")


def test_the_copy_names_the_row_it_cannot_map(make_database):
    db = make_database("unmappable")
    plan = build_migrated(db, install=False)
    key = str(db.scalar("SELECT id FROM public.services ORDER BY id LIMIT 1 OFFSET 3"))
    db.query("UPDATE public.services SET name = 'BOOM' WHERE id = %s", (key,))
    db.query("ALTER TABLE carbot_v2.services ADD CONSTRAINT odd_no_boom CHECK (name <> 'BOOM')")
    sync.install(module_params(db), plan, sync.FORWARD)
    result = copy_engine.CopyEngine(module_params(db), workers=1).run()
    assert "services" in result["failed"], result
    message = str(result["tables"]["services"])
    assert key in message and "odd_no_boom" in message and "A rerun fails the same way" in message, message


def test_a_multi_row_statement_with_one_row_the_sync_cannot_map_quarantines_only_that_row(odd):
    """consent_log is synced per statement, set-based: 50 rows in one INSERT, one of which breaks a carbot_v2 rule
    the mapping does not know (a CHECK added for this test). The statement's set-based step fails, the fallback
    syncs its rows one by one: 49 arrive, the one is quarantined with the reason; the app's INSERT commits."""
    db, _plan, _result = odd
    db.query("ALTER TABLE carbot_v2.consent_log ADD CONSTRAINT odd_no_boom CHECK (source IS DISTINCT FROM 'BOOM') "
             "NOT VALID")
    try:
        conn = db.connect()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO public.consent_log (workshop_id, kunde_id, consent_type, granted, source, "
                        "created_at) SELECT workshop_id, 'multi-' || g, consent_type, true, "
                        "CASE WHEN g = 17 THEN 'BOOM' ELSE 'bulk' END, now() "
                        "FROM (SELECT workshop_id, consent_type FROM public.consent_log c "
                        "WHERE EXISTS (SELECT 1 FROM carbot_v2.workshops w WHERE w.id = c.workshop_id) "
                        "ORDER BY id LIMIT 1) c, generate_series(1, 50) g RETURNING id, kunde_id")
            ids = dict((k, i) for i, k in cur.fetchall())
        conn.close()
        assert db.scalar("SELECT count(*) FROM carbot_v2.consent_log WHERE client_key LIKE 'multi-%%'") == 49
        reason = db.scalar("SELECT reason FROM carbot_v2.migration_quarantine WHERE target_table = 'consent_log' "
                           "AND source_pk = %s", (str(ids["multi-17"]),))
        assert reason.startswith("sync failed: ") and "odd_no_boom" in reason, reason
        db.query("UPDATE public.consent_log SET source = 'fixed' WHERE id = %s", (ids["multi-17"],))
        assert db.scalar("SELECT count(*) FROM carbot_v2.consent_log WHERE client_key LIKE 'multi-%%'") == 50
        assert validate(db)["failed"] is False
    finally:
        db.query("ALTER TABLE carbot_v2.consent_log DROP CONSTRAINT odd_no_boom")


def test_a_multi_row_update_of_a_table_with_children_with_one_row_the_sync_cannot_map(odd):
    """customers has children and is synced per statement (keyed): 20 rows in one UPDATE, one of which breaks a
    carbot_v2 rule the mapping does not know. The statement's step fails, the fallback syncs its rows one by one:
    19 change, the one is quarantined with the legacy row as the row trigger quarantined it; the app's UPDATE
    commits."""
    db, _plan, _result = odd
    db.query("ALTER TABLE carbot_v2.customers ADD CONSTRAINT odd_no_boom CHECK (phone IS DISTINCT FROM 'BOOM') "
             "NOT VALID")
    try:
        keys = [str(r[0]) for r in db.query(
            "SELECT c.id FROM public.customers c JOIN carbot_v2.customers t ON t.id = c.id ORDER BY c.id LIMIT 20")]
        assert len(keys) == 20
        conn = db.connect()
        with conn.cursor() as cur:
            cur.execute("UPDATE public.customers SET phone = CASE WHEN id = %s THEN 'BOOM' ELSE '+49 30 777' END "
                        "WHERE id = ANY(%s::uuid[])", (keys[7], keys))
        assert sum("quarantined, the write goes through" in n for n in conn.notices) == 1, conn.notices
        conn.close()
        assert db.scalar("SELECT count(*) FROM carbot_v2.customers WHERE id = ANY(%s::uuid[]) AND phone = '+49 30 777'",
                         (keys,)) == 19
        reason, row = db.query("SELECT reason, row_data FROM carbot_v2.migration_quarantine "
                               "WHERE target_table = 'customers' AND source_pk = %s", (keys[7],))[0]
        assert reason.startswith("sync failed: ") and "odd_no_boom" in reason, reason
        assert row["id"] == keys[7] and row["phone"] == "BOOM", row
        db.query("UPDATE public.customers SET phone = '+49 30 1' WHERE id = %s", (keys[7],))
        assert validate(db)["failed"] is False
    finally:
        db.query("ALTER TABLE carbot_v2.customers DROP CONSTRAINT odd_no_boom")
