"""The migration report's pure functions: merging module parts and the write-freeze windows."""

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
    assert "write freeze (maintenance on to off): **7.5 s** (windows: 7.5 s, 6.0 s)" in report.to_markdown(r)
    assert "<svg" in report.to_html(r)


def test_text_from_the_database_is_escaped_in_html():
    r = _report()
    report.merge(r, {"tables": {"<script>": {"source": 1, "migrated": 1, "quarantined": 0,
                                             "reasons": {"<b>x</b>": 1}}}})
    html = report.to_html(r)
    assert "<script>" not in html and "&lt;script&gt;" in html
