"""The sync triggers against a real PostgreSQL and the real mapping: one kind of change per test.

Every test ends with the validation (counts + checksums of every table): whatever the change, carbot_v2
holds exactly what the mapping makes of the legacy tables.
"""

import pathlib
import threading
import uuid

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, sync, validation
from conftest import run_module_process

REPO = pathlib.Path(__file__).resolve().parents[2]


def module_params(db, **extra):
    return dict({"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
                 "login_password": db.password, "lock_timeout_ms": 3000}, **extra)


def build_migrated(db, scale=0.005, install=True, seed=42, load=None):
    """Legacy data, target schema and mapping, forward triggers, copy, foreign keys. ``load(conn)`` fills the legacy
    tables instead of the generator (at ``seed``, ``scale``); it may leave its transaction open."""
    from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    conn.commit()
    if load is None:
        legacy_data.generate(conn, (REPO / "sql" / "legacy" / "generate.sql").read_text(), seed, scale, "public")
    else:
        load(conn)
        conn.commit()
    mapping.apply_all(conn, str(REPO / "sql"))
    conn.commit()
    plan = sync.Plan(conn)
    conn.close()
    if install:
        sync.install(module_params(db), plan, sync.FORWARD)
        result = copy_engine.CopyEngine(module_params(db), workers=2).run()
        assert result["failed"] == [], result
        conn = db.connect(autocommit=False)
        mapping.add_foreign_keys(conn, "carbot_v2")
        conn.commit()
        conn.close()
    return plan


def cut_over(db, plan):
    """What the cutover does to the sync: the reverse direction installed, carbot_v2's id columns drawing from the
    legacy sequences (the sequences module), so that both sides can insert at once."""
    sync.install(module_params(db), plan, sync.REVERSE, sql_dir=str(REPO / "sql"))
    shared = run_module_process("sequences", {k: v for k, v in module_params(db).items() if k != "lock_timeout_ms"})
    assert shared.get("failed") is not True, shared


def validate(db):
    """Counts, checksums and integrity of every table: the report."""
    conn = db.connect(autocommit=False)
    try:
        return validation.Validator(conn).run(checks=("counts", "checksums", "integrity"))
    finally:
        conn.close()


def assert_valid(db):
    report = validate(db)
    assert report["failed"] is False, report["msg"]


@pytest.fixture(scope="module")
def migrated(make_database):
    db = make_database("sync")
    build_migrated(db)
    assert_valid(db)
    return db


def test_insert_update_delete_of_a_row(migrated):
    db = migrated
    ws = db.scalar("SELECT _src_key FROM carbot_migration.map_workshops WHERE _quarantine_reason IS NULL LIMIT 1")
    lead = str(uuid.uuid4())
    db.query("INSERT INTO leads (id, workshop_id, kunde_id, name, email, status, source, created_at) "
             "VALUES (%s, %s, 'k-1', 'Max', 'MAX@WEB.DE ', 'neu', 'widget', now())", (lead, ws))
    assert db.query("SELECT email, status::text FROM carbot_v2.leads WHERE id = %s", (lead,)) == [("max@web.de", "new")]
    db.query("UPDATE leads SET status = 'qualified', lead_score = 140 WHERE id = %s", (lead,))
    assert db.query("SELECT status::text, lead_score, legacy_raw->>'lead_score' FROM carbot_v2.leads WHERE id = %s",
                    (lead,)) == [("qualified", None, "140")]
    db.query("DELETE FROM leads WHERE id = %s", (lead,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads WHERE id = %s", (lead,)) == 0
    assert_valid(db)


def test_quarantine_and_back_moves_the_children(migrated):
    db = migrated
    lead = db.scalar("SELECT l.id FROM carbot_v2.leads l JOIN carbot_v2.lead_notes n ON n.lead_id = l.id LIMIT 1")
    notes = db.scalar("SELECT count(*) FROM carbot_v2.lead_notes WHERE lead_id = %s", (lead,))
    db.query("UPDATE leads SET status = 'vielleicht' WHERE id = %s", (lead,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads WHERE id = %s", (lead,)) == 0
    assert db.scalar("SELECT reason FROM carbot_v2.migration_quarantine WHERE target_table = 'leads' "
                     "AND source_pk = %s", (str(lead),)).startswith("unknown leads.status")
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'lead_notes' "
                     "AND row_data->>'lead_id' = %s AND reason = 'parent quarantined: lead_id'", (str(lead),)) == notes
    assert_valid(db)
    db.query("UPDATE leads SET status = 'contacted' WHERE id = %s", (lead,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.lead_notes WHERE lead_id = %s", (lead,)) == notes
    assert_valid(db)


def test_parent_delete_moves_children_to_quarantine(migrated):
    db = migrated
    ws = db.scalar("SELECT w.id FROM carbot_v2.workshops w JOIN carbot_v2.customers c ON c.workshop_id = w.id "
                   "GROUP BY w.id ORDER BY count(*) DESC LIMIT 1")
    customers = db.scalar("SELECT count(*) FROM carbot_v2.customers WHERE workshop_id = %s", (ws,))
    assert customers > 0
    db.query("DELETE FROM workshops WHERE id = %s", (ws,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.customers WHERE workshop_id = %s", (ws,)) == 0
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'customers' "
                     "AND row_data->>'workshop_id' = %s AND reason = 'orphan: workshop_id not found'",
                     (str(ws),)) == customers
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_sessions WHERE workshop_id = %s", (ws,)) == 0
    assert_valid(db)


def test_chat_sessions_and_organizations_are_rederived(migrated):
    db = migrated
    ws, w_email = db.query("SELECT id, owner_email FROM workshops w WHERE EXISTS (SELECT 1 FROM carbot_v2.workshops t "
                           "WHERE t.id = w.id) LIMIT 1")[0]
    db.query("INSERT INTO chat_messages (workshop_id, kunde_id, sender, message, created_at) "
             "VALUES (%s, 'neu-1', 'user', 'Hallo', '2025-01-01'), (%s, 'neu-1', 'bot', 'Hi', '2025-01-02')", (ws, ws))
    assert db.query("SELECT started_at::date::text, last_message_at::date::text FROM carbot_v2.chat_sessions "
                    "WHERE workshop_id = %s AND client_key = 'neu-1'", (ws,)) == [("2025-01-01", "2025-01-02")]
    db.query("DELETE FROM chat_messages WHERE workshop_id = %s AND kunde_id = 'neu-1' AND sender = 'bot'", (ws,))
    assert db.query("SELECT last_message_at::date::text FROM carbot_v2.chat_sessions "
                    "WHERE workshop_id = %s AND client_key = 'neu-1'", (ws,)) == [("2025-01-01",)]
    old_org = db.scalar("SELECT organization_id FROM carbot_v2.workshops WHERE id = %s", (ws,))
    db.query("UPDATE workshops SET owner_email = 'neuer.inhaber@example.de' WHERE id = %s", (ws,))
    new_org = db.scalar("SELECT organization_id FROM carbot_v2.workshops WHERE id = %s", (ws,))
    assert new_org != old_org
    org_email = db.scalar("SELECT email FROM carbot_v2.organizations WHERE id = %s", (new_org,))
    assert org_email == "neuer.inhaber@example.de"
    assert_valid(db)


def test_truncate_raises(migrated):
    import psycopg2
    with pytest.raises(psycopg2.errors.FeatureNotSupported, match="TRUNCATE") as raised:
        migrated.query("TRUNCATE analytics_events")
    assert raised.value.diag.message_hint == (
        "Delete the rows instead, or remove the sync triggers first (carbot.migration.sync_triggers "
        "state=absent), or SET carbot.sync_allow_truncate = on and resync.")


def test_install_under_an_idle_writer_retries_and_removal_is_idempotent(make_database):
    db = make_database("syncinst")
    plan = build_migrated(db, install=False)
    params = module_params(db)
    writer = db.connect(autocommit=False)
    with writer.cursor() as cur:
        cur.execute("UPDATE leads SET updated_at = updated_at WHERE id = (SELECT id FROM leads LIMIT 1)")
    # an idle-in-transaction writer that ends after 2.5 s (the functions and the tables before leads take up to ~1 s
    # of it on a loaded machine; the install must still have waited for leads for at least 1 s)
    timer = threading.Timer(2.5, writer.rollback)
    timer.start()
    result = sync.install(params, plan, sync.FORWARD, lock_timeout_ms=200, max_attempts=50)
    timer.join()
    writer.close()
    assert result["tables"]["leads"]["attempts"] > 1, result["tables"]["leads"]
    # it waited the writer out: every attempt before the one that installed ran into the writer's lock (not
    # another error), and the wait is reported
    leads = result["tables"]["leads"]
    assert len(leads["errors"]) == min(leads["attempts"] - 1, 3), leads  # the last 3 errors are kept
    assert all("LockNotAvailable" in error for error in leads["errors"]), leads["errors"]
    assert "waited_seconds" in leads
    assert result["tables"]["users"]["attempts"] == 1
    conn = db.connect()
    state = sync.status(conn)
    conn.close()
    assert all(rec["enabled"] for rec in state["forward"].values())
    # idempotent: a second install changes nothing, removal twice leaves nothing behind
    again = sync.install(params, plan, sync.FORWARD)
    assert not any(r["changed"] for r in again["tables"].values())
    first = sync.remove(params, plan, sync.FORWARD)
    assert all(r["changed"] for r in first["tables"].values()) and first["functions"]
    second = sync.remove(params, plan, sync.FORWARD)
    assert not any(r["changed"] for r in second["tables"].values()) and second["functions"] == []
    assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'carbot_sync%%'") == 0
    assert db.scalar("SELECT count(*) FROM pg_proc WHERE proname LIKE 'carbot_sync%%'") == 0


def test_reverse_install_waits_for_a_reader_of_its_views_under_lock_timeout(make_database):
    """A rerun of the cutover while the new app writes: every write reads the reverse projections through the
    reverse trigger, and replacing them needs ACCESS EXCLUSIVE. The install retries under lock_timeout instead of
    failing on the first timeout (it did: an online cutover's rerun stopped there) or queueing the app's writes."""
    db = make_database("syncviews")
    plan = build_migrated(db)
    cut_over(db, plan)
    reader = db.connect(autocommit=False)
    with reader.cursor() as cur:  # what a write of the new app holds while its reverse trigger runs
        cur.execute("SELECT count(*) FROM carbot_migration.rmap_leads")
    timer = threading.Timer(1.5, reader.rollback)
    timer.start()
    result = sync.install(module_params(db), plan, sync.REVERSE, lock_timeout_ms=200, max_attempts=50,
                          sql_dir=str(REPO / "sql"))
    timer.join()
    reader.close()
    views = result["views"]
    assert views["attempts"] > 1, views
    # it waited the reader out: every attempt before the one that replaced the views ran into its lock
    assert len(views["errors"]) == min(views["attempts"] - 1, 3), views  # the last 3 errors are kept
    assert all("LockNotAvailable" in error for error in views["errors"]), views["errors"]
    assert "waited_seconds" in views
    assert not any(rec["changed"] for rec in result["tables"].values())  # nothing else to do on a rerun


def run_sync_check(db, **args):
    """The sync_check module, run the way Ansible runs it (an arguments file); returns its JSON result."""
    params = dict(login_host=db.host, login_port=db.port, login_db=db.dbname, login_user=db.user,
                  login_password=db.password, ssl_mode="disable", **args)
    out = run_module_process("sync_check", params)
    assert "raw" not in out, out["raw"]
    return out


def test_sync_check_finds_and_repairs_what_the_triggers_missed(make_database):
    """carbot_v2 changed behind the sync's back (as a bug, a manual fix or a restore would): sync_check names
    the tables, and with repair=true re-syncs exactly the differing keys until validation is clean."""
    db = make_database("syncrepair")
    build_migrated(db)
    lead = db.scalar("SELECT id FROM carbot_v2.leads ORDER BY id LIMIT 1")
    customer = db.scalar("SELECT c.id FROM carbot_v2.customers c WHERE NOT EXISTS (SELECT 1 FROM "
                         "carbot_v2.customer_vehicles v WHERE v.customer_id = c.id) AND NOT EXISTS (SELECT 1 FROM "
                         "carbot_v2.appointments a WHERE a.customer_id = c.id) AND NOT EXISTS (SELECT 1 FROM "
                         "carbot_v2.reviews r WHERE r.customer_id = c.id) ORDER BY c.id LIMIT 1")
    assert customer is not None
    event = db.scalar("SELECT max(id) FROM carbot_v2.analytics_events")
    # the forward triggers sit on the legacy tables: writes to carbot_v2 itself are not synced anywhere
    before = db.query("SELECT status::text FROM carbot_v2.leads WHERE id = %s", (lead,))
    db.query("UPDATE carbot_v2.leads SET status = (CASE WHEN status = 'spam' THEN 'lost' ELSE 'spam' END)"
             "::carbot_v2.lead_status WHERE id = %s", (lead,))
    db.query("DELETE FROM carbot_v2.customers WHERE id = %s", (customer,))
    db.query("DELETE FROM carbot_v2.analytics_events WHERE id = %s", (event,))

    checks = ["counts", "checksums"]
    found = run_sync_check(db, checks=checks, fail_on_problem=False)
    assert found["ok"] is False and found["changed"] is False, found
    assert set(found["validation"]["failed_checks"]) == {"counts", "checksums"}, found["validation"]
    for table in ("leads", "customers", "analytics_events"):
        assert table in found["msg"], found["msg"]
    failing = run_sync_check(db, checks=checks)
    assert failing.get("failed") is True and "customers" in failing["msg"]

    repaired = run_sync_check(db, checks=checks, repair=True)
    assert repaired.get("failed") is not True and repaired["ok"] is True, repaired
    assert repaired["changed"] is True
    assert {t: [(i["key"], i["found"], i["columns"]) for i in items] for t, items in repaired["repaired"].items()} == {
        "leads": [(str(lead), "different", ["status"])], "customers": [(str(customer), "missing", [])],
        "analytics_events": [(str(event), "missing", [])]}, repaired["repaired"]
    assert "leads %s: status (data): carbot_v2 row re-synced from legacy" % lead in repaired["repaired_summary"]
    assert db.scalar("SELECT count(*) FROM carbot_v2.customers WHERE id = %s", (customer,)) == 1
    assert db.query("SELECT status::text FROM carbot_v2.leads WHERE id = %s", (lead,)) == before
    assert db.scalar("SELECT count(*) FROM carbot_v2.analytics_events WHERE id = %s", (event,)) == 1
    assert_valid(db)
    again = run_sync_check(db, checks=checks, repair=True)
    assert again["ok"] is True and again["changed"] is False and not any(again["repaired"].values()), again


def test_a_leaf_table_is_synced_per_statement_insert_update_quarantine_delete(migrated):
    """reviews is a leaf table (statement-level, set-based sync): one statement each inserts, quarantines (rating 0),
    brings back and deletes several rows; carbot_v2 and the quarantine follow every statement."""
    db = migrated
    assert "reviews" in sync.statement_tables(mapping.TABLES, mapping.LEGACY_TABLES)
    assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.reviews'::regclass "
                     "AND tgname = 'carbot_sync_fwd' AND (tgtype & 1) = 0") == 1  # a statement trigger
    ws = db.scalar("SELECT workshop_id FROM carbot_v2.customers ORDER BY id LIMIT 1")
    ids = [r[0] for r in db.query(
        "INSERT INTO public.reviews (id, workshop_id, rating, comment, source, created_at) "
        "SELECT gen_random_uuid(), %s, 4, 'stmt ' || g, 'carbot', now() FROM generate_series(1, 5) g RETURNING id",
        (ws,))]

    def in_target():
        return db.scalar("SELECT count(*) FROM carbot_v2.reviews WHERE id = ANY(%s::uuid[])", ([str(i) for i in ids],))

    def quarantined():
        return db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'reviews' "
                         "AND source_pk = ANY(%s)", ([str(i) for i in ids],))

    assert (in_target(), quarantined()) == (5, 0)
    db.query("UPDATE public.reviews SET rating = 0 WHERE id = ANY(%s::uuid[])", ([str(i) for i in ids[:3]],))
    assert (in_target(), quarantined()) == (2, 3)
    db.query("UPDATE public.reviews SET rating = 5 WHERE id = ANY(%s::uuid[])", ([str(i) for i in ids],))
    assert (in_target(), quarantined()) == (5, 0)
    assert db.scalar("SELECT min(rating) FROM carbot_v2.reviews WHERE id = ANY(%s::uuid[])",
                     ([str(i) for i in ids],)) == 5
    db.query("UPDATE public.reviews SET rating = 0 WHERE id = %s", (ids[0],))
    db.query("DELETE FROM public.reviews WHERE id = ANY(%s::uuid[])", ([str(i) for i in ids],))
    assert (in_target(), quarantined()) == (0, 0)
    assert_valid(db)


def test_a_table_with_children_is_synced_per_statement_staying_leaving_entering(migrated):
    """leads has children (lead_notes, chat messages, appointments): statement-level, keyed (the per-key function
    for what enters or leaves, set-based for rows that stay). One UPDATE changes three leads that stay in carbot_v2
    and quarantines two (their notes follow into the quarantine); the next brings the two back with their notes and
    changes the three again; one DELETE removes all five and quarantines the notes."""
    db = migrated
    assert "leads" in sync.statement_tables(mapping.TABLES, mapping.LEGACY_TABLES)
    assert "leads" in sync.keyed_statement_tables(mapping.TABLES, mapping.LEGACY_TABLES)
    assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.leads'::regclass AND tgname IN "
                     "('carbot_sync_fwd', 'carbot_sync_fwd_upd', 'carbot_sync_fwd_del') AND (tgtype & 1) = 0") == 3
    ids = [str(r[0]) for r in db.query(
        "SELECT l.id FROM carbot_v2.leads l WHERE EXISTS (SELECT 1 FROM carbot_v2.lead_notes n WHERE n.lead_id = l.id) "
        "ORDER BY l.id LIMIT 5")]
    assert len(ids) == 5
    two, three = ids[:2], ids[2:]
    notes = db.scalar("SELECT count(*) FROM carbot_v2.lead_notes WHERE lead_id = ANY(%s::uuid[])", (two,))
    db.query("UPDATE leads SET status = CASE WHEN id = ANY(%s::uuid[]) THEN 'vielleicht' ELSE 'contacted' END, "
             "telefon = '+49 30 555' WHERE id = ANY(%s::uuid[])", (two, ids))
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads WHERE id = ANY(%s::uuid[])", (ids,)) == 3
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads WHERE id = ANY(%s::uuid[]) AND status::text = 'contacted'",
                     (three,)) == 3
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'leads' "
                     "AND source_pk = ANY(%s)", (two,)) == 2
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'lead_notes' "
                     "AND row_data->>'lead_id' = ANY(%s) AND reason = 'parent quarantined: lead_id'", (two,)) == notes
    assert_valid(db)
    db.query("UPDATE leads SET status = 'qualified' WHERE id = ANY(%s::uuid[])", (ids,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads WHERE id = ANY(%s::uuid[]) AND status::text = 'qualified'",
                     (ids,)) == 5
    assert db.scalar("SELECT count(*) FROM carbot_v2.lead_notes WHERE lead_id = ANY(%s::uuid[])", (two,)) == notes
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table IN ('leads', "
                     "'lead_notes') AND (source_pk = ANY(%s) OR row_data->>'lead_id' = ANY(%s))", (ids, ids)) == 0
    assert_valid(db)
    all_notes = db.scalar("SELECT count(*) FROM carbot_v2.lead_notes WHERE lead_id = ANY(%s::uuid[])", (ids,))
    db.query("DELETE FROM leads WHERE id = ANY(%s::uuid[])", (ids,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.leads WHERE id = ANY(%s::uuid[])", (ids,)) == 0
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'lead_notes' "
                     "AND row_data->>'lead_id' = ANY(%s)", (ids,)) == all_notes
    assert_valid(db)
