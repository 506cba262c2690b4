# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration report: one JSON document, rendered as Markdown and as one self-contained HTML file.

Modules add to the report by returning a ``carbot_report`` dict in their result (a task that runs
with ``no_log`` hands it over in a following ``ansible.builtin.set_stats`` task as
``data: {carbot_report: ...}``, because callbacks only see no_log results censored); the
``carbot.migration.migration_report`` callback merges those with the run's step timings
(see :func:`merge`) and writes ``report.json``, ``report.md`` and ``report.html``.

Known keys of ``carbot_report`` (all optional):

``tables``      {table: {source, migrated, quarantined, reasons: {reason: n}, checksum, ...}}
``validation``  [{check, ok, message}]
``freeze``      {events: [{at: epoch seconds, label}], window_seconds}
``criteria``    [{name, target, value, met (true/false/null), detail}]
``notes``       [text]
anything else   kept under ``sections`` and shown as a table of values.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import html
import json

KNOWN = ("tables", "validation", "freeze", "criteria", "notes")

# The arguments of carbot.migration.report_event (module and action plugin share them).
EVENT_ARGUMENT_SPEC = dict(
    label=dict(type="str", required=True),
    ok=dict(type="bool", default=True),
    timeline=dict(type="str", default="freeze", choices=["freeze", "notes"]),
)


def event_part(label, ok, timeline, now):
    """The ``carbot_report`` part of one report_event: a freeze-timeline event or a timestamped note."""
    if timeline == "freeze":
        return {"freeze": {"events": [{"at": now, "label": label, "ok": ok}]}}
    return {"notes": ["%s: %s" % (datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%H:%M:%S"),
                                  label)]}


def new_report(run):
    return {"run": dict(run), "steps": [], "tables": {}, "validation": [], "freeze": {}, "criteria": [],
            "notes": [], "sections": {}}


def _deep_merge(into, add):
    for key, value in add.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value
    return into


def merge(report, part, source=None):
    """Merge one module's ``carbot_report`` into ``report`` (lists extend, dicts merge)."""
    if not isinstance(part, dict):
        return report
    for key, value in part.items():
        if key in ("validation", "criteria", "notes") and isinstance(value, list):
            report[key].extend(value)
        elif key == "freeze" and isinstance(value, dict):
            freeze = report["freeze"]
            events = freeze.get("events", []) + list(value.get("events", []))
            _deep_merge(freeze, {k: v for k, v in value.items() if k != "events"})
            freeze["events"] = sorted(events, key=lambda e: e.get("at", 0))
        elif key == "tables" and isinstance(value, dict):
            _deep_merge(report["tables"], value)
        else:
            name = key if source is None else "%s: %s" % (source, key)
            report["sections"][name] = value
    return report


def _fmt_time(epoch):
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_num(value):
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: ""}[value]
    if isinstance(value, int):
        return "{:,}".format(value)
    if isinstance(value, float):
        return "{:,.2f}".format(value)
    return str(value)


def _measured(criterion):
    """The measured value with its unit (``unit: percent`` shows as %)."""
    value, unit = criterion.get("value"), criterion.get("unit")
    if value is None:
        return ""
    text = _fmt_num(value)
    if unit == "percent":
        return text + " %"
    return "%s %s" % (text, unit) if unit else text


def _verdict(met):
    return {True: "met", False: "NOT met", None: "not measured"}.get(met, str(met))


def _table_rows(report):
    rows = []
    for name in sorted(report["tables"]):
        t = report["tables"][name]
        source, migrated, quarantined = t.get("source"), t.get("migrated"), t.get("quarantined")
        balanced = None
        if isinstance(source, int) and isinstance(migrated, int) and isinstance(quarantined, int):
            balanced = source == migrated + quarantined
        reasons = ", ".join("%s (%s)" % (r, _fmt_num(n)) for r, n in sorted((t.get("reasons") or {}).items()))
        rows.append((name, source, migrated, quarantined, balanced, t.get("checksum_ok"), reasons))
    return rows


def freeze_windows(report):
    """Seconds of each write freeze: every 'maintenance on' paired with the next 'maintenance off'."""
    freeze = report.get("freeze") or {}
    windows, started = [], None
    for event in freeze.get("events") or []:
        if event.get("label") == "maintenance on" and started is None:
            started = event["at"]
        elif event.get("label") == "maintenance off" and started is not None:
            windows.append(event["at"] - started)
            started = None
    return windows


def freeze_segments(report):
    """The events of each write freeze, from its 'maintenance on' to its 'maintenance off' (both included)."""
    freeze = report.get("freeze") or {}
    segments, current = [], None
    for event in freeze.get("events") or []:
        if event.get("label") == "maintenance on" and current is None:
            current = [event]
        elif current is not None:
            current.append(event)
            if event.get("label") == "maintenance off":
                segments.append(current)
                current = None
    return segments


def _windows_text(report):
    """'6.4 s' for one window; '6.4 s, 7.1 s, 8.6 s (3 windows, longest 8.6 s)' for a rehearsal."""
    windows = freeze_windows(report)
    if not windows:
        window = freeze_window(report)
        return None if window is None else "%.1f s" % window
    if len(windows) == 1:
        return "%.1f s" % windows[0]
    return "%s (%d windows, longest %.1f s)" % (", ".join("%.1f s" % w for w in windows), len(windows), max(windows))


def freeze_window(report):
    """The write freeze of the run: the given figure, else the longest window (a rehearsal has several)."""
    freeze = report.get("freeze") or {}
    if freeze.get("window_seconds") is not None:
        return freeze["window_seconds"]
    windows = freeze_windows(report)
    return max(windows) if windows else None


def to_markdown(report):
    run = report["run"]
    out = ["# CarBot migration report: %s" % run.get("playbook", "run"), ""]
    if run.get("status") == "failed":
        out.append("**FAILED at %s**: %s" % (run.get("failed_task") or "an unknown step",
                                             run.get("failed_reason") or "no reason recorded"))
        out.append("")
    out.append("- status: **%s**" % run.get("status", "unknown"))
    if run.get("failed_task"):
        out.append("- failed at: %s" % run["failed_task"])
    if run.get("recovered_from"):
        out.append("- recovered from a failure at: %s" % run["recovered_from"])
    out.append("- inventory: %s, started %s, finished %s (%s s)" % (
        run.get("environment", "?"), _fmt_time(run.get("started")), _fmt_time(run.get("finished")),
        _fmt_num(run.get("seconds"))))
    windows_text = _windows_text(report)
    if windows_text is not None:
        out.append("- write freeze (maintenance on to off): **%s**" % windows_text)
    out.append("")
    if report["steps"]:
        out += ["## Steps", "", "| step | seconds | status |", "|---|---:|---|"]
        out += ["| %s | %.1f | %s |" % (s["name"], s["seconds"], s["status"]) for s in report["steps"]]
        out.append("")
    if report["tables"]:
        out += ["## Tables", "",
                "| table | source | migrated | quarantined | balanced | checksums | quarantine reasons |",
                "|---|---:|---:|---:|---|---|---|"]
        for name, source, migrated, quarantined, balanced, checksum, reasons in _table_rows(report):
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                name, _fmt_num(source), _fmt_num(migrated), _fmt_num(quarantined), _fmt_num(balanced),
                {True: "equal", False: "DIFFER", None: ""}[checksum], reasons))
        out.append("")
    if report["validation"]:
        out += ["## Validation", "", "| check | result | detail |", "|---|---|---|"]
        out += ["| %s | %s | %s |" % (v.get("check"), "ok" if v.get("ok") else "FAILED", v.get("message", ""))
                for v in report["validation"]]
        out.append("")
    if report["criteria"]:
        out += ["## Success criteria", "", "| criterion | target | measured | verdict | figures |",
                "|---|---|---|---|---|"]
        out += ["| %s | %s | %s | %s | %s |" % (c.get("name"), c.get("target", ""), _measured(c),
                                                _verdict(c.get("met")), c.get("detail", ""))
                for c in report["criteria"]]
        out.append("")
    events = (report.get("freeze") or {}).get("events") or []
    if events:
        out += ["## Write-freeze timeline", "", "| time | event |", "|---|---|"]
        out += ["| %s | %s |" % (_fmt_time(e.get("at")), e.get("label")) for e in events]
        out.append("")
    for name, value in sorted(report["sections"].items()):
        out += ["## %s" % name, ""] + _section_markdown(value) + [""]
    for note in report["notes"]:
        out.append("> %s" % note)
    return "\n".join(out).rstrip() + "\n"


def _cell(value):
    """A value as table cell text: scalars as they are, a short list joined, anything else as compact JSON."""
    if isinstance(value, float):
        return _fmt_num(value)
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return "" if value is None else str(value)


def _section_rows(value):
    """(columns, rows) for a section: a dict of dicts is one row per key, a list of dicts one row per item,
    a flat dict one row per key (key, value); nested dicts inside a flat dict become their own tables."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        columns = []
        for v in value.values():
            columns += [k for k in v if k not in columns]
        return ["name"] + columns, [[k] + [_cell(v.get(c)) for c in columns] for k, v in value.items()]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = []
        for v in value:
            columns += [k for k in v if k not in columns]
        return columns, [[_cell(v.get(c)) for c in columns] for v in value]
    if isinstance(value, dict):
        return ["name", "value"], [[k, _cell(v)] for k, v in value.items()]
    if isinstance(value, list):
        return ["value"], [[_cell(v)] for v in value]
    return ["value"], [[_cell(value)]]


def _section_parts(value):
    """[(title, value)]: a flat dict's nested dicts (e.g. assessment.tables) are tables of their own."""
    if isinstance(value, dict) and not all(isinstance(v, dict) for v in value.values()):
        flat = {k: v for k, v in value.items() if not isinstance(v, dict)}
        nested = [(k, v) for k, v in value.items() if isinstance(v, dict) and v]
        return ([("", flat)] if flat else []) + nested
    return [("", value)]


def _section_markdown(value):
    out = []
    for title, part in _section_parts(value):
        columns, rows = _section_rows(part)
        if title:
            out += ["### %s" % title, ""]
        out += ["| %s |" % " | ".join(columns), "|%s" % "---|" * len(columns)]
        out += ["| %s |" % " | ".join(str(c).replace("|", "\\|") for c in row) for row in rows]
        out.append("")
    return out


def _section_html(value):
    esc = html.escape
    out = []
    for title, part in _section_parts(value):
        columns, rows = _section_rows(part)
        if title:
            out.append("<h3>%s</h3>" % esc(str(title)))
        out.append('<table class="section"><tr>%s</tr>' % "".join("<th>%s</th>" % esc(str(c)) for c in columns))
        for row in rows:
            out.append("<tr>%s</tr>" % "".join(
                '<td%s>%s</td>' % (' class="n"' if isinstance(c, str) and c.replace(",", "").replace(".", "", 1)
                                   .lstrip("-").isdigit() else "", esc(str(c))) for c in row))
        out.append("</table>")
    return "".join(out)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1b1f24;max-width:1200px}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.3rem .5rem}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:700}.muted{color:#656d76}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.badge.ok{background:#1a7f37;color:#fff}.badge.bad{background:#cf222e;color:#fff}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.8rem}
"""


def _svg_bars(items, title, unit="s", width=900, end_label=None):
    """A horizontal timeline: items are (label, start, end, ok) in seconds from a common origin.

    ``end_label`` marks the end of the last item with a dashed line (e.g. "maintenance off").
    """
    if not items:
        return ""
    esc = html.escape
    total = max(item[2] for item in items) or 1.0
    row, label_w, top = 26, 260, 30
    height = top + row * len(items) + 30
    scale = (width - label_w - 20) / total
    parts = ['<svg role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" class="chart">' % (esc(title), width, height, width, height),
             '<text x="0" y="18" font-size="14" font-weight="600">%s</text>' % esc(title)]
    for i, (label, start, end, ok) in enumerate(items):
        y = top + i * row
        x = label_w + start * scale
        w = max(2.0, (end - start) * scale)
        colour = "#2da44e" if ok else "#cf222e"
        parts.append('<text x="0" y="%d" font-size="12">%s</text>' % (y + 16, esc(label[:40])))
        parts.append('<rect x="%.1f" y="%d" width="%.1f" height="18" rx="3" fill="%s"><title>%s: %.2f %s'
                     '</title></rect>' % (x, y + 3, w, colour, esc(label), end - start, unit))
        if x + w + 70 <= width:
            parts.append('<text x="%.1f" y="%d" font-size="11" fill="#656d76">%.2f %s</text>'
                         % (x + w + 4, y + 16, end - start, unit))
        else:  # no room right of the bar: put the figure left of it, never over it
            parts.append('<text x="%.1f" y="%d" font-size="11" fill="#656d76" text-anchor="end">%.2f %s</text>'
                         % (x - 4, y + 16, end - start, unit))
    axis_y = top + row * len(items) + 10
    parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#8c959f"/>' % (label_w, axis_y, width - 20, axis_y))
    parts.append('<text x="%d" y="%d" font-size="11" fill="#656d76">0</text>' % (label_w, axis_y + 14))
    parts.append('<text x="%d" y="%d" font-size="11" fill="#656d76" text-anchor="end">%.1f %s</text>'
                 % (width - 20, axis_y + 14, total, unit))
    if end_label:
        end_x = label_w + total * scale
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#cf222e" stroke-dasharray="4 3"/>'
                     % (end_x, top, end_x, axis_y))
        parts.append('<text x="%.1f" y="%d" font-size="11" fill="#cf222e" text-anchor="end">%s</text>'
                     % (end_x - 4, top - 4, esc(end_label)))
    parts.append("</svg>")
    return "".join(parts)


def _segment_chart(events, title):
    origin = events[0]["at"]
    items = []
    for here, nxt in zip(events, events[1:]):
        items.append((here.get("label", "?"), here["at"] - origin, nxt["at"] - origin, here.get("ok", True)))
    end = "%s at %.1f s" % (events[-1].get("label", "end"), events[-1]["at"] - origin)
    return _svg_bars(items, title, end_label=end)


def freeze_charts(report):
    """One chart per write freeze, each with its own steps (a rehearsal has several windows: the time between
    them is no step of any freeze and is not drawn)."""
    segments = freeze_segments(report)
    if not segments:  # no complete window (a run that failed inside it): the events as they are
        events = (report.get("freeze") or {}).get("events") or []
        if len(events) < 2:
            return []
        return [_segment_chart(events, "Write-freeze timeline (seconds from maintenance on)")]
    many = len(segments) > 1
    return [_segment_chart(seg, "Write freeze%s: %.1f s (seconds from maintenance on)" % (
        " %d of %d" % (i + 1, len(segments)) if many else "", seg[-1]["at"] - seg[0]["at"]))
        for i, seg in enumerate(segments)]


def freeze_chart(report):
    """Every write freeze's chart (see freeze_charts)."""
    return "".join(freeze_charts(report))


def steps_chart(report):
    steps = report.get("steps") or []
    if not steps:
        return ""
    origin = min(s["start"] for s in steps)
    items = [(s["name"], s["start"] - origin, s["end"] - origin, s["status"] in ("ok", "rescued")) for s in steps]
    return _svg_bars(items, "Steps (seconds from start of run)")


def to_html(report):
    esc = html.escape
    run = report["run"]
    ok = run.get("status") == "ok"
    body = ['<h1>CarBot migration report: %s</h1>' % esc(str(run.get("playbook", "run"))),
            '<p><span class="badge %s">%s</span> ' % ("ok" if ok else "bad", esc(str(run.get("status", "?")).upper()))
            + '<span class="muted">inventory %s &middot; %s &rarr; %s &middot; %s s</span></p>' % (
                esc(str(run.get("environment", "?"))), esc(_fmt_time(run.get("started"))),
                esc(_fmt_time(run.get("finished"))), esc(_fmt_num(run.get("seconds"))))]
    if run.get("status") == "failed":
        body.append('<p class="bad" id="failure">FAILED at %s: %s</p>' % (
            esc(run.get("failed_task") or "an unknown step"), esc(run.get("failed_reason") or "no reason recorded")))
    elif run.get("failed_task"):
        body.append('<p class="bad">Failed at: %s</p>' % esc(run["failed_task"]))
    if run.get("recovered_from"):
        body.append('<p class="muted">Recovered from a failure at: %s</p>' % esc(run["recovered_from"]))
    windows_text = _windows_text(report)
    if windows_text is not None:
        body.append('<p>Write freeze (maintenance on &rarr; off): <strong id="freeze-window">%s</strong></p>'
                    % esc(windows_text))
    charts = freeze_charts(report)
    if charts:
        body += ['<h2>Write-freeze timeline</h2>'] + charts
    chart = steps_chart(report)
    if chart:
        body += ['<h2>Steps</h2>', chart]
    if report["tables"]:
        body += ['<h2>Tables</h2><table id="tables"><tr><th>table</th><th>source</th><th>migrated</th>'
                 '<th>quarantined</th><th>balanced</th><th>checksums</th><th>quarantine reasons</th></tr>']
        for name, source, migrated, quarantined, balanced, checksum, reasons in _table_rows(report):
            bal = {True: '<span class="ok">yes</span>', False: '<span class="bad">NO</span>', None: ""}[balanced]
            chk = {True: '<span class="ok">equal</span>', False: '<span class="bad">DIFFER</span>', None: ""}[checksum]
            body.append('<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td>%s</td>'
                        '<td>%s</td><td>%s</td></tr>' % (esc(name), _fmt_num(source), _fmt_num(migrated),
                                                         _fmt_num(quarantined), bal, chk, esc(reasons)))
        body.append("</table>")
    if report["validation"]:
        body.append('<h2>Validation</h2><table id="validation"><tr><th>check</th><th>result</th><th>detail</th></tr>')
        for v in report["validation"]:
            res = '<span class="ok">ok</span>' if v.get("ok") else '<span class="bad">FAILED</span>'
            body.append("<tr><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                esc(str(v.get("check"))), res, esc(str(v.get("message", "")))))
        body.append("</table>")
    if report["criteria"]:
        body.append('<h2>Success criteria</h2><table id="criteria"><tr><th>criterion</th><th>target</th>'
                    '<th>measured</th><th>verdict</th><th>figures</th></tr>')
        for c in report["criteria"]:
            cls = {True: "ok", False: "bad"}.get(c.get("met"), "muted")
            body.append('<tr><td>%s</td><td>%s</td><td class="n">%s</td><td class="%s">%s</td>'
                        '<td class="muted">%s</td></tr>' % (
                            esc(str(c.get("name"))), esc(str(c.get("target", ""))), esc(_measured(c)), cls,
                            _verdict(c.get("met")), esc(str(c.get("detail", "")))))
        body.append("</table>")
    if report["steps"]:
        body.append('<h2>Step timings</h2><table id="steps"><tr><th>step</th><th>seconds</th><th>status</th></tr>')
        for s in report["steps"]:
            cls = "ok" if s["status"] == "ok" else "bad"
            body.append('<tr><td>%s</td><td class="n">%.1f</td><td class="%s">%s</td></tr>'
                        % (esc(s["name"]), s["seconds"], cls, esc(s["status"])))
        body.append("</table>")
    for name, value in sorted(report["sections"].items()):
        body.append("<h2>%s</h2>%s" % (esc(name), _section_html(value)))
    for note in report["notes"]:
        body.append('<p class="muted">%s</p>' % esc(str(note)))
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>CarBot migration report</title>'
            '<style>%s</style></head><body>%s</body></html>\n' % (CSS, "\n".join(body)))
