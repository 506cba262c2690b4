"""The report views generated from the mapping declaration give what the hand-written SQL gave.

``dangling_references`` and ``quarantine_forecast`` used to be hand-listed in sql/mapping/090_reports.sql
(nine optional references, one arm per table); mapping.create_report_views now composes them from
``mapping.TABLES``. The oracle below is that hand-written SQL, kept here verbatim as the independent
statement of what the reports must say (it names every table and column itself; it does not read the
declaration). It runs on generated legacy data with extra dirt: for every optional reference one child
row pointing at a parent that does not exist and one pointing at a quarantined parent, so every arm of
``dangling_references`` counts something, and quarantinable rows in many tables.
"""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data
from conftest import REPO
from psycopg2 import sql

T, M, L = "carbot_v2", "carbot_migration", "public"
SEED, SCALE = 7, 0.02
MISSING = "00000000-0000-0000-0000-00000000dead"

# The hand-written views of sql/mapping/090_reports.sql before they were generated (commit ac55b97),
# as queries. Unqualified names: run with search_path <mapping>, <legacy>, <target> as the file was.
ORACLE_DANGLING = """
SELECT 'workshops'::text AS source_table, 'owner_id'::text AS column_name, 'users'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM workshops s JOIN map_workshops m ON m._src_key = s.id
 WHERE s.owner_id IS NOT NULL AND m.owner_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'lead_notes'::text, 'user_id'::text, 'users'::text, pg_catalog.count(*)
  FROM lead_notes s JOIN map_lead_notes m ON m._src_key = s.id
 WHERE s.user_id IS NOT NULL AND m.user_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'chat_messages'::text, 'lead_id'::text, 'leads'::text, pg_catalog.count(*)
  FROM chat_messages s JOIN map_chat_messages m ON m._src_key = s.id
 WHERE s.lead_id IS NOT NULL AND m.lead_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'appointments'::text, 'customer_id'::text, 'customers'::text, pg_catalog.count(*)
  FROM appointments s JOIN map_appointments m ON m._src_key = s.id
 WHERE s.customer_id IS NOT NULL AND m.customer_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'appointments'::text, 'vehicle_id'::text, 'vehicles'::text, pg_catalog.count(*)
  FROM appointments s JOIN map_appointments m ON m._src_key = s.id
 WHERE s.vehicle_id IS NOT NULL AND m.vehicle_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'appointments'::text, 'lead_id'::text, 'leads'::text, pg_catalog.count(*)
  FROM appointments s JOIN map_appointments m ON m._src_key = s.id
 WHERE s.lead_id IS NOT NULL AND m.lead_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'reviews'::text, 'customer_id'::text, 'customers'::text, pg_catalog.count(*)
  FROM reviews s JOIN map_reviews m ON m._src_key = s.id
 WHERE s.customer_id IS NOT NULL AND m.customer_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'invoices'::text, 'subscription_id'::text, 'subscriptions'::text, pg_catalog.count(*)
  FROM invoices s JOIN map_invoices m ON m._src_key = s.id
 WHERE s.subscription_id IS NOT NULL AND m.subscription_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'notifications'::text, 'user_id'::text, 'users'::text, pg_catalog.count(*)
  FROM notifications s JOIN map_notifications m ON m._src_key = s.id
 WHERE s.user_id IS NOT NULL AND m.user_id IS NULL AND m._quarantine_reason IS NULL
"""

# One arm per table that can quarantine (the hand-written view left out organizations, chat_sessions and
# audit_logs, whose views never quarantine: the generated view has an arm for them that is always empty).
ORACLE_FORECAST_TABLES = (
    "users", "workshops", "team_members", "customers", "customer_vehicles", "leads", "lead_notes", "chat_messages",
    "analytics_events", "services", "appointments", "appointment_services", "workshop_closures", "reviews",
    "subscriptions", "invoices", "chatbot_settings", "faq_entries", "email_templates", "notifications", "api_keys",
    "webhooks", "gdpr_requests", "consent_log")
ORACLE_FORECAST = "\nUNION ALL\n".join(
    "SELECT '%s'::text, _quarantine_reason, pg_catalog.count(*) FROM map_%s "
    "WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason" % (t, t) for t in ORACLE_FORECAST_TABLES)

# Extra dirt: per optional reference (child table, column, parent table), a row pointing at no parent and
# a row pointing at a quarantined parent (made quarantined by the statement in the last element).
DIRT = [
    ("workshops", "owner_id", "users", "UPDATE users SET role = 'superuser' WHERE id = %(parent)s"),
    ("lead_notes", "user_id", "users", "UPDATE users SET role = 'superuser' WHERE id = %(parent)s"),
    ("chat_messages", "lead_id", "leads", "UPDATE leads SET status = 'bogus' WHERE id = %(parent)s"),
    ("appointments", "customer_id", "customers", "UPDATE customers SET workshop_id = '%s' WHERE id = %%(parent)s"
     % MISSING),
    ("appointments", "vehicle_id", "vehicles", "UPDATE vehicles SET customer_id = '%s' WHERE id = %%(parent)s"
     % MISSING),
    ("appointments", "lead_id", "leads", "UPDATE leads SET status = 'bogus' WHERE id = %(parent)s"),
    ("reviews", "customer_id", "customers", "UPDATE customers SET workshop_id = '%s' WHERE id = %%(parent)s"
     % MISSING),
    ("invoices", "subscription_id", "subscriptions", "UPDATE subscriptions SET workshop_id = '%s' WHERE id = "
     "%%(parent)s" % MISSING),
    ("notifications", "user_id", "users", "UPDATE users SET role = 'superuser' WHERE id = %(parent)s"),
]


def _dirty(cur):
    """Make every optional reference dangle at least twice (missing parent, quarantined parent)."""
    for child, column, parent, quarantine in DIRT:
        ident = dict(child=sql.Identifier(child), column=sql.Identifier(column), parent=sql.Identifier(parent))
        # a child whose parent is missing
        cur.execute(sql.SQL("UPDATE {child} SET {column} = %s WHERE id = (SELECT id FROM {child} "
                            "WHERE {column} IS NOT NULL ORDER BY id LIMIT 1 OFFSET 1)").format(**ident), (MISSING,))
        # a child whose parent gets quarantined
        cur.execute(sql.SQL("SELECT {column} FROM {child} WHERE {column} IS NOT NULL AND {column} <> %s "
                            "ORDER BY id DESC LIMIT 1").format(**ident), (MISSING,))
        row = cur.fetchone()
        assert row, "the generator made no %s.%s to dirty" % (child, column)
        cur.execute(quarantine, {"parent": row[0]})


@pytest.fixture(scope="module")
def reports_db(make_database):
    db = make_database("reports")
    conn = db.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    legacy_data.generate(conn, (REPO / "sql" / "legacy" / "generate.sql").read_text(), SEED, SCALE, L)
    conn.autocommit = False
    with conn.cursor() as cur:
        _dirty(cur)
    applied = mapping.apply_all(conn, str(REPO / "sql"), T, M, L)
    conn.commit()
    conn.close()
    assert applied["generated"] == ["dangling_references", "quarantine_forecast"]
    return db


def _query(db, text, oracle_search_path=False):
    conn = db.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            if oracle_search_path:
                cur.execute(mapping.search_path_statement(mapping.mapping_search_path(M, L, T)))
            cur.execute(text)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def test_dangling_references_equal_the_hand_written_oracle(reports_db):
    got = _query(reports_db, "SELECT source_table, column_name, parent_table, n "
                             "FROM carbot_migration.dangling_references")
    want = _query(reports_db, ORACLE_DANGLING, oracle_search_path=True)
    assert got == want  # same arms, same order, same counts
    assert len(got) == 9 == len(mapping.optional_references())
    assert all(n >= 2 for _t, _c, _p, n in got), got  # every arm counts the dirt above: the test can fail


def test_quarantine_forecast_equals_the_hand_written_oracle(reports_db):
    got = sorted(_query(reports_db, "SELECT target_table, reason, n FROM carbot_migration.quarantine_forecast"))
    want = sorted(_query(reports_db, ORACLE_FORECAST, oracle_search_path=True))
    assert got == want
    assert sum(n for _t, _r, n in got) > 20 and len({t for t, _r, _n in got}) >= 8, got


def test_generated_views_follow_the_declaration(reports_db):
    """A reference or a table added to TABLES is in the reports: the arms are exactly the declaration's."""
    stored = _query(reports_db, "SELECT pg_catalog.pg_get_viewdef("
                                "'carbot_migration.quarantine_forecast'::regclass)")[0][0]
    for entry in mapping.TABLES:
        assert entry["view"] in stored
    columns = {(t, c) for t, c, _p, _n in _query(
        reports_db, "SELECT * FROM carbot_migration.dangling_references")}
    assert columns == {(e["source"], r["column"]) for e, r in mapping.optional_references()}
    # the views are generated, not in any SQL file
    text = "".join(p.read_text() for p in (REPO / "sql" / "mapping").glob("*.sql"))
    assert "VIEW dangling_references" not in text and "VIEW quarantine_forecast" not in text
