"""carbot.migration.performance on the real pipeline: figures checked against independent SQL.

Speed figures are reported, never asserted (README, "Tests"): the tests check that each criterion's
verdict follows from its measured figure, that sizes and row counts agree with independent SQL, and that
a missing index turns the index-usage criterion into NOT met.
"""

import datetime

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import performance
from test_assess import clone, migrated_database, run_module

EXCLUDED = performance.EXCLUDED_TARGET_TABLES


@pytest.fixture(scope="module")
def migrated(make_database):
    return migrated_database(make_database, "perf")


def schema_bytes(db, schema, exclude=()):
    return db.scalar("SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
                     "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r' "
                     "AND c.relname <> ALL(%s)", (schema, list(exclude)))


def test_queries_plans_sizes_and_criteria(migrated, tmp_path):
    result = run_module("performance", migrated, tmp_path, runs=2, sample_size=3)
    assert result["rc"] == 0, result.get("msg")
    assert len(result["workshops"]) == 3
    # the busiest workshop (most leads in carbot_v2) is always in the sample
    busiest = migrated.scalar("SELECT workshop_id::text FROM carbot_v2.leads GROUP BY 1 ORDER BY count(*) DESC, 1 "
                              "LIMIT 1")
    assert busiest in result["workshops"]
    since = datetime.datetime.fromisoformat(result["period"]["since"])
    until = datetime.datetime.fromisoformat(result["period"]["until"])
    assert (until - since).days == 90
    dash = result["queries"]["dashboard"]
    # rows: the dashboard returns one row per workshop on both sides; the appointments query as many as
    # independent SQL finds in the period (legacy counts all, the target the migrated ones)
    assert dash["rows"] == {"legacy": 3, "target": 3}
    appts = result["queries"]["appointments"]
    for side, schema, col in (("legacy", "public", "appointment_date"), ("target", "carbot_v2", "scheduled_date")):
        expected = migrated.scalar(
            "SELECT count(*) FROM %s.appointments WHERE workshop_id::text = ANY(%%s) AND %s >= %%s::date "
            "AND %s < %%s::date" % (schema, col, col), (result["workshops"], since, until))
        assert appts["rows"][side] == expected
    # plan shapes: the legacy schema has no index on leads.workshop_id, carbot_v2 has a covering one
    assert dash["legacy"]["plans"][0]["seq_scans"] == ["leads"]
    target_plan = dash["target"]["plans"][0]
    assert target_plan["index_scans"] == ["leads"] and target_plan["seq_scans"] == []
    assert any(k.endswith("using leads_workshop_captured_idx") for k in target_plan["scans"]["leads"])
    assert dash["legacy"]["samples"] == dash["target"]["samples"] == 6
    # index usage: counted from the measuring transaction (warm-up included: 3 workshops x 3 runs)
    assert dash["target"]["table_scans"]["leads"] == {"seq_scan": 0, "idx_scan": 9}
    assert dash["legacy"]["table_scans"]["leads"] == {"seq_scan": 9, "idx_scan": 0}
    # sizes agree with independent sums; the migration's own tables are left out of carbot_v2's size
    assert result["sizes"]["legacy"]["total_bytes"] == schema_bytes(migrated, "public")
    assert result["sizes"]["target"]["total_bytes"] == schema_bytes(migrated, "carbot_v2", EXCLUDED)
    assert set(result["table_sizes"]["target"]).isdisjoint(EXCLUDED)
    # every criterion: measured, and its verdict follows from its figure
    crit = {c["name"]: c for c in result["criteria"]}
    speed = crit["critical queries at least 50% faster"]
    gains = [performance.percent_less(q["target"]["median_ms"], q["legacy"]["median_ms"])
             for q in result["queries"].values()]
    assert speed["value"] == min(gains) and speed["met"] is (min(gains) >= 50)
    size = crit["database at least 20% smaller"]
    expected = round(100.0 * (1 - schema_bytes(migrated, "carbot_v2", EXCLUDED) / schema_bytes(migrated, "public")), 1)
    assert size["value"] == expected and size["met"] is (expected >= 20)
    usage = crit["index usage of the critical queries above 90%"]
    seq = sum(q["target"]["seq_scans"] for q in result["queries"].values())
    idx = sum(q["target"]["index_scans"] for q in result["queries"].values())
    assert usage["value"] == round(100.0 * idx / (seq + idx), 1) and usage["met"] is (usage["value"] > 90)
    assert result["all_met"] is all(c["met"] is True for c in result["criteria"])
    # the report gets the three criteria, verbatim
    assert [c["name"] for c in result["carbot_report"]["criteria"]] == [c["name"] for c in result["criteria"]]
    assert result["carbot_report"]["performance"]["dashboard"]["target_plan"] == dash["target"]["plans"][0]["scans"]


def test_without_the_index_the_criterion_is_not_met(migrated, tmp_path):
    db = clone(migrated, "perfnoidx")
    for index in ("leads_workshop_captured_idx", "leads_workshop_created_idx", "leads_workshop_status_idx",
                  "leads_workshop_client_key_idx"):
        db.query("DROP INDEX carbot_v2.%s" % index)
    result = run_module("performance", db, tmp_path, runs=1, sample_size=2, queries=["dashboard"],
                        fail_on_unmet=True)
    assert result["failed"] is True  # fail_on_unmet, with every figure still in the result
    usage = [c for c in result["criteria"] if c["name"].startswith("index usage")][0]
    assert usage["value"] == 0.0 and usage["met"] is False
    assert result["queries"]["dashboard"]["target"]["plans"][0]["seq_scans"] == ["leads"]
    assert "index usage of the critical queries above 90%: NOT met (0.0%)" in result["msg"]


def test_an_unreachable_target_is_never_a_pass(migrated, tmp_path):
    result = run_module("performance", migrated, tmp_path, runs=1, sample_size=1, speedup_target=1e9,
                        size_reduction_target=1e9)
    crit = {c["name"]: c for c in result["criteria"]}
    assert crit["critical queries at least 1e+09% faster"]["met"] is False
    assert crit["database at least 1e+09% smaller"]["met"] is False
    assert result["all_met"] is False


def test_criteria_without_figures_are_not_measured():
    empty = {"median_ms": None, "seq_scans": 0, "index_scans": 0, "index_usage_percent": None}
    results = {"dashboard": {"legacy": dict(empty, median_ms=3.0), "target": dict(empty)}}
    sizes = {"legacy": {"total_bytes": 100, "data_bytes": 80, "index_bytes": 20},
             "target": {"total_bytes": 0, "data_bytes": 0, "index_bytes": 0}}
    crit = performance.criteria(results, sizes)
    assert [c["met"] for c in crit] == [None, None, None]
    assert [c["value"] for c in crit] == [None, None, None]


def test_plan_shape_attributes_bitmap_index_scans_to_their_table():
    plan = {"Node Type": "Sort", "Plans": [{"Node Type": "Nested Loop", "Plans": [
        {"Node Type": "Bitmap Heap Scan", "Relation Name": "appointments", "Plans": [
            {"Node Type": "Bitmap Index Scan", "Index Name": "appointments_workshop_date_idx"}]},
        {"Node Type": "Seq Scan", "Relation Name": "customers"}]}]}
    shape = performance.plan_shape(plan)
    assert shape["scans"] == {"appointments": ["Bitmap Heap Scan", "Bitmap Index Scan using "
                                               "appointments_workshop_date_idx"], "customers": ["Seq Scan"]}
    assert shape["seq_scans"] == ["customers"] and shape["index_scans"] == ["appointments"]
