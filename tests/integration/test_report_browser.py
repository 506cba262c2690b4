"""The migration report renders in a real browser (Debian's chromium, headless), chart included,
and a report written by the callback after real playbook runs holds every table.

chromium comes from the system packages (scripts/install-system-deps.sh); without it the browser
tests are skipped with the reason.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping
from ansible_collections.carbot.migration.plugins.module_utils import report as report_lib
from test_assess import migrated_database

REPO = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; "
                                                              "scripts/install-system-deps.sh installs it)")
T0 = 1761955200.0


def realistic_report():
    """A report as a cutover run builds it: every section, freeze events, criteria, module parts."""
    report = report_lib.new_report({"playbook": "cutover.yml", "started": T0, "finished": T0 + 1912.4,
                                    "seconds": 1912.4, "status": "ok", "environment": "staging"})
    steps = [("Preflight and assessment", 0, 21.3), ("Prepare carbot_v2", 21.3, 25.0),
             ("Copy every table", 25.0, 1480.2), ("Validate", 1480.2, 1790.7), ("Cutover", 1790.7, 1905.1),
             ("Performance tests", 1905.1, 1912.4)]
    for name, start, end in steps:
        report["steps"].append({"name": name, "start": T0 + start, "end": T0 + end, "seconds": end - start,
                                "status": "ok"})
    tables = {}
    for i, decl in enumerate(mapping.TABLES):
        source = 1000 * (i + 1)
        quarantined = (i * 7) % 23
        tables[decl["target"]] = {"source": source, "migrated": source - quarantined, "quarantined": quarantined,
                                  "reasons": {"orphan: workshop_id not found": quarantined} if quarantined else {},
                                  "checksum_ok": True}
    report_lib.merge(report, {"tables": tables})
    report_lib.merge(report, {"validation": [{"check": "counts", "ok": True, "message": "27 tables balanced"},
                                             {"check": "checksums", "ok": True, "message": "all chunks equal"},
                                             {"check": "quality", "ok": False,
                                              "message": "customers.email: 3 invalid"}]})
    for offset, label in ((1790.7, "maintenance on"), (1792.1, "sync drained"), (1795.9, "search_path switched"),
                          (1797.4, "app restarted"), (1801.0, "maintenance off")):
        report_lib.merge(report, {"freeze": {"events": [{"at": T0 + offset, "label": label, "ok": True}]}})
    report_lib.merge(report, {"criteria": [
        {"name": "critical queries at least 50% faster", "target": ">= 50%", "value": 64.1, "unit": "percent",
         "met": True, "detail": "dashboard: 0.907 ms -> 0.032 ms"},
        {"name": "database at least 20% smaller", "target": ">= 20%", "value": -36.6, "unit": "percent", "met": False,
         "detail": "legacy 58802176 bytes, carbot_v2 80306176 bytes"},
        {"name": "index usage of the critical queries above 90%", "target": "> 90%", "value": 100.0,
         "unit": "percent", "met": True, "detail": "848 index, 0 sequential scans"}],
        "notes": ["Assessment verdict GO"], "assessment": {"verdict": "go", "tables": {"customers": {"rows": 2000}}}})
    return report


def chromium(*args, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--user-data-dir=%s" % (tmp_path / "profile")] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@needs_chromium
def test_html_renders_with_tables_and_the_freeze_chart(tmp_path):
    report = realistic_report()
    html_path = tmp_path / "report.html"
    html_path.write_text(report_lib.to_html(report))
    dom = chromium("--dump-dom", html_path.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    # the browser parsed the document: the tables and both SVG charts are in the DOM
    for table_id in ("tables", "validation", "criteria", "steps"):
        assert 'id="%s"' % table_id in text
    for decl in mapping.TABLES:
        assert "<td>%s</td>" % decl["target"] in text
    assert len(re.findall(r"<svg[^>]*class=\"chart\"", text)) == 2
    assert 'aria-label="Write freeze: 10.3 s (seconds from maintenance on)"' in text
    assert len(re.findall(r"<rect ", text)) == 4 + 6  # 4 freeze intervals, 6 steps
    assert '<strong id="freeze-window">10.3 s</strong>' in text
    assert "maintenance off at 10.3 s" in text  # the end of the freeze is marked on the chart
    assert "NOT met" in text and "-36.60 %" in text
    # a screenshot: a real rendering, large enough to hold the page
    png = tmp_path / "report.png"
    shot = chromium("--screenshot=%s" % png, "--window-size=1280,2000", "--hide-scrollbars", html_path.as_uri(),
                    tmp_path=tmp_path)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50000
    keep = os.environ.get("CARBOT_REPORT_SCREENSHOT")
    if keep:  # to look at it: CARBOT_REPORT_SCREENSHOT=/tmp/report.png pytest -k renders
        shutil.copy(png, keep)


def test_markdown_and_json_twins_hold_the_same_sections():
    report = realistic_report()
    md = report_lib.to_markdown(report)
    for heading in ("## Steps", "## Tables", "## Validation", "## Success criteria", "## Write-freeze timeline",
                    "## assessment"):
        assert heading in md
    assert "| database at least 20% smaller | >= 20% | -36.60 % | NOT met |" in md
    assert json.loads(json.dumps(report, default=str))["tables"].keys() == report["tables"].keys()


# ------------------------------------------------------------------------------- a real run
@pytest.fixture(scope="module")
def migrated(make_database):
    return migrated_database(make_database, "report")


def run_playbook(playbook, db, reports, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), CARBOT_REPORTS_DIR=str(reports),
               CARBOT_DB_PORT=str(db.port), ANSIBLE_FORCE_COLOR="0",
               PATH="%s:%s" % (pathlib.Path(sys.executable).parent, os.environ.get("PATH", "")))
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(REPO / "playbooks" / playbook),
           "-i", str(REPO / "inventories" / "local"), "-e", "carbot_db_name=%s" % db.dbname,
           "-e", "carbot_db_password=%s" % db.password, "-e", "carbot_db_user=%s" % db.user,
           "-e", "carbot_backup_dir=%s" % (reports / "backups")] + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=900)


@pytest.mark.slow
def test_reports_of_real_runs_hold_every_table(migrated, tmp_path):
    reports = tmp_path / "reports"
    runs = {}
    for playbook, extra in (("assess.yml", ["-e", "assess_baseline_path=%s/" % (tmp_path / "baselines")]),
                            ("performance.yml", ["-e", "performance_runs=1", "-e", "performance_sample_size=2"]),
                            ("gdpr.yml", ["-e", "gdpr_retention_reference_time=2025-11-01T00:00:00Z"])):
        proc = run_playbook(playbook, migrated, reports, *extra)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        # the end-of-run summary says where the report is
        match = re.search(r"report: (\S+report\.html)", proc.stdout)
        assert match, proc.stdout[-2000:]
        runs[playbook] = pathlib.Path(match.group(1)).parent
        assert migrated.password not in proc.stdout
    for directory in runs.values():
        for name in ("report.json", "report.md", "report.html"):
            assert (directory / name).stat().st_size > 0
    assess = json.loads((runs["assess.yml"] / "report.json").read_text())
    assert sorted(assess["sections"]["assessment"]["tables"]) == sorted(mapping.LEGACY_TABLES)
    assert assess["sections"]["assessment"]["verdict"] == "go"
    assert len([v for v in assess["validation"] if v["check"].startswith("preflight: ")]) == 6
    html = (runs["assess.yml"] / "report.html").read_text()
    for table in mapping.LEGACY_TABLES:
        assert "<td>%s</td>" % table in html  # a row of the section's table, not JSON
    perf = json.loads((runs["performance.yml"] / "report.json").read_text())
    assert [c["met"] in (True, False) for c in perf["criteria"]] == [True, True, True]
    assert {"dashboard", "appointments", "sizes"} <= set(perf["sections"]["performance"])
    sizes = perf["sections"]["performance"]["table_sizes"]
    assert sorted(sizes["legacy"]) == sorted(mapping.LEGACY_TABLES)
    assert set(sizes["target"]) == {t["target"] for t in mapping.TABLES}
    gdpr = json.loads((runs["gdpr.yml"] / "report.json").read_text())
    assert {v["check"] for v in gdpr["validation"]} >= {"gdpr: consent customers", "gdpr: audit_logs complete"}
    assert gdpr["sections"]["gdpr: retention"]["dry_run"] is True
