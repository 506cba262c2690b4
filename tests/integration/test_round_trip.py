"""The round trip: the new app writes on carbot_v2 as a real new app does, a rollback brings every write back to the
legacy schema with the right legacy values, the old app writes again, the cutover again brings those to carbot_v2.

The new app is a login role with only the application's privileges and ``search_path = carbot_v2``: it writes
through unqualified names, inserts with default ids, fixes the bad legacy values the migration set aside
(``legacy_raw``), clears fields, and writes values outside the forward mapping's image. The expectations are
written out by hand per case (legacy values after the rollback), not derived from the mapping.
"""

import psycopg2
import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping, sync
from conftest import run_module_process
from test_sync import REPO, build_migrated, module_params, validate

APP_ROLE = "carbot_rt_app"
APP_PASSWORD = "round-trip-app"  # a throwaway role on the test cluster



def app_connect(db):
    conn = psycopg2.connect(host=db.host, port=db.port, dbname=db.dbname, user=APP_ROLE, password=APP_PASSWORD)
    conn.autocommit = True
    return conn


def app_exec(db, statement, args=None):
    conn = app_connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def switch(db, plan):
    """What the cutover does to the sync: the reverse direction installed (carbot_v2 is written from now on)."""
    sync.install(module_params(db), plan, sync.REVERSE, sql_dir=str(REPO / "sql"))


def switch_back(db, plan):
    """What rollback.yml does before the switch back: the completeness check, repaired from carbot_v2."""
    result = run_module_process("sync_check", dict(module_params(db), directions=["forward", "reverse"],
                                                   repair=True, repair_from="target"))
    assert result.get("ok") is True, result.get("msg", result)
    sync.remove(module_params(db), plan, sync.REVERSE)
    return result


@pytest.fixture(scope="module")
def cut_over(make_database):
    db = make_database("roundtrip")
    plan = build_migrated(db, scale=0.02)  # every kind of set-aside value occurs at this scale
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS %s" % APP_ROLE)  # constant name above, never input
        cur.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % APP_ROLE, (APP_PASSWORD,))
        cur.execute("GRANT USAGE ON SCHEMA carbot_v2 TO %s" % APP_ROLE)
        cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA carbot_v2 TO %s" % APP_ROLE)
        cur.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA carbot_v2 TO %s" % APP_ROLE)
        # in this database only: a role-level setting is cluster-wide and other tests' databases would see it
        cur.execute('ALTER ROLE %s IN DATABASE "%s" SET search_path TO carbot_v2' % (APP_ROLE, db.dbname))
    # the dirt every case needs, written by the old app before the switch (whatever the generator made)
    for statement in DIRT:
        db.query(statement)
    switch(db, plan)
    return db, plan


NTH = "(SELECT id FROM public.{t} ORDER BY id LIMIT 1 OFFSET {n})"
DIRT = [
    "UPDATE public.customers SET email = 'lisa@' WHERE id IN (%s, %s)" % (NTH.format(t="customers", n=10),
                                                                         NTH.format(t="customers", n=11)),
    "UPDATE public.customers SET postal_code = '1234' WHERE id = " + NTH.format(t="customers", n=12),
    "UPDATE public.customers SET name = 'van der Berg,  Jan ' WHERE id = " + NTH.format(t="customers", n=13),
    "UPDATE public.vehicles SET vin = 'garbage' WHERE id = " + NTH.format(t="vehicles", n=10),
    "UPDATE public.vehicles SET year = 0 WHERE id = " + NTH.format(t="vehicles", n=11),
    "UPDATE public.vehicles SET mileage_km = -5 WHERE id = " + NTH.format(t="vehicles", n=12),
    "UPDATE public.leads SET lead_score = 150 WHERE id = " + NTH.format(t="leads", n=10),
    "UPDATE public.leads SET email = 'kein' WHERE id = " + NTH.format(t="leads", n=11),
    "UPDATE public.services SET price_cents = -100 WHERE id = " + NTH.format(t="services", n=10),
    "UPDATE public.services SET duration_minutes = 0 WHERE id = " + NTH.format(t="services", n=11),
    "UPDATE public.appointments SET duration_minutes = -30 WHERE id = " + NTH.format(t="appointments", n=10),
    "UPDATE public.appointment_services SET price_cents = -1 WHERE (appointment_id, service_id) = "
    "(SELECT appointment_id, service_id FROM public.appointment_services ORDER BY 1, 2 LIMIT 1 OFFSET 10)",
    "UPDATE public.gdpr_requests SET requester_email = 'x@' WHERE id = " + NTH.format(t="gdpr_requests", n=1),
    # a later user with the first user's address in other case: the later one keeps it set aside
    "UPDATE public.users SET email = upper((SELECT email FROM public.users ORDER BY created_at, id LIMIT 1)), "
    "created_at = now() WHERE id = (SELECT id FROM public.users ORDER BY created_at DESC, id LIMIT 1)",
]


# One row per case: the table, how to pick the row (on carbot_v2, as the operator's test would), what the new
# app does (unqualified names: the app role resolves carbot_v2), and what the legacy row must say afterwards.
PICK_RAW = "SELECT id FROM carbot_v2.{t} WHERE legacy_raw ? %s ORDER BY id LIMIT 1 OFFSET {n}"
CASES = [
    # customers: set-aside email fixed, another one cleared, postal code fixed, a raw name re-split, values outside
    # the forward mapping's image (blanks around a city, an email without '@', a split the rule would not make)
    ("customers", PICK_RAW.format(t="customers", n=0), "email",
     "UPDATE customers SET email = 'fixed@example.de' WHERE id = %(id)s",
     "SELECT email FROM public.customers WHERE id = %(id)s", "fixed@example.de"),
    ("customers", PICK_RAW.format(t="customers", n=1), "email",
     "UPDATE customers SET email = NULL WHERE id = %(id)s",
     "SELECT email FROM public.customers WHERE id = %(id)s", None),
    ("customers", PICK_RAW.format(t="customers", n=0), "postal_code",
     "UPDATE customers SET postal_code = '04109' WHERE id = %(id)s",
     "SELECT postal_code FROM public.customers WHERE id = %(id)s", "04109"),
    ("customers", PICK_RAW.format(t="customers", n=0), "name",
     "UPDATE customers SET title = NULL, first_name = 'Hans', last_name = 'Peter Müller' WHERE id = %(id)s",
     "SELECT name FROM public.customers WHERE id = %(id)s", "Peter Müller, Hans"),
    ("customers", "SELECT id FROM carbot_v2.customers WHERE legacy_raw IS NULL ORDER BY id LIMIT 1 OFFSET 3", None,
     "UPDATE customers SET city = ' Leipzig ', email = 'kein-at' WHERE id = %(id)s",
     "SELECT city || '|' || email FROM public.customers WHERE id = %(id)s", " Leipzig |kein-at"),
    # vehicles
    ("customer_vehicles", PICK_RAW.format(t="customer_vehicles", n=0), "vin",
     "UPDATE customer_vehicles SET vin = 'WVWZZZ1JZXW000001' WHERE id = %(id)s",
     "SELECT vin FROM public.vehicles WHERE id = %(id)s", "WVWZZZ1JZXW000001"),
    ("customer_vehicles", PICK_RAW.format(t="customer_vehicles", n=0), "year",
     "UPDATE customer_vehicles SET year = 2019 WHERE id = %(id)s",
     "SELECT year FROM public.vehicles WHERE id = %(id)s", 2019),
    ("customer_vehicles", PICK_RAW.format(t="customer_vehicles", n=0), "mileage_km",
     "UPDATE customer_vehicles SET mileage_km = NULL WHERE id = %(id)s",
     "SELECT mileage_km FROM public.vehicles WHERE id = %(id)s", None),
    # leads: a fixed score and email, and the status rule (won goes back as converted)
    ("leads", PICK_RAW.format(t="leads", n=0), "lead_score",
     "UPDATE leads SET lead_score = 50 WHERE id = %(id)s",
     "SELECT lead_score FROM public.leads WHERE id = %(id)s", 50),
    ("leads", PICK_RAW.format(t="leads", n=0), "email",
     "UPDATE leads SET email = 'lead.fixed@example.de', status = 'won' WHERE id = %(id)s",
     "SELECT email || '|' || status FROM public.leads WHERE id = %(id)s", "lead.fixed@example.de|converted"),
    # services: price 0 is a price; duration fixed
    ("services", PICK_RAW.format(t="services", n=0), "price_cents",
     "UPDATE services SET price_cents = 0 WHERE id = %(id)s",
     "SELECT price_cents FROM public.services WHERE id = %(id)s", 0),
    ("services", PICK_RAW.format(t="services", n=0), "duration_minutes",
     "UPDATE services SET duration_minutes = 30 WHERE id = %(id)s",
     "SELECT duration_minutes FROM public.services WHERE id = %(id)s", 30),
    ("appointments", PICK_RAW.format(t="appointments", n=0), "duration_minutes",
     "UPDATE appointments SET duration_minutes = 45 WHERE id = %(id)s",
     "SELECT duration_minutes FROM public.appointments WHERE id = %(id)s", 45),
    ("appointment_services",
     "SELECT appointment_id FROM carbot_v2.appointment_services WHERE legacy_raw ? %s ORDER BY 1 LIMIT 1",
     "price_cents",
     "UPDATE appointment_services SET price_cents = 100 WHERE appointment_id = %(id)s AND legacy_raw ? 'price_cents'",
     "SELECT min(price_cents) FROM public.appointment_services WHERE appointment_id = %(id)s", 100),
    ("gdpr_requests", PICK_RAW.format(t="gdpr_requests", n=0), "requester_email",
     "UPDATE gdpr_requests SET requester_email = 'req.fixed@example.de' WHERE id = %(id)s",
     "SELECT requester_email FROM public.gdpr_requests WHERE id = %(id)s", "req.fixed@example.de"),
    # users: the case-duplicate of another user's address gets an address of its own
    ("users", PICK_RAW.format(t="users", n=0), "email_duplicate_of",
     "UPDATE users SET email = 'own.address@example.de' WHERE id = %(id)s",
     "SELECT email FROM public.users WHERE id = %(id)s", "own.address@example.de"),
]


def _pick(db, pick, raw_key):
    rows = db.query(pick, (raw_key,) if raw_key else None)
    assert rows, "the generated data has no row for %s (%s)" % (pick, raw_key)
    return str(rows[0][0])


@pytest.fixture(scope="module")
def round_trip(cut_over):
    """The whole round trip once; the tests below each check their part of it."""
    db, plan = cut_over
    out = {"cases": [], "inserted": {}, "deleted": {}, "workshop": None}
    for table, pick, raw_key, write, check, expected in CASES:
        key = _pick(db, pick, raw_key)
        app_exec(db, write, {"id": key})
        out["cases"].append((table, key, write, check, expected))
    # inserts with default ids (the app never names an id) and deletes, as the app role
    ws = db.scalar("SELECT workshop_id FROM carbot_v2.customers ORDER BY id LIMIT 1")
    out["inserted"]["customers"] = app_exec(
        db, "INSERT INTO customers (workshop_id, first_name, last_name, email, postal_code) "
            "VALUES (%s, 'Neu', 'Kundin', 'neu.kundin@example.de', '10115') RETURNING id", (ws,))[0][0]
    out["inserted"]["leads"] = app_exec(
        db, "INSERT INTO leads (workshop_id, client_key, name, email, status, source, lead_score) "
            "VALUES (%s, 'rt-client', 'Neu Lead', 'neu.lead@example.de', 'won', 'widget', 70) RETURNING id",
        (ws,))[0][0]
    out["inserted"]["chat_messages"] = app_exec(
        db, "INSERT INTO chat_messages (session_id, workshop_id, sender, message, created_at) "
            "SELECT id, workshop_id, 'bot', 'Neue App 🚗 Grüße', now() FROM chat_sessions ORDER BY id LIMIT 1 "
            "RETURNING id")[0][0]
    victim = db.scalar("SELECT id FROM carbot_v2.services WHERE legacy_raw IS NULL ORDER BY id DESC LIMIT 1")
    app_exec(db, "DELETE FROM services WHERE id = %s", (victim,))
    out["deleted"]["services"] = victim
    # an owner's new email: the workshop moves to the organization of that email
    wid = db.scalar("SELECT id FROM carbot_v2.workshops WHERE email IS NOT NULL ORDER BY id LIMIT 1")
    app_exec(db, "UPDATE workshops SET email = 'new.owner@example.de' WHERE id = %s", (wid,))
    out["workshop"] = wid
    out["after_writes"] = validate(db)
    out["switch_back"] = switch_back(db, plan)
    out["after_rollback"] = validate(db)
    # the old app writes again on the legacy schema, on the same rows
    for table, key, _w, _c, _e in out["cases"]:
        legacy = mapping.by_target(table)["source"]
        col = "appointment_id" if table == "appointment_services" else "id"
        db.query("UPDATE public.%s SET %s = %s WHERE %s = %%s" % (legacy, col, col, col), (key,))  # names above
    db.query("UPDATE public.customers SET email = 'old.app@example.de' WHERE id = %s", (out["inserted"]["customers"],))
    out["again"] = switch(db, plan) or validate(db)
    return db, out


def test_every_new_app_write_keeps_both_schemas_equal(round_trip):
    _db, out = round_trip
    assert out["after_writes"]["failed"] is False, out["after_writes"]["msg"]


@pytest.mark.parametrize("index", range(len(CASES)), ids=["%s-%s" % (c[0], c[2] or "outside-image") for c in CASES])
def test_the_rollback_brings_the_write_back_with_its_legacy_value(round_trip, index):
    db, out = round_trip
    _table, key, write, check, expected = out["cases"][index]
    assert db.scalar(check, {"id": key}) == expected, write


def test_a_cleared_value_does_not_come_back_and_set_aside_keys_follow(round_trip):
    db, out = round_trip
    cleared = [c for c in out["cases"] if "email = NULL" in c[2]][0]
    assert db.scalar("SELECT legacy_raw ? 'email' FROM carbot_v2.customers WHERE id = %s",
                     (cleared[1],)) in (None, False)
    fixed = [c for c in out["cases"] if "fixed@example.de'" in c[2] and c[0] == "customers"][0]
    assert db.scalar("SELECT legacy_raw FROM carbot_v2.customers WHERE id = %s", (fixed[1],)) is None or \
        "email" not in db.scalar("SELECT legacy_raw FROM carbot_v2.customers WHERE id = %s", (fixed[1],))


def test_inserts_with_default_ids_and_deletes_reach_the_legacy_schema(round_trip):
    db, out = round_trip
    ins = out["inserted"]
    assert db.scalar("SELECT name FROM public.customers WHERE id = %s", (ins["customers"],)) == "Neu Kundin"
    assert db.scalar("SELECT status FROM public.leads WHERE id = %s", (ins["leads"],)) == "converted"
    assert db.scalar("SELECT message FROM public.chat_messages WHERE id = %s",
                     (ins["chat_messages"],)) == "Neue App 🚗 Grüße"
    assert db.scalar("SELECT count(*) FROM public.services WHERE id = %s", (out["deleted"]["services"],)) == 0


def test_the_owner_email_moves_the_workshop_and_organizations_are_rederived(round_trip):
    db, out = round_trip
    org = db.scalar("SELECT organization_id FROM carbot_v2.workshops WHERE id = %s", (out["workshop"],))
    assert str(org) == str(mapping.organization_id("new.owner@example.de"))
    assert db.scalar("SELECT owner_email FROM public.workshops WHERE id = %s", (out["workshop"],)) == \
        "new.owner@example.de"
    assert db.scalar("SELECT email FROM carbot_v2.organizations WHERE id = %s", (org,)) == "new.owner@example.de"


def test_the_rollback_needed_no_repair_and_validation_is_clean_after_it(round_trip):
    _db, out = round_trip
    assert out["switch_back"]["repaired"] == {}, out["switch_back"]["repaired_summary"]
    assert out["after_rollback"]["failed"] is False, out["after_rollback"]["msg"]


def test_the_old_app_writes_again_and_the_cutover_again_is_clean(round_trip):
    db, out = round_trip
    assert out["again"]["failed"] is False, out["again"]["msg"]
    assert db.scalar("SELECT email FROM carbot_v2.customers WHERE id = %s",
                     (out["inserted"]["customers"],)) == "old.app@example.de"


def test_a_stale_row_is_repaired_from_carbot_v2_named_by_key_and_column(make_database):
    """A row changed behind the triggers' back on carbot_v2 (data) and one whose set-aside values were lost
    (metadata): the rollback's check names both keys and columns, repairs them from the right side, and passes."""
    db = make_database("stale")
    plan = build_migrated(db)
    switch(db, plan)
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # behind the triggers' back
        cur.execute("UPDATE carbot_v2.customers SET phone = '+49 30 4711' WHERE id = "
                    "(SELECT id FROM carbot_v2.customers ORDER BY id LIMIT 1) RETURNING id::text")
        data_key = cur.fetchone()[0]
        cur.execute("SELECT id::text, legacy_raw->>'vin' FROM carbot_v2.customer_vehicles WHERE legacy_raw ? 'vin' "
                    "ORDER BY id LIMIT 1")
        meta_key, raw_vin = cur.fetchone()
        cur.execute("UPDATE carbot_v2.customer_vehicles SET legacy_raw = NULL WHERE id = %s", (meta_key,))
    conn.close()
    found = run_module_process("sync_check", dict(module_params(db), directions=["forward", "reverse"]))
    assert found["ok"] is False
    assert "%s (phone: data)" % data_key in found["msg"]
    assert "%s (legacy_raw: migration metadata only)" % meta_key in found["msg"]
    result = switch_back(db, plan)
    summary = "\n".join(result["repaired_summary"])
    assert "customers %s: phone (data): legacy row written from carbot_v2" % data_key in summary
    assert "customer_vehicles %s: legacy_raw (migration metadata only): carbot_v2 row re-synced from legacy" \
        % meta_key in summary
    # carbot_v2 was the truth for the data, the legacy row for its own set-aside value
    assert db.scalar("SELECT phone FROM public.customers WHERE id = %s", (data_key,)) == "+49 30 4711"
    assert db.scalar("SELECT vin FROM public.vehicles WHERE id = %s", (meta_key,)) == raw_vin
    assert db.scalar("SELECT legacy_raw->>'vin' FROM carbot_v2.customer_vehicles WHERE id = %s", (meta_key,)) == raw_vin
    assert validate(db)["failed"] is False


def test_an_unrepairable_difference_stops_with_what_to_do(make_database):
    """A legacy row the reverse sync cannot write: carbot_v2's slug (set behind the triggers' back) is taken in the
    legacy schema by a workshop that is only there (quarantined). The repair is attempted and reported, the check
    still fails, names the key and the column, and says what the operator must do; the new app's writes meanwhile
    never failed (the reverse trigger reports the clash as a warning)."""
    db = make_database("unrepairable")
    plan = build_migrated(db)
    switch(db, plan)
    a, c = [r[0] for r in db.query("SELECT id::text FROM public.workshops ORDER BY id LIMIT 2")]
    db.query("UPDATE public.workshops SET business_type = 'bogus', slug = 'clash-slug' WHERE id = %s", (c,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'workshops' "
                     "AND source_pk = %s", (c,)) == 1
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("UPDATE carbot_v2.workshops SET slug = 'clash-slug' WHERE id = %s", (a,))
    conn.close()
    # the new app writes the row: its write goes through, the legacy row cannot take the slug
    app_conn = db.connect()
    with app_conn.cursor() as cur:
        cur.execute("UPDATE carbot_v2.workshops SET phone = '+49 341 1' WHERE id = %s", (a,))
        assert any("could not write the legacy row" in n for n in app_conn.notices), app_conn.notices
    app_conn.close()
    result = run_module_process("sync_check", dict(module_params(db), directions=["forward", "reverse"],
                                                   repair=True, repair_from="target"))
    assert result["ok"] is False, result["msg"]
    assert "%s (phone, slug: data)" % a in result["msg"], result["msg"]
    assert "workshops %s: phone, slug (data): legacy row written from carbot_v2" % a in result["repaired_summary"]
    assert "Differences remain after the repair" in result["msg"]


@pytest.mark.parametrize("side", ["new app on carbot_v2", "old app on legacy"])
def test_a_one_workshop_organization_hands_its_slug_to_the_new_owners_organization(make_database, side):
    """The owner email of a workshop that is alone in its organization changes: the new organization takes the
    slug the old one holds, in the same sync (the slug is unique at commit), and the old one goes."""
    db = make_database("slugmove")
    plan = build_migrated(db)
    switch(db, plan)
    wid, old_org, slug = db.query(
        "SELECT w.id, w.organization_id, o.slug FROM carbot_v2.workshops w JOIN carbot_v2.organizations o "
        "ON o.id = w.organization_id WHERE o.slug = w.slug AND (SELECT count(*) FROM carbot_v2.workshops x "
        "WHERE x.organization_id = w.organization_id) = 1 ORDER BY w.id LIMIT 1")[0]
    conn = db.connect()
    with conn.cursor() as cur:
        if side.startswith("new"):
            cur.execute("UPDATE carbot_v2.workshops SET email = 'moved.owner@example.de' WHERE id = %s", (wid,))
        else:
            cur.execute("UPDATE public.workshops SET owner_email = 'moved.owner@example.de' WHERE id = %s", (wid,))
        assert not any("could not" in n for n in conn.notices), conn.notices
    conn.close()
    new_org = str(mapping.organization_id("moved.owner@example.de"))
    assert str(db.scalar("SELECT organization_id FROM carbot_v2.workshops WHERE id = %s", (wid,))) == new_org
    assert db.scalar("SELECT slug FROM carbot_v2.organizations WHERE id = %s", (new_org,)) == slug
    assert db.scalar("SELECT count(*) FROM carbot_v2.organizations WHERE id = %s", (old_org,)) == 0
    assert validate(db)["failed"] is False
