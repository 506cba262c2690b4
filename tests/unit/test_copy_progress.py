"""The progress table of the copy follow (module_utils/copy_progress.py): copy order, overall total,
rate and ETA from the first round, finished tables at 100 % with their quarantined rows."""

from ansible_collections.carbot.migration.plugins.module_utils import copy_progress, mapping


def rec(table, state, done, total, rate=0.0, eta=None):
    return {"table": table, "state": state, "rows_done": done, "rows_total": total, "rows_per_second": rate,
            "eta_seconds": eta, "last_error": None}


def test_tables_are_listed_in_copy_order():
    order = copy_progress.copy_order()
    assert sorted(order) == sorted(d["target"] for d in mapping.TABLES)
    assert order.index("organizations") < order.index("workshops") < order.index("customers")
    records = [rec(t, "pending", 0, 10) for t in sorted(order)]
    lines = copy_progress.format_lines(records, copy_progress.Tracker().update(records, 0.0), order=order)
    assert [line.split()[0] for line in lines[2:]] == order


def test_a_finished_table_with_quarantined_rows_is_at_100_percent():
    # 990 migrated + 10 quarantined = 1000 done, the estimate said 1010
    records = [rec("customers", "copied", 1000, 1010, 5000.0, 0)]
    overall = copy_progress.Tracker().update(records, 0.0)
    assert overall["percent"] == 100.0 and overall["rows_total"] == 1000
    assert "1,000 / 1,000   100%" in copy_progress.format_lines(records, overall)[2]


def test_rate_and_eta_are_right_from_the_first_round():
    # following a job left running: two tables copying at 1000 and 3000 rows/s, 40000 rows left
    records = [rec("organizations", "copied", 10, 10), rec("customers", "copying", 10000, 30000, 1000.0),
               rec("leads", "copying", 0, 20000, 3000.0), rec("invoices", "pending", 0, 0)]
    overall = copy_progress.Tracker().update(records, 100.0)
    assert overall["rows_per_second"] == 4000.0
    assert overall["eta_seconds"] == 10.0
    assert overall["rows_done"] == 10010 and overall["rows_total"] == 50010
    line = copy_progress.format_lines(records, overall, elapsed=5)[0]
    assert line.startswith("copy: 10,010 / 50,010 rows (20.0 %), 4,000 rows/s, ETA 10s, elapsed 5s")


def test_the_rate_is_then_measured_by_the_follower():
    tracker = copy_progress.Tracker()
    tracker.update([rec("customers", "copying", 0, 10000, 50.0)], 0.0)
    overall = tracker.update([rec("customers", "copying", 4000, 10000, 50.0)], 2.0)
    assert overall["rows_per_second"] == 2000.0 and overall["eta_seconds"] == 3.0
