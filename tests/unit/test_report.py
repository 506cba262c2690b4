"""The migration report's pure functions: merging module parts and the write-freeze windows."""

import re

from ansible_collections.carbot.migration.plugins.module_utils import report


def _report():
    return report.new_report({"playbook": "cutover.yml", "status": "ok"})


def test_parts_merge_lists_extend_and_tables_merge():
    r = _report()
    report.merge(r, {"tables": {"leads": {"source": 10, "migrated": 9, "quarantined": 1}},
                     "validation": [{"check": "counts", "ok": True}]})
    report.merge(r, {"tables": {"leads": {"checksum_ok": True}}, "validation": [{"check": "checksums", "ok": False}]})
    assert r["tables"]["leads"] == {"source": 10, "migrated": 9, "quarantined": 1, "checksum_ok": True}
    assert [v["check"] for v in r["validation"]] == ["counts", "checksums"]
    md = report.to_markdown(r)
    assert "| leads | 10 | 9 | 1 | yes | equal |" in md
    assert "| checksums | FAILED |" in md


def test_an_unbalanced_table_is_shown_as_such():
    r = _report()
    report.merge(r, {"tables": {"customers": {"source": 10, "migrated": 8, "quarantined": 1}}})
    assert "| customers | 10 | 8 | 1 | no |" in report.to_markdown(r)
    assert '<span class="bad">NO</span>' in report.to_html(r)


def test_each_on_off_pair_is_one_freeze_window():
    r = _report()
    events = [(100.0, "maintenance on"), (103.0, "search_path switched"), (107.5, "maintenance off"),
              (200.0, "maintenance on"), (206.0, "maintenance off"), (300.0, "maintenance on")]
    report.merge(r, {"freeze": {"events": [{"at": at, "label": label} for at, label in reversed(events)]}})
    assert report.freeze_windows(r) == [7.5, 6.0]  # the last 'on' has no 'off' yet: not a window
    assert report.freeze_window(r) == 7.5
    # every window's figure in the header, not one figure for several windows
    assert "write freeze (maintenance on to off): **7.5 s, 6.0 s (2 windows, longest 7.5 s)**" in report.to_markdown(r)
    html = report.to_html(r)
    assert '<strong id="freeze-window">7.5 s, 6.0 s (2 windows, longest 7.5 s)</strong>' in html
    # one chart per window, each with its own steps; the 92.5 s gap between the windows is no bar
    charts = re.findall(r"<svg.*?</svg>", html)
    freeze = [c for c in charts if "Write freeze" in c]
    assert len(freeze) == 2
    assert 'aria-label="Write freeze 1 of 2: 7.5 s (seconds from maintenance on)"' in freeze[0]
    assert 'aria-label="Write freeze 2 of 2: 6.0 s (seconds from maintenance on)"' in freeze[1]
    assert len(re.findall(r"<rect ", freeze[0])) == 2 and len(re.findall(r"<rect ", freeze[1])) == 1
    assert "92.50 s" not in html and "94.00 s" not in html


def test_a_failed_run_says_why_and_where_at_the_top():
    r = _report()
    r["run"].update(status="failed", failed_task="Switch the search_path (Cut CarBot over)",
                    failed_reason="cannot connect to carbot as postgres: password authentication failed")
    report.merge(r, {"tables": {"customers": {"source": 10, "migrated": 9, "quarantined": 1}}})
    md = report.to_markdown(r)
    assert md.splitlines()[2] == ("**FAILED at Switch the search_path (Cut CarBot over)**: cannot connect to carbot as "
                                  "postgres: password authentication failed")
    html = report.to_html(r)
    assert html.index('id="failure"') < html.index("<h2")
    assert "password authentication failed" in html


def test_extra_sections_are_tables_not_json():
    r = _report()
    report.merge(r, {"assessment": {"verdict": "go", "tables": {"customers": {"rows": 2000, "bytes": 8192},
                                                                "leads": {"rows": 500, "bytes": 4096}}},
                     "gdpr: retention": {"dry_run": True, "tables": {"analytics_events": {"expired_rows": 3}}}})
    md = report.to_markdown(r)
    assert "```json" not in md
    assert "| name | rows | bytes |" in md and "| customers | 2000 | 8192 |" in md
    assert "| verdict | go |" in md
    html = report.to_html(r)
    assert "<pre>" not in html
    assert "<td>customers</td>" in html and "<th>rows</th>" in html


def test_text_from_the_database_is_escaped_in_html():
    r = _report()
    report.merge(r, {"tables": {"<script>": {"source": 1, "migrated": 1, "quarantined": 0,
                                             "reasons": {"<b>x</b>": 1}}}})
    html = report.to_html(r)
    assert "<script>" not in html and "&lt;script&gt;" in html
