"""The synthetic legacy data: deterministic, the right volumes, every kind of dirt of the spec present
(and only a few percent of it), sequences ahead of the data, and the module idempotent.

Scale 0.02 (10 workshops, 2,000 customers, 10,000 chat messages, ...): each generation takes about half a
second. Every dirt kind is forced onto a fixed row as well, so it exists at any scale.
"""

import json
import subprocess

import pytest
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data
from conftest import REPO, SUPERUSER_PASSWORD

SCALE = 0.02
GENERATOR = (REPO / "sql/legacy/generate.sql").read_text(encoding="utf-8")
SCHEMA_SQL = (REPO / "sql/legacy/schema.sql").read_text(encoding="utf-8")


def generated(make_database, seed, scale=SCALE, schema="public"):
    db = make_database("gen")
    conn = db.connect()
    with conn.cursor() as cur:
        if schema != "public":
            cur.execute('CREATE SCHEMA "%s"' % schema)  # fixed names from this file
        cur.execute('SET search_path TO "%s"' % schema)
        cur.execute(SCHEMA_SQL)
    result = legacy_data.generate(conn, GENERATOR, seed, scale, schema)
    result["checksums"] = legacy_data.content_checksums(conn, schema)
    conn.close()
    return db, result


@pytest.fixture(scope="module")
def gen42(make_database):
    return generated(make_database, 42)


@pytest.fixture(scope="module")
def db(gen42):
    return gen42[0]


# -- determinism -------------------------------------------------------------------------------------
def test_same_seed_and_scale_give_identical_content(gen42, make_database):
    # another database, another schema name, another session time zone: still byte-identical
    other_db = make_database("gen")
    conn = other_db.connect()
    with conn.cursor() as cur:
        cur.execute('CREATE SCHEMA legacy; SET search_path TO legacy; SET timezone = "America/New_York"')
        cur.execute(SCHEMA_SQL)
    legacy_data.generate(conn, GENERATOR, 42, SCALE, "legacy")
    again = legacy_data.content_checksums(conn, "legacy")
    conn.close()
    assert again == gen42[1]["checksums"]


def test_a_different_seed_gives_different_content_in_every_table(gen42, make_database):
    _, other = generated(make_database, 43)
    same = [t for t in legacy_data.LEGACY_TABLES if other["checksums"][t] == gen42[1]["checksums"][t]]
    assert not same, "identical for seed 42 and 43: %s" % same


def test_running_it_again_replaces_the_data_with_the_same_data(make_database):
    db, first = generated(make_database, 5)
    conn = db.connect()
    second = legacy_data.generate(conn, GENERATOR, 5, SCALE, "public")
    assert legacy_data.content_checksums(conn, "public") == first["checksums"]
    assert second["counts"] == first["counts"]
    conn.close()


# -- volumes and sequences ---------------------------------------------------------------------------
def test_volumes_match_the_scale(gen42):
    counts, expected = gen42[1]["counts"], legacy_data.expected_volumes(SCALE)
    assert set(counts) == set(legacy_data.LEGACY_TABLES)
    off = {}
    for table, want in expected.items():
        tolerance = legacy_data.APPROXIMATE.get(table, 0.0)
        if abs(counts[table] - want) > tolerance * want:
            off[table] = (counts[table], want)
    # subscriptions: one or two per workshop (gone workshops included)
    per_ws = expected["chatbot_settings"]
    off.pop("subscriptions", None)
    assert per_ws <= counts["subscriptions"] <= 2 * per_ws
    assert not off, "table: (generated, expected) %s" % off
    assert isinstance(gen42[1]["elapsed_seconds"], float)  # reported (how long is bench/generate.py's business)


def test_expected_volumes_at_scale_one_are_the_production_estimates():
    vol = legacy_data.expected_volumes(1.0)
    assert vol["workshops"] == 500 and vol["users"] == 1500 and vol["customers"] == 100000
    assert vol["vehicles"] == 120000 and vol["chat_messages"] == 500000 and vol["analytics_events"] == 1000000
    assert vol["services"] == 20 * 505 and vol["appointment_services"] == 45000 and vol["consent_log"] == 60000


@pytest.mark.parametrize("table", legacy_data.SERIAL_TABLES)
def test_the_next_application_insert_does_not_collide(db, table):
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT max(id) FROM " + table)
        max_id = cur.fetchone()[0]
        cur.execute("INSERT INTO " + table + " DEFAULT VALUES RETURNING id")
        new_id = cur.fetchone()[0]
    conn.rollback()
    conn.close()
    assert max_id and new_id > max_id


# -- dirt: one query per kind; each must find rows --------------------------------------------------
DIRT = {
    # users
    "users_email_mixed_case": "SELECT count(*) FROM users WHERE email <> lower(email)",
    "users_email_equal_ignoring_case": "SELECT count(*) FROM (SELECT lower(email) FROM users GROUP BY 1 "
                                       "HAVING count(*) > 1) d",
    "users_full_name_null": "SELECT count(*) FROM users WHERE full_name IS NULL",
    # workshops
    "workshops_owner_null": "SELECT count(*) FROM workshops WHERE owner_id IS NULL",
    "workshops_owner_dangling": "SELECT count(*) FROM workshops w WHERE owner_id IS NOT NULL "
                                "AND NOT EXISTS (SELECT FROM users u WHERE u.id = w.owner_id)",
    "workshops_one_owner_several_cities_email_case_differs":
        "SELECT count(*) FROM (SELECT owner_id FROM workshops WHERE owner_id IS NOT NULL GROUP BY owner_id "
        "HAVING count(DISTINCT city) > 1 AND count(DISTINCT owner_email) > 1 "
        "AND count(DISTINCT lower(owner_email)) = 1) o",
    "workshops_postal_code_leading_blank": r"SELECT count(*) FROM workshops WHERE postal_code ~ '^ \d{5}$'",
    "workshops_postal_code_four_digits": r"SELECT count(*) FROM workshops WHERE postal_code ~ '^\d{4}$'",
    "workshops_postal_code_null": "SELECT count(*) FROM workshops WHERE postal_code IS NULL",
    "workshops_business_type_null": "SELECT count(*) FROM workshops WHERE business_type IS NULL",
    "workshops_business_type_german": "SELECT count(*) FROM workshops WHERE business_type = 'Freie Werkstatt'",
    # customers
    "customers_orphan": "SELECT count(*) FROM customers c WHERE NOT EXISTS "
                        "(SELECT FROM workshops w WHERE w.id = c.workshop_id)",
    "customers_name_null": "SELECT count(*) FROM customers WHERE name IS NULL",
    "customers_name_empty": "SELECT count(*) FROM customers WHERE name = ''",
    "customers_name_padded": "SELECT count(*) FROM customers WHERE name <> btrim(name) AND btrim(name) <> ''",
    "customers_name_last_comma_first": "SELECT count(*) FROM customers WHERE name ~ '^[^,]+, [^,]+$'",
    "customers_name_title_and_particle": "SELECT count(*) FROM customers WHERE name = 'Dr. Anna-Lena von Berg' "
                                         r"OR (name ~ '^(Dr\.|Prof\.)' AND name ~ '\m(von|van|de|zu)\M')",
    "customers_name_single_with_umlaut": "SELECT count(*) FROM customers WHERE name = 'Ömer'",
    "customers_name_placeholder": "SELECT count(*) FROM customers WHERE name = 'Max Mustermann'",
    "customers_email_no_domain": "SELECT count(*) FROM customers WHERE email ~ '@$'",
    "customers_email_no_at": "SELECT count(*) FROM customers WHERE email !~ '@'",
    "customers_email_upper_trailing_blank": "SELECT count(*) FROM customers WHERE email ~ ' $' "
                                            "AND email = upper(email)",
    "customers_marketing_consent_null": "SELECT count(*) FROM customers WHERE marketing_consent IS NULL",
    "customers_duplicate_in_workshop": "SELECT count(*) FROM (SELECT workshop_id, name, email FROM customers "
                                       "WHERE email IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
    # vehicles
    "vehicles_year_zero": "SELECT count(*) FROM vehicles WHERE year = 0",
    "vehicles_year_future": "SELECT count(*) FROM vehicles WHERE year > 2026",
    "vehicles_plate_standard": r"SELECT count(*) FROM vehicles "
                               r"WHERE license_plate ~ '^[A-ZÄÖÜ]{1,3}-[A-Z]{1,2} \d{1,4}E?$'",
    "vehicles_plate_lower_no_hyphen": r"SELECT count(*) FROM vehicles "
                                      r"WHERE license_plate ~ '^[a-zäöü]{1,3} [a-z]{1,2}\d{1,4}$'",
    "vehicles_vin_garbage": "SELECT count(*) FROM vehicles WHERE vin !~ '^[A-HJ-NPR-Z0-9]{17}$'",
    "vehicles_mileage_negative": "SELECT count(*) FROM vehicles WHERE mileage_km < 0",
    "vehicles_orphan_customer": "SELECT count(*) FROM vehicles v WHERE NOT EXISTS "
                                "(SELECT FROM customers c WHERE c.id = v.customer_id)",
    # leads
    "leads_status_german_neu": "SELECT count(*) FROM leads WHERE status = 'neu'",
    "leads_status_null": "SELECT count(*) FROM leads WHERE status IS NULL",
    "leads_all_english_statuses": "SELECT CASE WHEN count(DISTINCT status) FILTER (WHERE status IN "
                                  "('new','contacted','qualified','converted','lost','spam')) = 6 THEN 1 ELSE 0 END "
                                  "FROM leads",
    "leads_priority_null": "SELECT count(*) FROM leads WHERE priority IS NULL",
    "leads_score_negative": "SELECT count(*) FROM leads WHERE lead_score < 0",
    "leads_score_over_100": "SELECT count(*) FROM leads WHERE lead_score > 100",
    "leads_chatverlauf_array": "SELECT count(*) FROM leads WHERE jsonb_typeof(chatverlauf) = 'array'",
    "leads_chatverlauf_json_string": "SELECT count(*) FROM leads WHERE jsonb_typeof(chatverlauf) = 'string' "
                                     "AND jsonb_typeof((chatverlauf #>> '{}')::jsonb) = 'array'",
    "leads_chatverlauf_object": "SELECT count(*) FROM leads WHERE jsonb_typeof(chatverlauf) = 'object'",
    "leads_chatverlauf_null": "SELECT count(*) FROM leads WHERE chatverlauf IS NULL",
    "leads_consent_unknown": "SELECT count(*) FROM leads WHERE consent_given IS NULL",
    "leads_orphan": "SELECT count(*) FROM leads l "
                    "WHERE NOT EXISTS (SELECT FROM workshops w WHERE w.id = l.workshop_id)",
    # chat
    "chat_emoji": r"SELECT count(*) FROM chat_messages WHERE message ~ '[\U0001F300-\U0001FAFF]'",
    "chat_control_characters": r"SELECT count(*) FROM chat_messages WHERE message ~ '[\u0001-\u0008\u001B]'",
    "chat_supplementary_planes": r"SELECT count(*) FROM chat_messages WHERE message ~ '[\U00020000-\U0010FFFF]'",
    "chat_rtl_and_cjk": r"SELECT count(*) FROM chat_messages WHERE message ~ '[\u0600-\u06FF]' "
                        r"AND message ~ '[\u4E00-\u9FFF]'",
    "chat_very_long": "SELECT count(*) FROM chat_messages WHERE length(message) > 5000",
    "chat_empty_or_blank": "SELECT count(*) FROM chat_messages WHERE btrim(message, E' \\n') = ''",
    "chat_conversations_of_several_messages": "SELECT count(*) FROM (SELECT workshop_id, kunde_id FROM chat_messages "
                                              "GROUP BY 1, 2 HAVING count(*) > 1) c",
    # analytics
    "analytics_ipv4": "SELECT count(*) FROM analytics_events WHERE family(ip_address) = 4",
    "analytics_ipv6": "SELECT count(*) FROM analytics_events WHERE family(ip_address) = 6",
    "analytics_ip_null": "SELECT count(*) FROM analytics_events WHERE ip_address IS NULL",
    # appointments
    "appointments_in_dst_gap": "SELECT count(*) FROM appointments WHERE appointment_date = '2025-03-30' "
                               "AND appointment_time = '02:30' AND ((appointment_date + appointment_time) "
                               "AT TIME ZONE 'Europe/Berlin') AT TIME ZONE 'Europe/Berlin' "
                               "<> appointment_date + appointment_time",
    "appointments_in_dst_overlap": "SELECT count(*) FROM appointments WHERE appointment_date = '2025-10-26' "
                                   "AND appointment_time = '02:30'",
    "appointment_services_missing_service": "SELECT count(*) FROM appointment_services a WHERE NOT EXISTS "
                                            "(SELECT FROM services s WHERE s.id = a.service_id)",
    "appointment_services_orphan": "SELECT count(*) FROM appointment_services a WHERE NOT EXISTS "
                                   "(SELECT FROM appointments p WHERE p.id = a.appointment_id)",
    # reviews, billing, configuration
    "reviews_rating_0": "SELECT count(*) FROM reviews WHERE rating = 0",
    "reviews_rating_6": "SELECT count(*) FROM reviews WHERE rating = 6",
    "invoices_currency_lower": "SELECT count(*) FROM invoices WHERE currency = 'eur'",
    "invoices_currency_upper": "SELECT count(*) FROM invoices WHERE currency = 'EUR'",
    "chatbot_settings_language_null": "SELECT count(*) FROM chatbot_settings WHERE language IS NULL",
    "gdpr_requests_workshop_null": "SELECT count(*) FROM gdpr_requests WHERE workshop_id IS NULL",
    "audit_logs_workshop_null": "SELECT count(*) FROM audit_logs WHERE workshop_id IS NULL",
}


@pytest.mark.parametrize("kind", sorted(DIRT))
def test_dirt_is_present(db, kind):
    assert db.scalar(DIRT[kind]) > 0, "no rows for dirt kind %s: %s" % (kind, DIRT[kind])


# child -> parent references with orphans ("the old app enforced them, badly")
ORPHANS = [
    ("team_members", "workshop_id", "workshops"), ("team_members", "user_id", "users"),
    ("vehicles", "customer_id", "customers"), ("leads", "workshop_id", "workshops"),
    ("lead_notes", "lead_id", "leads"), ("lead_notes", "user_id", "users"),
    ("chat_messages", "workshop_id", "workshops"), ("chat_messages", "lead_id", "leads"),
    ("analytics_events", "workshop_id", "workshops"), ("services", "workshop_id", "workshops"),
    ("appointments", "vehicle_id", "vehicles"), ("workshop_closures", "workshop_id", "workshops"),
    ("reviews", "customer_id", "customers"), ("subscriptions", "workshop_id", "workshops"),
    ("invoices", "workshop_id", "workshops"), ("chatbot_settings", "workshop_id", "workshops"),
    ("faq_entries", "workshop_id", "workshops"), ("email_templates", "workshop_id", "workshops"),
    ("notifications", "workshop_id", "workshops"), ("notifications", "user_id", "users"),
    ("api_keys", "workshop_id", "workshops"), ("webhooks", "workshop_id", "workshops"),
    ("audit_logs", "workshop_id", "workshops"), ("consent_log", "workshop_id", "workshops"),
]


@pytest.mark.parametrize("child,column,parent", ORPHANS, ids=["%s.%s" % (c, col) for c, col, _ in ORPHANS])
def test_orphans_exist_but_are_rare(db, child, column, parent):
    orphans, total = db.query(
        "SELECT count(*) FILTER (WHERE c.%s IS NOT NULL AND p.id IS NULL), count(*) FROM %s c "
        "LEFT JOIN %s p ON p.id = c.%s" % (column, child, parent, column))[0]
    assert orphans > 0
    if total >= 500:  # in tiny tables the one forced orphan is more than a few percent
        assert orphans / total < 0.03, "%d of %d rows are orphans" % (orphans, total)


# -- realistic proportions and content ---------------------------------------------------------------
RARE = {  # kind of dirt -> (query for the share of rows, upper bound)
    "customers_without_workshop": ("SELECT avg((w.id IS NULL)::int) FROM customers c "
                                   "LEFT JOIN workshops w ON w.id = c.workshop_id", 0.02),
    "customer_names_odd": ("SELECT avg((name IS NULL OR name = '' OR name <> btrim(name))::int) FROM customers", 0.06),
    "invalid_emails": ("SELECT avg((email IS NOT NULL AND email !~* '^[^@ ]+@[^@ ]+\\.[a-z]+$')::int) "
                       "FROM customers", 0.05),
    "odd_vehicle_years": ("SELECT avg((year = 0 OR year > 2026)::int) FROM vehicles", 0.02),
    "odd_lead_scores": ("SELECT avg((lead_score < 0 OR lead_score > 100)::int) FROM leads", 0.04),
    "very_long_messages": ("SELECT avg((length(message) > 5000)::int) FROM chat_messages", 0.005),
    "dst_appointments": ("SELECT avg((appointment_time BETWEEN '02:00' AND '02:59')::int) FROM appointments", 0.01),
}


@pytest.mark.parametrize("kind", sorted(RARE))
def test_dirt_is_a_few_percent_not_half_the_data(db, kind):
    query, bound = RARE[kind]
    assert db.scalar(query) < bound


def test_german_cities_postal_codes_and_plates(db):
    cities = db.scalar("SELECT count(DISTINCT city) FROM customers")
    assert cities >= 20
    assert db.scalar("SELECT count(*) FROM customers WHERE city IN ('Berlin', 'Hamburg', 'München', 'Köln')") > 0
    share_5_digit = db.scalar(r"SELECT avg((postal_code ~ '^\d{5}$')::int) FROM customers "
                              "WHERE postal_code IS NOT NULL")
    assert share_5_digit > 0.95
    share_std_plate = db.scalar(r"SELECT avg((license_plate ~ '^[A-ZÄÖÜ]{1,3}-[A-Z]{1,2} \d{1,4}E?$')::int) "
                                "FROM vehicles WHERE license_plate IS NOT NULL")
    assert share_std_plate > 0.9


def test_conversations_belong_to_one_workshop_and_leads_point_at_them(db):
    assert db.scalar("SELECT count(*) FROM (SELECT kunde_id FROM chat_messages GROUP BY 1 "
                     "HAVING count(DISTINCT workshop_id) > 1) x") == 0
    assert db.scalar("SELECT avg((EXISTS (SELECT FROM chat_messages m WHERE m.kunde_id = l.kunde_id "
                     "AND m.workshop_id = l.workshop_id))::int) FROM leads l") > 0.9


def test_secrets_look_like_secrets(db):
    assert db.scalar("SELECT count(*) FROM users WHERE password_hash !~ '^\\$2[ab]\\$1[02]\\$.{53}$'") == 0
    assert db.scalar("SELECT count(*) FROM api_keys WHERE key_hash !~ '^sha256\\$[0-9a-f]{64}$'") == 0


# -- the module, through ansible ----------------------------------------------------------------------
def run_module(database, check=False, **args):
    params = dict(login_host=database.host, login_port=database.port, login_db=database.dbname,
                  login_user=database.user, login_password=SUPERUSER_PASSWORD, ssl_mode="disable",
                  schema_sql=str(REPO / "sql/legacy/schema.sql"),
                  generator_sql=str(REPO / "sql/legacy/generate.sql"), **args)
    argv = [str(REPO / ".venv/bin/ansible"), "localhost", "-m", "carbot.rehearsal.legacy_generate",
            "-a", json.dumps(params), "--one-line"] + (["--check"] if check else [])
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 2), out.stderr + out.stdout
    # "localhost | CHANGED => {...}" (other callbacks may print more lines after it)
    line = next(x for x in out.stdout.splitlines() if x.startswith("localhost | "))
    status, _, payload = line[len("localhost | "):].partition(" => ")
    result = json.loads(payload)
    result["failed"] = status.startswith("FAILED")
    return result


def test_module_is_idempotent_and_refuses_unknown_data(make_database):
    database = make_database("mod")
    planned = run_module(database, check=True, scale=SCALE, seed=11, schema="legacy")
    assert planned["changed"] and planned["action"] == "generate"
    assert planned["counts"] == legacy_data.expected_volumes(SCALE)
    assert database.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'legacy'") == 0, "check mode wrote"

    first = run_module(database, scale=SCALE, seed=11, schema="legacy")
    assert first["changed"] and first["action"] == "generate"
    assert isinstance(first["elapsed_seconds"], float)
    assert first["counts"]["workshops"] == legacy_data.expected_volumes(SCALE)["workshops"]
    again = run_module(database, scale=SCALE, seed=11, schema="legacy")
    assert not again["changed"] and again["action"] == "none" and again["checksum"] == first["checksum"]

    other = run_module(database, check=True, scale=SCALE, seed=12, schema="legacy")
    assert other["changed"] and other["action"] == "regenerate"

    database.query("COMMENT ON TABLE legacy.workshops IS NULL")  # data of unknown origin
    refused = run_module(database, scale=SCALE, seed=11, schema="legacy")
    assert refused["failed"] and "force=true" in refused["msg"]
    assert database.scalar("SELECT count(*) FROM legacy.customers") > 0, "refusing must not TRUNCATE"
    forced = run_module(database, scale=SCALE, seed=11, schema="legacy", force=True)
    assert forced["changed"] and forced["checksum"] == first["checksum"]
