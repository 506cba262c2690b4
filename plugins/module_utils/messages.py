# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Messages an operator reads in one line: long key lists cut to a count and a few examples.

A validation of a database that was prepared but not yet copied finds every row missing; its
message used to name every key (one 361 KB line). The structured result keeps the keys (up to
``max_keys``, for a repair and for the report); the message says how many and shows a few.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

EXAMPLES = 3
MAX_LINES = 8
MAX_LINE_CHARS = 300


def _key(key):
    return key if isinstance(key, str) else "/".join(str(k) for k in key)


def examples(keys, total=None, keep=EXAMPLES, detail=None):
    """'a, b, c (+97 more)' from a list of keys (strings or tuples); ``total`` when the list was already cut;
    ``detail(key)`` adds a note after a key (e.g. the differing columns)."""
    keys = list(keys or [])
    total = len(keys) if total is None else max(total, len(keys))
    shown = ", ".join(_key(k) + ((" (%s)" % detail(k)) if detail and detail(k) else "") for k in keys[:keep])
    more = total - min(len(keys), keep)
    return shown + (" (+%d more)" % more if more > 0 else "")


def clip(line, limit=MAX_LINE_CHARS):
    """One line of at most ``limit`` characters (the cut marked with its size)."""
    line = " ".join(str(line).split())
    return line if len(line) <= limit else "%s ... (%d characters cut)" % (line[:limit], len(line) - limit)


def lines_summary(lines, keep=MAX_LINES, limit=MAX_LINE_CHARS):
    """'; '-joined, each line clipped, at most ``keep`` of them and how many more."""
    lines = list(lines or [])
    out = [clip(line, limit) for line in lines[:keep]]
    if len(lines) > keep:
        out.append("+%d more" % (len(lines) - keep))
    return "; ".join(out)


def _columns(rec, key):
    """'phone, slug: data': the columns a differing key differs in, and the kind of difference."""
    name = _key(key)
    columns = (rec.get("different_columns") or {}).get(name)
    if not columns:
        return None
    kind = (rec.get("different_kinds") or {}).get(name)
    return "%s%s" % (", ".join(columns), (": %s" % kind) if kind else "")


def checksum_table_summary(name, rec, keep=EXAMPLES):
    """'<table>: 1200 missing in target (e.g. 1, 2, 3 (+1197 more)), 4 different (e.g. ...)' from a checksums record."""
    parts = []
    for label, count_key, keys_key in (("missing in target", "missing", "missing_keys"),
                                       ("extra in target", "extra", "extra_keys"),
                                       ("different", "different", "different_keys")):
        count = rec.get(count_key) or 0
        if count:
            detail = (lambda k: _columns(rec, k)) if count_key == "different" else None
            parts.append("%d %s (e.g. %s)" % (count, label, examples(rec.get(keys_key), count, keep, detail=detail)))
    if not parts and rec.get("differing_chunks"):
        parts.append("%d chunks differ" % rec["differing_chunks"])
    return "%s: %s" % (name, ", ".join(parts) or "differs")


def validation_summary(report, keep=EXAMPLES, max_lines=MAX_LINES):
    """A short message for a validation report (module_utils/validation.py ``Validator.run``)."""
    failed = report.get("failed_checks") or []
    if not failed:
        return report.get("msg") or "Validation passed"
    per_check = max(2, max_lines // len(failed))
    parts = []
    for check in failed:
        res = (report.get("checks") or {}).get(check) or {}
        if check == "checksums" and isinstance(res.get("tables"), dict):
            bad = [(t, r) for t, r in sorted(res["tables"].items()) if not r.get("ok", True)]
            lines = [checksum_table_summary(t, r, keep) for t, r in bad]
        else:
            lines = list(res.get("failures") or [])
        parts.append("%s: %s" % (check, lines_summary(lines, per_check)))
    return "Validation failed (%s): %s" % (", ".join(failed), "; ".join(parts))
