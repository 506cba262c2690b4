"""carbot_v2 + the mapping on a real database with hand-made dirty legacy rows.

Checks the contract of docs/architecture.md for every entry of mapping.TABLES: view columns =
target insertable columns (names and types), every legacy row exactly once in its view, the
migrated rows insert in dependency order with every foreign key satisfied, and
legacy rows = migrated + quarantined. Then the rules on the dirty rows themselves.
"""


import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping
from conftest import REPO, run_module_process
from psycopg2 import sql

T, M = "carbot_v2", "carbot_migration"


def U(n):
    """A readable fixed uuid: U(1) = 00000000-0000-0000-0000-000000000001."""
    return "00000000-0000-0000-0000-%012d" % n


MISSING = U(999999)  # a parent that does not exist

# users
U_MAX, U_DUP, U_ROLE, U_ANNA = U(1), U(2), U(3), U(4)
# workshops
W_BER, W_HAM, W_SOLO, W_FALLBACK, W_BAD, W_TAKEN_V2, W_TAKEN = U(11), U(12), U(13), U(14), U(15), U(16), U(17)
# customers
C_ANNA, C_JAN, C_ORPHAN, C_EMPTY, C_NULL = U(21), U(22), U(23), U(24), U(25)
# leads
L_NEU, L_NULL, L_LOST, L_BOGUS, L_ORPHAN, L_SPAM = U(31), U(32), U(33), U(34), U(35), U(36)

DIRTY_ROWS = """
INSERT INTO users (id, email, full_name, role, password_hash, created_at) VALUES
  ('{U_MAX}', 'Max@Web.de', 'Max Meister', 'owner', '$2b$12$secrethash', '2020-01-01'),
  ('{U_DUP}', 'max@web.de', 'Max again', 'owner', '$2b$12$other', '2021-01-01'),
  ('{U_ROLE}', 'root@carbot.example', 'Root', 'superuser', 'x', '2020-01-01'),
  ('{U_ANNA}', 'kein', 'Anna', 'staff', 'y', '2020-01-01');

INSERT INTO workshops (id, owner_id, name, slug, owner_email, city, postal_code, business_type, is_active,
                       created_at) VALUES
  ('{W_BER}', '{U_MAX}', 'Meister Berlin', 'meister-berlin-v2', 'Max@Web.de', 'Berlin', ' 10115',
   'Freie Werkstatt', true, '2019-01-01'),
  ('{W_HAM}', '{U_MAX}', 'Meister Hamburg', 'meister-hamburg', ' max@web.de ', ' Hamburg ', '1234',
   'independent', true, '2020-01-01'),
  ('{W_SOLO}', NULL, 'Solo', 'solo', NULL, 'Köln', '50667', NULL, true, '2020-01-01'),
  ('{W_FALLBACK}', '{U_MAX}', 'Meister München', 'meister-muenchen', 'kein', 'München', '80331', 'franchise',
   true, '2021-01-01'),
  ('{W_BAD}', '{MISSING}', 'Kette', 'kette', 'kette@example.com', 'Bonn', '53111', 'Kette', true, '2020-01-01'),
  ('{W_TAKEN_V2}', NULL, 'Taken 2', 'taken-v2', 'a@b.de', 'Ulm', '89073', 'specialist', true, '2020-01-01'),
  ('{W_TAKEN}', NULL, 'Taken', 'taken', 'c@d.de', 'Ulm', '89073', 'dealership', true, '2020-01-01');

INSERT INTO team_members (id, workshop_id, user_id, role) VALUES
  ('{U_101}', '{W_BER}', '{U_MAX}', 'owner'),
  ('{U_102}', '{W_BER}', '{MISSING}', 'mechanic'),
  ('{U_103}', '{W_BAD}', '{U_MAX}', 'owner'),
  ('{U_104}', '{W_BER}', '{U_ANNA}', 'Reception');

INSERT INTO customers (id, workshop_id, name, email, postal_code, active, marketing_consent) VALUES
  ('{C_ANNA}', '{W_BER}', 'Dr. Anna-Lena von Berg', 'MAX@WEB.DE ', '10115', true, NULL),
  ('{C_JAN}', '{W_BER}', 'van der Berg, Jan', 'max@', '1234', true, true),
  ('{C_ORPHAN}', '{MISSING}', 'Max Mustermann', NULL, NULL, true, false),
  ('{C_EMPTY}', '{W_HAM}', '', 'kein', NULL, false, NULL),
  ('{C_NULL}', '{W_HAM}', NULL, NULL, NULL, NULL, NULL);

INSERT INTO vehicles (id, customer_id, workshop_id, make, year, license_plate, vin, mileage_km, created_at) VALUES
  ('{U_201}', '{C_ANNA}', '{W_BER}', 'VW', 0, 'b ab1234', 'garbage', -5, '2024-05-01'),
  ('{U_202}', '{C_ORPHAN}', '{W_BER}', 'BMW', 2031, 'M-X 1', 'WVWZZZ1JZ3W386752', 10, '2024-05-01'),
  ('{U_203}', '{MISSING}', '{W_BER}', 'Audi', 2019, NULL, NULL, NULL, '2024-05-01'),
  ('{U_204}', '{C_JAN}', '{W_BER}', 'Opel', 2025, 'BAB1234', 'wvwzzz1jz3w386752', 120000, '2024-05-01');

INSERT INTO leads (id, workshop_id, kunde_id, name, email, status, priority, lead_score, chatverlauf, source,
                   consent_given, consent_at, "timestamp") VALUES
  ('{L_NEU}', '{W_BER}', 'k1', 'Max', 'MAX@WEB.DE', 'neu', 'high', 140,
   '"[{{\\"role\\": \\"user\\", \\"content\\": \\"Hallo\\"}}]"', 'widget', NULL, NULL, '2024-05-01'),
  ('{L_NULL}', '{W_BER}', 'k2', NULL, 'max@', NULL, NULL, -3, '{{"role": "bot", "content": "Hi"}}', 'whatsapp',
   true, '2024-05-01', '2024-05-01'),
  ('{L_LOST}', '{W_HAM}', 'k3', NULL, NULL, 'lost', 'low', 50, '[]', 'email', false, NULL, '2024-05-02'),
  ('{L_BOGUS}', '{W_HAM}', 'k4', NULL, NULL, 'bogus', NULL, 10, NULL, 'phone', NULL, NULL, '2024-05-02'),
  ('{L_ORPHAN}', '{MISSING}', 'k5', NULL, NULL, 'new', NULL, 10, NULL, 'widget', NULL, NULL, '2024-05-02'),
  ('{L_SPAM}', '{W_HAM}', 'k6', NULL, NULL, 'spam', 'urgent', 100, NULL, 'widget', NULL, NULL, '2024-05-02');

INSERT INTO lead_notes (id, lead_id, user_id, note) VALUES
  ('{U_301}', '{L_NEU}', '{MISSING}', 'called back'),
  ('{U_302}', '{L_BOGUS}', '{U_MAX}', 'note on a quarantined lead'),
  ('{U_303}', '{L_LOST}', '{U_MAX}', 'lost to competitor');

INSERT INTO chat_messages (id, workshop_id, kunde_id, lead_id, sender, message, created_at) VALUES
  (1, '{W_BER}', 'k1', '{L_NEU}', 'user', 'Hallo 👋', '2024-05-01 10:00'),
  (2, '{W_BER}', 'k1', NULL, 'bot', 'Wie kann ich helfen?', '2024-05-01 10:01'),
  (3, '{W_BER}', 'k2', '{MISSING}', 'user', 'Termin?', '2024-05-01 11:00'),
  (4, '{MISSING}', 'k1', NULL, 'user', 'orphan', '2024-05-01 12:00'),
  (5, '{W_BER}', NULL, NULL, 'user', 'no conversation', '2024-05-01 12:00'),
  (6, '{W_HAM}', 'k1', NULL, 'robot', 'unknown sender', '2024-05-01 12:00');

INSERT INTO analytics_events (id, workshop_id, event_type, kunde_id, ip_address, created_at) VALUES
  (1, '{W_BER}', 'widget_open', 'k1', '192.0.2.1', '2024-05-01'),
  (2, '{MISSING}', 'page_view', 'k9', NULL, '2024-05-01');

INSERT INTO services (id, workshop_id, name, price_cents, duration_minutes) VALUES
  ('{U_401}', '{W_BER}', 'Ölwechsel', 8900, 60),
  ('{U_402}', '{W_BER}', NULL, 100, 10),
  ('{U_403}', '{W_BER}', 'Gratis-Check', -1, 0);

INSERT INTO appointments (id, workshop_id, customer_id, vehicle_id, lead_id, appointment_date, appointment_time,
                          duration_minutes, status) VALUES
  ('{U_501}', '{W_BER}', '{C_ANNA}', '{U_201}', '{L_NEU}', '2024-03-31', '02:30', 60, 'scheduled'),
  ('{U_502}', '{W_BER}', '{MISSING}', '{U_202}', '{L_BOGUS}', '2024-10-27', '02:30', 30, 'completed'),
  ('{U_503}', '{W_BER}', NULL, NULL, NULL, '2024-07-01', '10:00', 30, 'weird'),
  ('{U_504}', '{W_HAM}', '{C_NULL}', NULL, NULL, '2024-07-01', NULL, NULL, 'no_show');

INSERT INTO appointment_services (appointment_id, service_id, price_cents) VALUES
  ('{U_501}', '{U_401}', 8900),
  ('{U_501}', '{U_402}', 100),
  ('{U_503}', '{U_401}', 8900),
  ('{U_502}', '{U_403}', -1);

INSERT INTO workshop_closures (id, workshop_id, closed_on, reason) VALUES
  ('{U_601}', '{W_BER}', '2024-12-24', 'Weihnachten'),
  ('{U_602}', '{W_BAD}', '2024-12-24', NULL);

INSERT INTO reviews (id, workshop_id, customer_id, rating, source) VALUES
  ('{U_701}', '{W_BER}', '{C_ANNA}', 5, 'google'),
  ('{U_702}', '{W_BER}', NULL, 0, 'carbot'),
  ('{U_703}', '{W_BER}', '{C_ORPHAN}', 6, 'email'),
  ('{U_704}', '{W_BER}', '{C_ORPHAN}', 3, 'email');

INSERT INTO subscriptions (id, workshop_id, plan, status, stripe_subscription_id) VALUES
  ('{U_801}', '{W_BER}', 'professional', 'active', 'sub_1'),
  ('{U_802}', '{MISSING}', 'starter', 'canceled', 'sub_2');

INSERT INTO invoices (id, workshop_id, subscription_id, stripe_invoice_id, amount_cents, currency, status) VALUES
  ('{U_811}', '{W_BER}', '{U_801}', 'in_1', 4900, 'eur', 'paid'),
  ('{U_812}', '{W_BER}', '{U_802}', 'in_2', 4900, 'EUR', 'open'),
  ('{U_813}', '{W_BER}', NULL, 'in_3', 4900, 'euro', 'open');

INSERT INTO chatbot_settings (workshop_id, language, auto_reply) VALUES
  ('{W_BER}', 'de', true), ('{W_HAM}', NULL, false), ('{MISSING}', 'en', true);

INSERT INTO faq_entries (id, workshop_id, question, answer, is_active) VALUES
  ('{U_901}', '{W_BER}', 'Öffnungszeiten?', 'Mo-Fr', true);
INSERT INTO email_templates (id, workshop_id, template_key, subject, body_html) VALUES
  ('{U_902}', '{W_BER}', 'reminder', 'Erinnerung', '<p>Hallo</p>');
INSERT INTO notifications (id, workshop_id, user_id, type, title) VALUES
  ('{U_903}', '{W_BER}', '{MISSING}', 'lead', 'Neuer Lead'),
  ('{U_904}', '{W_BER}', '{U_DUP}', 'lead', 'Neuer Lead');
INSERT INTO api_keys (id, workshop_id, name, key_hash) VALUES ('{U_905}', '{W_BER}', 'crm', 'hash-secret');
INSERT INTO webhooks (id, workshop_id, url, events, secret) VALUES
  ('{U_906}', '{W_BER}', 'https://example.com/hook', '{{lead_created}}', 'whsec');

INSERT INTO audit_logs (id, workshop_id, user_id, action, entity_type) VALUES
  (1, '{MISSING}', '{MISSING}', 'delete', 'workshop');
INSERT INTO gdpr_requests (id, workshop_id, requester_email, request_type, status) VALUES
  ('{U_951}', NULL, ' MAX@WEB.DE', 'erasure', 'done'),
  ('{U_952}', '{W_BER}', 'max@', 'access', 'open');
INSERT INTO consent_log (id, workshop_id, kunde_id, consent_type, granted) VALUES
  (1, '{W_BER}', 'k1', 'chat_privacy', true),
  (2, '{MISSING}', 'k9', 'marketing', NULL);
"""


def dirty_sql():
    names = {k: v for k, v in globals().items() if k.isupper() and isinstance(v, str) and len(v) == 36}
    names.update({"U_%d" % n: U(n) for n in range(100, 1000)})
    return DIRTY_ROWS.format(**names)


@pytest.fixture(scope="module")
def db(make_database):
    """Legacy schema + dirty rows + carbot_v2 + the mapping, on one fresh database."""
    database = make_database("mapping")
    conn = database.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
        cur.execute(dirty_sql())
    mapping.apply_all(conn, str(REPO / "sql"), T, M, "public")
    conn.commit()
    conn.close()
    return database


@pytest.fixture(scope="module")
def migrated(db):
    """Insert every view's migrated rows into its target, in TABLES order; then add + validate the FKs."""
    conn = db.connect(autocommit=False)
    counts = {}
    with conn.cursor() as cur:
        for entry in mapping.TABLES:
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in mapping.target_columns(conn, T, entry["target"]))
            cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE _quarantine_reason IS NULL").format(
                sql.Identifier(T, entry["target"]), cols, cols, sql.Identifier(M, entry["view"])))
            counts[entry["target"]] = cur.rowcount
    mapping.add_foreign_keys(conn, T)
    conn.commit()
    validated = mapping.validate_foreign_keys(conn, T)
    conn.commit()
    conn.close()
    return counts, validated


def rows(db, query, args=None):
    """Rows of a query (a string or a psycopg2.sql.Composed)."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    finally:
        conn.close()


def scalar(db, query, args=None):
    return rows(db, query, args)[0][0]


def reason(db, view, key):
    return scalar(db, sql.SQL("SELECT _quarantine_reason FROM {} WHERE _src_key = %s").format(
        sql.Identifier(M, view)), (key,))


# --- the contract, for every entry of TABLES ---------------------------------------------------------------
def test_declaration_is_complete_and_ordered():
    targets = mapping.target_tables()
    assert len(targets) == len(set(targets)) == 27
    covered = {e["source"] for e in mapping.TABLES}
    assert covered == set(mapping.legacy_tables()) and len(mapping.legacy_tables()) == 25
    for i, entry in enumerate(mapping.TABLES):
        assert entry["view"] == "map_" + entry["target"]
        assert set(entry["reads"]) <= set(mapping.legacy_tables())
        for dep in entry["depends_on"]:
            assert targets.index(dep) < i, "%s must come after %s" % (entry["target"], dep)
    assert mapping.by_target("appointment_services")["view_key"] == ["_src_key1", "_src_key2"]
    with pytest.raises(KeyError):
        mapping.by_target("nope")


@pytest.mark.parametrize("entry", mapping.TABLES, ids=lambda e: e["target"])
def test_view_columns_match_target(db, entry):
    conn = db.connect()
    target = mapping.column_types(conn, T, entry["target"])
    view = mapping.column_types(conn, M, entry["view"])
    conn.close()
    assert [c for c in view if not c[0].startswith("_")] == target
    assert [c[0] for c in view if c[0].startswith("_")] == entry["view_key"] + ["_quarantine_reason"]


@pytest.mark.parametrize("entry", [e for e in mapping.TABLES if e["kind"] == "row"], ids=lambda e: e["target"])
def test_every_legacy_row_once(db, entry):
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in entry["view_key"])
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*), count(DISTINCT ({})) FROM {}").format(
            keys, sql.Identifier(M, entry["view"])))
        in_view, distinct = cur.fetchone()
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", entry["source"])))
        legacy = cur.fetchone()[0]
    conn.close()
    assert legacy > 0
    assert in_view == distinct == legacy


def test_migrated_plus_quarantined_is_legacy(db, migrated):
    counts, validated = migrated
    assert len(validated) == len(mapping.foreign_keys())  # every FK held on the migrated rows
    for entry in mapping.TABLES:
        if entry["kind"] != "row":
            continue
        legacy = scalar(db, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", entry["source"])))
        quarantined = scalar(db, sql.SQL("SELECT count(*) FROM {} WHERE _quarantine_reason IS NOT NULL").format(
            sql.Identifier(M, entry["view"])))
        assert counts[entry["target"]] + quarantined == legacy, entry["target"]


# --- organizations ------------------------------------------------------------------------------------------
def test_one_organization_per_owner(db, migrated):
    org = str(mapping.organization_id("max@web.de"))
    got = rows(db, "SELECT id, organization_id FROM carbot_v2.workshops WHERE id IN %s ORDER BY id",
               ((W_BER, W_HAM, W_FALLBACK),))
    # two cities, differently cased emails, one invalid owner_email resolved through owner_id: one organization
    assert [str(r[1]) for r in got] == [org] * 3
    assert rows(db, "SELECT name, slug, email, legal_city, legal_country FROM carbot_v2.organizations WHERE id = %s",
                (org,)) == [("Meister Berlin", "meister-berlin", "max@web.de", "Berlin", "DE")]
    # no duplicated workshops, unique slugs; the ownerless workshop is its own organization
    assert db.scalar("SELECT count(*) FROM carbot_v2.workshops") == 6
    assert db.scalar("SELECT count(*) FROM carbot_v2.organizations") == 4
    solo = db.scalar("SELECT organization_id FROM carbot_v2.workshops WHERE id = %s", (W_SOLO,))
    assert str(solo) == str(mapping.organization_id("workshop:" + W_SOLO))


def test_workshop_rules(db, migrated):
    got = dict((str(r[0]), r[1:]) for r in rows(
        db, "SELECT id, slug, postal_code, city, business_type::text, owner_id, legacy_raw FROM carbot_v2.workshops"))
    # '-v2' removed, ' 10115' trimmed, 'Freie Werkstatt' -> independent
    assert got[W_BER][:4] == ("meister-berlin", "10115", "Berlin", "independent")
    assert got[W_HAM][1:3] == (None, "Hamburg") and got[W_HAM][5] == {"postal_code": "1234"}
    assert got[W_TAKEN_V2][0] == "taken-v2"      # 'taken' exists: the suffix stays
    assert got[W_FALLBACK][5] == {"owner_email": "kein"}
    assert reason(db, "map_workshops", W_BAD) == "unknown workshops.business_type: 'Kette'"


# --- quarantine reasons --------------------------------------------------------------------------------------
@pytest.mark.parametrize("view, key, expected", [
    ("map_users", U_ROLE, "unknown users.role: 'superuser'"),
    ("map_team_members", U(102), "orphan: user_id not found"),
    ("map_team_members", U(103), "parent quarantined: workshop_id"),
    ("map_customers", C_ORPHAN, "orphan: workshop_id not found"),
    ("map_customer_vehicles", U(202), "parent quarantined: customer_id"),
    ("map_customer_vehicles", U(203), "orphan: customer_id not found"),
    ("map_leads", L_BOGUS, "unknown leads.status: 'bogus'"),
    ("map_leads", L_ORPHAN, "orphan: workshop_id not found"),
    ("map_lead_notes", U(302), "parent quarantined: lead_id"),
    ("map_chat_messages", 4, "orphan: workshop_id not found"),
    ("map_chat_messages", 5, "missing chat_messages.kunde_id (no conversation)"),
    ("map_chat_messages", 6, "unknown chat_messages.sender: 'robot'"),
    ("map_analytics_events", 2, "orphan: workshop_id not found"),
    ("map_services", U(402), "missing services.name"),
    ("map_appointments", U(503), "unknown appointments.status: 'weird'"),
    ("map_workshop_closures", U(602), "parent quarantined: workshop_id"),
    ("map_reviews", U(702), "rating out of range 1..5: 0"),
    ("map_reviews", U(703), "rating out of range 1..5: 6"),
    ("map_subscriptions", U(802), "orphan: workshop_id not found"),
    ("map_invoices", U(813), "unknown invoices.currency: 'euro'"),
    ("map_chatbot_settings", MISSING, "orphan: workshop_id not found"),
])
def test_quarantine_reason(db, view, key, expected):
    assert reason(db, view, key) == expected


def test_composite_key_quarantine(db):
    got = dict(((str(a), str(s)), r) for a, s, r in rows(
        db, "SELECT _src_key1, _src_key2, _quarantine_reason FROM carbot_migration.map_appointment_services"))
    assert got[(U(501), U(401))] is None
    assert got[(U(501), U(402))] == "parent quarantined: service_id"
    assert got[(U(503), U(401))] == "parent quarantined: appointment_id"
    assert got[(U(502), U(403))] is None


def test_compliance_rows_are_never_quarantined(db, migrated):
    assert db.scalar("SELECT count(*) FROM carbot_v2.audit_logs WHERE workshop_id = %s", (MISSING,)) == 1
    assert db.scalar("SELECT count(*) FROM carbot_v2.consent_log") == 2
    assert rows(db, "SELECT requester_email, legacy_raw FROM carbot_v2.gdpr_requests ORDER BY id") == [
        ("max@web.de", None), (None, {"requester_email": "max@"})]


# --- rules on migrated rows -----------------------------------------------------------------------------------
def test_customers(db, migrated):
    got = dict((str(r[0]), r[1:]) for r in rows(
        db, "SELECT id, title, first_name, last_name, full_name, email, postal_code, gdpr_consent_given, legacy_raw "
            "FROM carbot_v2.customers"))
    assert got[C_ANNA] == ("Dr.", "Anna-Lena", "von Berg", "Dr. Anna-Lena von Berg", "max@web.de", "10115", None, None)
    assert got[C_JAN] == (None, "Jan", "van der Berg", "Jan van der Berg", None, None, True,
                          {"name": "van der Berg, Jan", "email": "max@", "postal_code": "1234"})
    assert got[C_EMPTY][:4] == (None, None, None, None) and got[C_EMPTY][7] == {"email": "kein"}
    assert got[C_NULL][6] is None   # never asked stays NULL: consent is not invented


def test_vehicles(db, migrated):
    got = dict((str(r[0]), r[1:]) for r in rows(
        db, "SELECT id, year, license_plate, vin, mileage_km, legacy_raw FROM carbot_v2.customer_vehicles"))
    assert got[U(201)] == (None, "B-AB 1234", None, None, {"year": 0, "vin": "garbage", "mileage_km": -5})
    assert got[U(204)] == (2025, "BAB1234", "WVWZZZ1JZ3W386752", 120000, None)


def test_leads(db, migrated):
    got = dict((str(r[0]), r[1:]) for r in rows(
        db, "SELECT id, status::text, priority::text, lead_score, chat_history, consent_given, email, legacy_raw "
            "FROM carbot_v2.leads"))
    assert got[L_NEU] == ("new", "high", None, [{"role": "user", "content": "Hallo"}], None, "max@web.de",
                          {"lead_score": 140})
    assert got[L_NULL] == (None, None, None, [{"role": "bot", "content": "Hi"}], True, None,
                           {"email": "max@", "lead_score": -3})
    assert got[L_LOST][:3] == ("lost", "low", 50) and got[L_LOST][4] is False
    assert got[L_SPAM][:3] == ("spam", "urgent", 100)
    assert L_BOGUS not in got and L_ORPHAN not in got


def test_chat_sessions_and_messages(db, migrated):
    sessions = rows(db, "SELECT id, workshop_id, client_key FROM carbot_v2.chat_sessions ORDER BY client_key, id")
    expected = {(str(mapping.chat_session_id(w, k)), w, k) for w, k in
                [(W_BER, "k1"), (W_BER, "k2"), (W_HAM, "k1")]}
    assert {(str(i), str(w), k) for i, w, k in sessions} == expected
    msgs = dict((r[0], r[1:]) for r in rows(db, "SELECT id, session_id, lead_id FROM carbot_v2.chat_messages"))
    assert sorted(msgs) == [1, 2, 3]
    assert str(msgs[1][0]) == str(mapping.chat_session_id(W_BER, "k1")) and str(msgs[1][1]) == L_NEU
    assert msgs[3][1] is None   # dangling lead_id


def test_appointments(db, migrated):
    got = dict((str(r[0]), r[1:]) for r in rows(
        db, "SELECT id, customer_id, vehicle_id, lead_id, scheduled_datetime AT TIME ZONE 'UTC', status::text "
            "FROM carbot_v2.appointments"))
    a1 = got[U(501)]
    assert [str(x) for x in a1[:3]] == [C_ANNA, U(201), L_NEU]
    assert str(a1[3]) == "2024-03-31 01:30:00"            # 02:30 does not exist: +01 offset
    a2 = got[U(502)]
    assert a2[:3] == (None, None, None)                  # customer missing, vehicle and lead quarantined
    assert str(a2[3]) == "2024-10-27 01:30:00"            # ambiguous 02:30: standard time
    assert got[U(504)][3] is None and got[U(504)][4] == "no_show"


def test_users_duplicate_email(db, migrated):
    got = dict((str(r[0]), r[1:]) for r in rows(db, "SELECT id, email, legacy_raw FROM carbot_v2.users"))
    assert got[U_MAX] == ("max@web.de", None)                  # the earliest keeps the address
    assert got[U_DUP] == (None, {"email": "max@web.de", "email_duplicate_of": U_MAX})
    assert got[U_ANNA] == (None, {"email": "kein"})
    assert U_ROLE not in got
    assert reason(db, "map_users", U_ROLE) == "unknown users.role: 'superuser'"


def test_billing_and_secrets(db, migrated):
    assert rows(db, "SELECT stripe_invoice_id, currency, subscription_id IS NULL FROM carbot_v2.invoices "
                    "ORDER BY 1") == [("in_1", "EUR", False), ("in_2", "EUR", True)]
    assert db.scalar("SELECT password_hash FROM carbot_v2.users WHERE id = %s", (U_MAX,)) == "$2b$12$secrethash"
    assert db.scalar("SELECT key_hash FROM carbot_v2.api_keys") == "hash-secret"
    assert db.scalar("SELECT secret FROM carbot_v2.webhooks") == "whsec"


# --- reports -------------------------------------------------------------------------------------------------
def test_unmapped_values(db):
    got = {(t, c, v): n for t, c, v, n in rows(db, "SELECT * FROM carbot_migration.unmapped_values")}
    assert got == {
        ("users", "role", "superuser"): 1,
        ("workshops", "business_type", "Kette"): 1,
        ("leads", "status", "bogus"): 1,
        ("chat_messages", "sender", "robot"): 1,
        ("appointments", "status", "weird"): 1,
        ("invoices", "currency", "euro"): 1,
    }
    # known in another spelling ('Reception', 'neu', 'eur') or NULL where NULL is allowed: not listed


def test_dangling_references(db):
    got = {(t, c): n for t, c, _, n in rows(db, "SELECT * FROM carbot_migration.dangling_references")}
    assert got[("lead_notes", "user_id")] == 1
    assert got[("chat_messages", "lead_id")] == 1
    assert got[("appointments", "customer_id")] == 1
    assert got[("reviews", "customer_id")] == 1
    assert got[("invoices", "subscription_id")] == 1
    assert got[("notifications", "user_id")] == 1   # a missing user


def test_quarantine_forecast(db):
    total = db.scalar("SELECT sum(n) FROM carbot_migration.quarantine_forecast")
    by_views = sum(scalar(db, sql.SQL("SELECT count(*) FROM {} WHERE _quarantine_reason IS NOT NULL").format(
        sql.Identifier(M, e["view"]))) for e in mapping.TABLES)
    assert total == by_views > 0


# --- the module -------------------------------------------------------------------------------------------------
def run_module(database, check_mode=False, **args):
    """Run the module as Ansible would (arguments file), return its JSON result."""
    params = dict(login_host=database.host, login_port=database.port, login_db=database.dbname,
                  login_user=database.user, login_password=database.password, ssl_mode="disable",
                  sql_dir=str(REPO / "sql"), _ansible_check_mode=check_mode, **args)
    return run_module_process("schema_apply", params, timeout=120)


def test_schema_apply_module_is_idempotent_and_quotes_names(legacy_db):
    # schema names that only work when quoted as identifiers
    names = dict(target_schema="Carbot V2", mapping_schema="carbot-mapping", legacy_schema="public")
    check = run_module(legacy_db, check_mode=True, **names)
    assert check.get("changed") is True and not check.get("failed"), check
    assert legacy_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'Carbot V2'") == 0
    first = run_module(legacy_db, **names)
    assert first.get("changed") is True and not first.get("failed"), first
    assert set(first["tables_created"]) == set(mapping.target_tables()) | set(mapping.MIGRATION_TABLES)
    second = run_module(legacy_db, **names)
    assert second.get("changed") is False, second
    fks = run_module(legacy_db, foreign_keys="validated", **names)
    assert fks.get("changed") is True and len(fks["foreign_keys_validated"]) == len(mapping.foreign_keys()), fks
    assert run_module(legacy_db, foreign_keys="validated", **names).get("changed") is False
    assert legacy_db.scalar("SELECT count(*) FROM \"carbot-mapping\".map_users") == 0


def test_schema_apply_refuses_without_legacy_tables(make_database):
    empty = make_database("empty")
    out = run_module(empty)
    assert out.get("failed") is True and "lacks the tables" in out.get("msg", ""), out


def test_reapplying_the_sql_files_is_harmless(db, migrated):
    """A changed checksum re-applies everything over the existing schema: no error, same views, data kept."""
    before = scalar(db, "SELECT count(*) FROM carbot_v2.customers")
    conn = db.connect(autocommit=False)
    applied = mapping.apply_all(conn, str(REPO / "sql"), T, M, "public")
    conn.commit()
    conn.close()
    assert applied["v2"][0] == "010_types.sql" and applied["mapping"][0] == "000_reset.sql"
    assert scalar(db, "SELECT count(*) FROM carbot_v2.customers") == before
    views = {r[0] for r in rows(db, "SELECT viewname FROM pg_views WHERE schemaname = %s", (M,))}
    assert {e["view"] for e in mapping.TABLES} <= views
