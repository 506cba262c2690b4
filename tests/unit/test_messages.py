"""Long key lists are cut to a count and a few examples (issue 15: one 361 KB line before a copy)."""

from ansible_collections.carbot.migration.plugins.module_utils import messages


def prepared_not_copied_report(tables=27, rows=5000, max_keys=1000):
    """What the validator returns when carbot_v2 exists and is empty: every row missing in every table."""
    recs, failures = {}, []
    for i in range(tables):
        keys = [(str(k),) for k in range(min(rows, max_keys))]
        recs["table_%02d" % i] = {"ok": False, "rows": 0, "missing": rows, "extra": 0, "different": 0,
                                  "missing_keys": keys, "extra_keys": [], "different_keys": [], "differing_chunks": 9}
        failures.append("table_%02d: %d missing in target: %s (+%d more)" % (
            i, rows, ", ".join(k[0] for k in keys), rows - len(keys)))
    return {"failed": True, "failed_checks": ["counts", "checksums"],
            "checks": {"counts": {"ok": False, "failures": ["table_%02d: %d rows != 0" % (i, rows)
                                                            for i in range(tables)]},
                       "checksums": {"ok": False, "failures": failures, "tables": recs}},
            "msg": "Validation failed (counts, checksums): " + "; ".join(failures)}


def test_a_prepared_but_not_copied_database_is_said_in_a_short_line():
    report = prepared_not_copied_report()
    assert len(report["msg"]) > 100000  # what was printed before
    msg = messages.validation_summary(report)
    assert len(msg) < 2000, len(msg)
    assert "5000 missing in target (e.g. 0, 1, 2 (+4997 more))" in msg
    assert msg.count("+23 more") == 2  # 27 tables per check, 4 shown each
    assert msg.startswith("Validation failed (counts, checksums): counts: table_00: 5000 rows != 0")
    assert "checksums: table_00: 5000 missing in target" in msg


def test_short_lists_stay_whole():
    assert messages.examples(["a", "b"]) == "a, b"
    assert messages.examples([("1", "x")], total=1) == "1/x"
    assert messages.lines_summary(["x" * 500]).endswith("(200 characters cut)")


def test_a_passed_validation_keeps_its_message():
    assert messages.validation_summary({"failed_checks": [], "msg": "Validation passed: counts"}) == \
        "Validation passed: counts"
