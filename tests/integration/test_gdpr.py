"""carbot.migration.gdpr on the real pipeline (generator, mapping, copy, and the real sync triggers).

Every figure is checked against independent SQL; no result may carry the subject's personal data.
"""

import json

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import sync
from test_assess import clone, conn_args, migrated_database, run_module

REFERENCE = "2025-11-01T00:00:00+00:00"  # the generator's "now"


@pytest.fixture(scope="module")
def migrated(make_database):
    return migrated_database(make_database, "gdpr")


@pytest.fixture
def copy(migrated):
    return clone(migrated, "gdpr")


def install_sync(db):
    conn = db.connect(autocommit=False)
    try:
        plan = sync.Plan(conn)
        conn.commit()
    finally:
        conn.close()
    sync.install(conn_args(db), plan, sync.FORWARD)


def subject(db):
    """A person with a customer row, a lead (same email) and chat/analytics under the lead's client key."""
    return db.query(
        "SELECT lower(btrim(c.email)), c.id::text, l.id::text, l.kunde_id FROM public.customers c "
        "JOIN public.leads l ON lower(btrim(l.email)) = lower(btrim(c.email)) "
        "JOIN carbot_v2.customers tc ON tc.id = c.id JOIN carbot_v2.leads tl ON tl.id = l.id "
        "WHERE EXISTS (SELECT 1 FROM public.chat_messages m WHERE m.kunde_id = l.kunde_id) "
        "AND EXISTS (SELECT 1 FROM public.analytics_events e WHERE e.kunde_id = l.kunde_id) "
        "ORDER BY c.id LIMIT 1")[0]


def traces(db, customer, lead, key):
    """Independent SQL: every row of the subject in both schemas, per table."""
    checks = {
        "public.customers": "SELECT count(*) FROM public.customers WHERE id::text = %(c)s",
        "public.vehicles": "SELECT count(*) FROM public.vehicles WHERE customer_id::text = %(c)s",
        "public.appointments": "SELECT count(*) FROM public.appointments WHERE customer_id::text = %(c)s "
                               "OR lead_id::text = %(l)s",
        "public.leads": "SELECT count(*) FROM public.leads WHERE id::text = %(l)s",
        "public.chat_messages": "SELECT count(*) FROM public.chat_messages WHERE kunde_id = %(k)s",
        "public.analytics_events": "SELECT count(*) FROM public.analytics_events WHERE kunde_id = %(k)s",
        "public.consent_log": "SELECT count(*) FROM public.consent_log WHERE kunde_id = %(k)s",
        "public.audit_logs": "SELECT count(*) FROM public.audit_logs WHERE entity_id IN (%(c)s, %(l)s) "
                             "AND (changes IS NOT NULL OR ip_address IS NOT NULL)",
        "carbot_v2.customers": "SELECT count(*) FROM carbot_v2.customers WHERE id::text = %(c)s",
        "carbot_v2.customer_vehicles": "SELECT count(*) FROM carbot_v2.customer_vehicles "
                                       "WHERE customer_id::text = %(c)s",
        "carbot_v2.appointments": "SELECT count(*) FROM carbot_v2.appointments WHERE customer_id::text = %(c)s "
                                  "OR lead_id::text = %(l)s",
        "carbot_v2.leads": "SELECT count(*) FROM carbot_v2.leads WHERE id::text = %(l)s",
        "carbot_v2.chat_sessions": "SELECT count(*) FROM carbot_v2.chat_sessions WHERE client_key = %(k)s",
        "carbot_v2.analytics_events": "SELECT count(*) FROM carbot_v2.analytics_events WHERE client_key = %(k)s",
        "carbot_v2.consent_log": "SELECT count(*) FROM carbot_v2.consent_log WHERE client_key = %(k)s",
        "carbot_v2.audit_logs": "SELECT count(*) FROM carbot_v2.audit_logs WHERE entity_id IN (%(c)s, %(l)s) "
                                "AND (changes IS NOT NULL OR ip_address IS NOT NULL)",
    }
    args = {"c": customer, "l": lead, "k": key}
    return {name: db.scalar(query, args) for name, query in checks.items()}


# ------------------------------------------------------------------------------- verify
def test_verify_figures_match_independent_sql(migrated, tmp_path):
    result = run_module("gdpr", migrated, tmp_path, action="verify")
    assert result["rc"] == 0 and result["changed"] is False
    res = result["verify"]
    assert res["ok"] is True, res["failures"]
    pairs = (("customers", "marketing_consent", "gdpr_consent_given"), ("leads", "consent_given", "consent_given"),
             ("consent_log", "granted", "granted"))
    for table, lcol, tcol in pairs:
        for side, schema, col in (("legacy", "public", lcol), ("target", "carbot_v2", tcol)):
            t, f, n = migrated.query(
                "SELECT count(*) FILTER (WHERE %s), count(*) FILTER (WHERE NOT %s), "
                "count(*) FILTER (WHERE %s IS NULL) FROM %s.%s" % (col, col, col, schema, table))[0]
            assert res["consent"][table][side] == {"true": t, "false": f, "null": n}, (table, side)
        assert res["consent"][table]["fabricated"] == 0 and res["consent"][table]["null_changed"] == 0
    for table in ("audit_logs", "consent_log"):
        legacy = migrated.scalar("SELECT count(*) FROM public.%s" % table)
        assert res["trail"][table]["legacy"] == res["trail"][table]["target"] == legacy
    done = migrated.scalar("SELECT count(*) FROM public.gdpr_requests WHERE request_type = 'erasure' "
                           "AND status = 'done'")
    assert res["erasure_requests"]["done_erasure_requests"] == done
    checks = {v["check"]: v["ok"] for v in result["carbot_report"]["validation"]}
    assert checks == {"gdpr: consent customers": True, "gdpr: consent leads": True, "gdpr: consent consent_log": True,
                      "gdpr: audit_logs complete": True, "gdpr: consent_log complete": True,
                      "gdpr: erasure requests done": True}


def test_verify_finds_fabricated_consent_incomplete_trail_and_undone_erasure(copy, tmp_path):
    never_asked = copy.scalar("SELECT t.id::text FROM carbot_v2.customers t JOIN public.customers s ON s.id = t.id "
                              "WHERE s.marketing_consent IS NULL ORDER BY t.id LIMIT 1")
    copy.query("UPDATE carbot_v2.customers SET gdpr_consent_given = true WHERE id = %s", (never_asked,))
    copy.query("DELETE FROM carbot_v2.audit_logs WHERE id = (SELECT min(id) FROM carbot_v2.audit_logs)")
    email = copy.scalar("SELECT email FROM public.customers WHERE email LIKE '%%@%%.%%' ORDER BY id LIMIT 1")
    copy.query("INSERT INTO public.gdpr_requests (id, requester_email, request_type, status, requested_at) "
               "VALUES (gen_random_uuid(), upper(%s) || ' ', 'erasure', 'done', now())", (email,))
    result = run_module("gdpr", copy, tmp_path, action="verify", fail_on_findings=True)
    assert result["failed"] is True
    res = result["verify"]
    customers = res["consent"]["customers"]
    assert customers["fabricated"] == 1 and customers["null_changed"] == 1 and customers["ok"] is False
    assert res["trail"]["audit_logs"]["missing"] == 1 and res["trail"]["audit_logs"]["ok"] is False
    assert res["trail"]["consent_log"]["ok"] is True
    erasures = res["erasure_requests"]
    assert erasures["with_remaining_data"] == 1
    assert erasures["rows_remaining"]["public.customers"] >= 1
    assert erasures["rows_remaining"]["carbot_v2.customers"] >= 1
    assert email.strip().lower() not in json.dumps(result).lower()
    assert len(res["failures"]) == 3


# ------------------------------------------------------------------------------- retention
def test_retention_dry_run_then_run_with_sync(copy, tmp_path):
    install_sync(copy)
    expected = {}
    for schema in ("public", "carbot_v2"):
        expected[schema] = copy.query(
            "SELECT count(*) FILTER (WHERE created_at < %%(ref)s::timestamptz - interval '395 days'), "
            "count(*) FILTER (WHERE created_at < %%(ref)s::timestamptz - interval '90 days' "
            "AND ip_address IS NOT NULL) "
            "FROM %s.analytics_events" % schema, {"ref": REFERENCE})[0]
        expected[schema + ".audit"] = copy.scalar(
            "SELECT count(*) FROM %s.audit_logs WHERE created_at < %%(ref)s::timestamptz - interval '90 days' "
            "AND ip_address IS NOT NULL" % schema, {"ref": REFERENCE})
    assert expected["public"][0] > 0 and expected["public.audit"] > 0
    total = copy.scalar("SELECT count(*) FROM public.analytics_events")
    dry = run_module("gdpr", copy, tmp_path, action="retention", reference_time=REFERENCE, dry_run=True)
    assert dry["changed"] is False
    tables = dry["retention"]["tables"]
    assert tables["public.analytics_events"] == {"expired_rows": expected["public"][0],
                                                 "old_ip_addresses": expected["public"][1]}
    assert tables["carbot_v2.analytics_events"] == {"expired_rows": expected["carbot_v2"][0],
                                                    "old_ip_addresses": expected["carbot_v2"][1]}
    assert tables["public.audit_logs"] == {"old_ip_addresses": expected["public.audit"]}
    assert copy.scalar("SELECT count(*) FROM public.analytics_events") == total  # nothing deleted
    run = run_module("gdpr", copy, tmp_path, action="retention", reference_time=REFERENCE, batch_size=500)
    assert run["changed"] is True
    tables = run["retention"]["tables"]
    assert tables["public.analytics_events"]["deleted"] == expected["public"][0]
    assert tables["public.audit_logs"]["ip_addresses_cleared"] == expected["public.audit"]
    # the sync carried the legacy deletes and updates: the target pass found nothing left
    assert tables["carbot_v2.analytics_events"]["expired_rows"] == 0
    assert tables["carbot_v2.audit_logs"]["old_ip_addresses"] == 0
    for schema in ("public", "carbot_v2"):
        assert copy.scalar("SELECT count(*) FROM %s.analytics_events WHERE created_at < %%s::timestamptz "
                           "- interval '395 days'" % schema, (REFERENCE,)) == 0
        assert copy.scalar("SELECT count(*) FROM %s.audit_logs WHERE created_at < %%s::timestamptz "
                           "- interval '90 days' AND ip_address IS NOT NULL" % schema, (REFERENCE,)) == 0
    assert copy.scalar("SELECT count(*) FROM public.analytics_events") == total - expected["public"][0]


# ------------------------------------------------------------------------------- erasure
def test_erase_with_sync_active_is_proven_gone_from_both_schemas(copy, tmp_path):
    install_sync(copy)
    email, customer, lead, key = subject(copy)
    before = traces(copy, customer, lead, key)
    assert before["public.customers"] == before["carbot_v2.customers"] == 1
    assert before["carbot_v2.chat_sessions"] >= 1 and before["carbot_v2.analytics_events"] >= 1
    request = copy.scalar("INSERT INTO public.gdpr_requests (id, requester_email, request_type, status, requested_at) "
                          "VALUES (gen_random_uuid(), %s, 'erasure', 'in_progress', now()) RETURNING id::text",
                          (email.upper(),))
    dry = run_module("gdpr", copy, tmp_path, action="erase", email=email, dry_run=True)
    assert dry["erase"]["legacy"]["customers"] == 1 and dry["erase"]["legacy"]["leads"] >= 1
    assert traces(copy, customer, lead, key) == before  # the dry run changed nothing
    result = run_module("gdpr", copy, tmp_path, action="erase", email="  %s " % email.upper(), request_id=request)
    assert result["rc"] == 0, result["msg"]
    erase = result["erase"]
    assert erase["sync_active"] is True and "customers" in erase["sync_triggers"]
    assert erase["sync_propagated"] is True and erase["target_direct"] is False and erase["target"] == {}
    assert erase["gone"] is True and erase["remaining"] == {}
    assert erase["legacy"]["customers"] == 1
    assert erase["legacy"]["chat_messages"] == before["public.chat_messages"]
    assert erase["legacy"]["analytics_events"] == before["public.analytics_events"]
    assert erase["request_marked_done"] is True
    assert copy.scalar("SELECT status FROM public.gdpr_requests WHERE id::text = %s", (request,)) == "done"
    assert set(traces(copy, customer, lead, key).values()) == {0}
    text = json.dumps(result).lower()
    assert email not in text and key.lower() not in text
    # and the verification agrees: the request marked done has no data left
    verify = run_module("gdpr", copy, tmp_path, action="verify")
    assert verify["verify"]["erasure_requests"]["with_remaining_data"] == 0


def test_erase_without_sync_deletes_in_both_schemas_directly(copy, tmp_path):
    email, customer, lead, key = subject(copy)
    result = run_module("gdpr", copy, tmp_path, action="erase", kunde_id=key, email=email)
    erase = result["erase"]
    assert erase["sync_active"] is False and erase["sync_propagated"] is None and erase["target_direct"] is True
    assert erase["target"]["customers"] == 1 and erase["target"]["chat_sessions"] >= 1
    assert erase["gone"] is True
    assert set(traces(copy, customer, lead, key).values()) == {0}


def test_erase_in_check_mode_counts_only(copy, tmp_path):
    email, customer, lead, key = subject(copy)
    before = traces(copy, customer, lead, key)
    result = run_module("gdpr", copy, tmp_path, check_mode=True, action="erase", email=email)
    assert result["changed"] is True and result["erase"]["gone"] is None
    assert result["erase"]["target"]["customers"] == 1
    assert traces(copy, customer, lead, key) == before


def test_erase_unknown_subject_changes_nothing(migrated, tmp_path):
    result = run_module("gdpr", migrated, tmp_path, action="erase", email="nobody@nowhere.invalid")
    assert result["changed"] is False and result["msg"].startswith("erase: no data found for the subject")
    missing = run_module("gdpr", migrated, tmp_path, action="erase")
    assert missing["failed"] is True and "email" in missing["msg"]
