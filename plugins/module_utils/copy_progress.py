# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy's progress table as the operator reads it while the copy runs (pure functions, no database).

Input: the per-table records of ``copy_engine.read_progress`` (``data_copy mode=progress``). Output:
tables in copy order (dependency order, as the engine copies them), a finished table at 100 % (its
quarantined rows are done too: source rows = migrated + quarantined), and one overall line with rows
done / total, rows/s and ETA. The overall rate is right from the first table: before the follower has
two samples of its own it is the sum of the rates of the tables being copied, which
``read_progress`` measures from each table's ``started_at`` (so also for a job left running by an
earlier run); then it is measured over the last ``window`` seconds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils import db, schemas
from ansible_collections.carbot.migration.plugins.module_utils import job_progress

DONE_STATES = ("copied",)
END_STATES = ("copied", "failed")


def follow_argument_spec():
    """Options of carbot.migration.copy_follow (the action plugin and its documentation module)."""
    return job_progress.follow_argument_spec(
        poll_interval=15.0, **db.postgres_argument_spec(), **schemas.schema_argument_spec("target_schema"),
        tables=dict(type="list", elements="str", default=[]))


def copy_order():
    """Target table names in the order the engine copies them; [] when the declaration cannot be read."""
    try:
        from ansible_collections.carbot.migration.plugins.module_utils import tables
        return [decl["target"] for decl in tables.order_tables(tables.load_declaration())]
    except Exception:  # noqa: BLE001 - the order is cosmetic: alphabetical then
        return []


def in_copy_order(records, order):
    """The records sorted by ``order`` (names not in it last, alphabetically)."""
    rank = dict((name, i) for i, name in enumerate(order or []))
    return sorted(records, key=lambda r: (rank.get(r["table"], len(rank)), r["table"]))


def normalised(record):
    """A finished table: done == total (the estimate was only an estimate; quarantined rows are done too)."""
    rec = dict(record)
    if rec.get("state") in DONE_STATES:
        rec["rows_total"] = rec["rows_done"]
        rec["eta_seconds"] = 0
    return rec


class Tracker:
    """Overall rows done / total, rate and ETA over the rounds of one follow."""

    def __init__(self, window=30.0):
        self.window = window
        self.samples = []  # (monotonic seconds, rows done overall)

    def update(self, records, now):
        recs = [normalised(r) for r in records]
        done = sum(r["rows_done"] for r in recs)
        total = sum(r["rows_total"] if r["rows_total"] is not None else r["rows_done"] for r in recs)
        remaining = sum(max((r["rows_total"] or 0) - r["rows_done"], 0) for r in recs
                        if r.get("state") not in END_STATES)
        self.samples.append((now, done))
        self.samples = [s for s in self.samples if now - s[0] <= self.window] or [(now, done)]
        first_t, first_done = self.samples[0]
        if now - first_t >= 1.0 and done > first_done:
            rate = (done - first_done) / (now - first_t)
        else:
            active = [r.get("rows_per_second") or 0.0 for r in recs if r.get("state") == "copying"]
            rate = sum(active) if active else None  # nothing copying and nothing measured yet: unknown
        finished = sum(1 for r in recs if r.get("state") in DONE_STATES)
        failed = sum(1 for r in recs if r.get("state") == "failed")
        copying = sum(1 for r in recs if r.get("state") == "copying")
        return {
            "rows_done": done, "rows_total": total, "rows_remaining": remaining,
            "percent": round(100.0 * done / total, 1) if total else (100.0 if recs and finished == len(recs) else 0.0),
            "rows_per_second": None if rate is None else round(rate, 1),
            "eta_seconds": (round(remaining / rate, 1) if rate else None) if remaining else 0,
            "tables": len(recs), "tables_copied": finished, "tables_copying": copying, "tables_failed": failed,
            "tables_pending": len(recs) - finished - copying - failed,
        }


def _rows(n):
    return "{:,}".format(int(n))


def format_lines(records, overall, elapsed=None, order=None):
    """The overall line, then one line per table in copy order."""
    recs = [normalised(r) for r in in_copy_order(records, order)]
    lines = ["copy: %s / %s rows (%.1f %%), %s rows/s, ETA %s%s; tables: %d copied, %d copying, %d pending%s" % (
        _rows(overall["rows_done"]), _rows(overall["rows_total"]), overall["percent"],
        "-" if overall["rows_per_second"] is None else _rows(overall["rows_per_second"]),
        job_progress.duration(overall["eta_seconds"]),
        "" if elapsed is None else ", elapsed %s" % job_progress.duration(elapsed),
        overall["tables_copied"], overall["tables_copying"], overall["tables_pending"],
        ", %d FAILED" % overall["tables_failed"] if overall["tables_failed"] else "")]
    lines.append("%-24s %-8s %25s %6s %9s %7s" % ("table (copy order)", "state", "rows done / total", "%",
                                                  "rows/s", "ETA"))
    for r in recs:
        total = r["rows_total"]
        pct = "-" if not total else "%d%%" % min(100, int(100 * r["rows_done"] / total))
        if r.get("state") in DONE_STATES:
            pct = "100%"
        done_total = "%s / %s" % (_rows(r["rows_done"]), "?" if total is None else _rows(total))
        lines.append("%-24s %-8s %25s %6s %9s %7s" % (
            r["table"], r.get("state") or "-", done_total, pct, _rows(r.get("rows_per_second") or 0),
            job_progress.duration(r.get("eta_seconds"))))
        if r.get("last_error") and r.get("state") == "failed":
            lines.append("    error: %s" % r["last_error"])
    return lines
