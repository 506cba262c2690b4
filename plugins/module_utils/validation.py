# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of a copy: legacy (through the mapping) against carbot_v2. Read-only.

Checks (each returns ``{"ok": bool, "failures": [str], ...details}``):

``counts``      per table: legacy rows = target rows + quarantined rows (derived tables: the
                view's rows instead of the legacy table's).
``checksums``   per table, chunked by key range: a hash of every mapped row
                (``SELECT <target cols> FROM map_<t> WHERE _quarantine_reason IS NULL``) against the
                same columns of the target; differing chunks are drilled into and the differing keys
                named (missing / extra / different), with a masked sample of the differing values.
``integrity``   every foreign key declared in the target schema (pg_constraint), validated or
                ``NOT VALID``: rows whose parent is missing.
``quality``     invalid emails, postal codes and licence plates in the target.
``consent``     true/false/NULL consent per table in legacy and target: consent is never fabricated
                (target true = legacy true of the migrated rows, and no target true whose legacy row
                is not true).
``unmapped``    legacy values the mapping does not know (the mapping's ``unmapped_values`` view,
                docs/mapping.md) and legacy tables no mapping entry reads.
``changes``     only the keys the sync triggers wrote since the last full validation (the sync's change log,
                pruned by sync_check after a clean full validation): each one as the mapping says (in the
                target with the same values, quarantined, or in neither). O(changes), not O(rows): the final
                sync check inside the write freeze (docs/sync.md).

Every sample of row values that leaves this module goes through :func:`mask`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
import time

from ansible_collections.carbot.migration.plugins.module_utils import schemas
# table metadata (below copy and validation); aliased: ``tables`` is a parameter of Validator
from ansible_collections.carbot.migration.plugins.module_utils import tables as meta

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module
    sql = None

CHECKS = ("counts", "checksums", "integrity", "quality", "consent", "unmapped", "changes")
# what a validation runs when not told: every check but ``changes`` (that one needs the sync's change log)
DEFAULT_CHECKS = CHECKS[:-1]
# the sync's change log in the mapping schema (sync.CHANGE_LOG; not imported: validation stays below sync)
CHANGE_LOG = "carbot_sync_changes"
DEFAULT_CHUNK_ROWS = 10000
# reason prefix of rows a sync trigger could not map (sync.SYNC_FAILED; not imported: validation stays below sync)
SYNC_FAILED = "sync failed: "
MAX_DRILL_CHUNKS = 50

# Consent columns: legacy source column -> target column, per target table (sql/legacy/schema.sql,
# sql/v2/020_tables.sql). NULL (never asked / unknown) is not consent.
CONSENT_COLUMNS = [
    {"target": "customers", "legacy_column": "marketing_consent", "target_column": "gdpr_consent_given"},
    {"target": "leads", "legacy_column": "consent_given", "target_column": "consent_given"},
    {"target": "consent_log", "legacy_column": "granted", "target_column": "granted"},
]

# Data quality rules on the target: (rule, column-name regex, regex a valid value matches, strict).
# Strict rules fail the check; the others are reported as warnings: the mapping keeps plates it cannot
# parse unambiguously (foreign plates, 'BAB1234') as they were, by design (sql/mapping/010_rules.sql).
QUALITY_RULES = [
    # Unicode letters allowed (SMTPUTF8 / IDN addresses such as 'sören@web.de' are valid).
    ("email", r"(^|_)email$",
     r"^[[:alnum:]._%+'-]+@([[:alnum:]]([[:alnum:]-]*[[:alnum:]])?\.)+[[:alpha:]]{2,}$", True),
    ("postal_code", r"(^|_)postal_code$", r"^[0-9]{5}$", True),
    # German plates: district (1-3 letters), letters (1-2), number (1-4, no leading 0), E/H suffix.
    ("license_plate", r"(^|_)(license|licence)_plate$", r"^[A-ZÄÖÜ]{1,3}-[A-Z]{1,2} [1-9][0-9]{0,3}[EH]?$", False),
]

# -------------------------------------------------------------------------------- masking
_NOT_PERSONAL = re.compile(
    r"^(id|.*_id|.*_ids|state|status|priority|source|role|type|kind|.*_type|category|plan|currency|language|"
    r"reason|sender|.*_?table|.*_?column|check|rule|constraint|.*_at|.*_on|year|rating|rows|count|"
    r"price_cents|amount_cents|duration_minutes|sort_order|lead_score|mileage_km|fuel_type|make|model|"
    r"event_type|action|entity_type|template_key|is_.*|active|auto_reply)$")
_EMAIL_COL = re.compile(r"(^|_)e?mail$|email")
_NAME_COL = re.compile(r"(^|_)(name|full_name|first_name|last_name|title|requester)$")
_PHONE_COL = re.compile(r"phone|telefon|mobile")
_SHAPE_COL = re.compile(r"plate|postal_code|zip")
_SECRET_COL = re.compile(r"password|secret|hash|token|key_hash|api_key")


def _mask_email(text):
    local, domain = text.strip().partition("@")[::2]
    if not domain:
        return _mask_generic(text)
    host, dot, tld = domain.rpartition(".")
    if not dot:
        host, tld = domain, ""
    masked_local = (local[:1] or "?") + "***"
    masked_host = (host[:1] or "?") + "***"
    return "%s@%s%s" % (masked_local, masked_host, ("." + tld) if tld else "")


def _mask_name(text):
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not parts:
        return "***" if text else ""
    return " ".join(p[0] + "." for p in parts)


def _mask_phone(text):
    digits = re.sub(r"\D", "", text)
    return "***" + digits[-2:] if len(digits) > 4 else "***"


def _mask_shape(text):
    """Letters -> X, digits -> 9, the rest kept: shows why a plate or postal code is invalid, not whose."""
    return "".join("9" if ch.isdigit() else "X" if ch.isalpha() else ch for ch in text)


def _mask_generic(text):
    text = str(text)
    if len(text) <= 1:
        return "*" if text else ""
    return text[0] + "***"


def mask(value, column=None, kind=None):
    """Mask personal data for display: 'max@web.de' -> 'm***@w***.de', 'Max Mustermann' -> 'M. M.'.

    ``kind`` is one of email, name, phone, secret, shape, generic, none; without it the kind is
    guessed from ``column`` (and from the value for emails). Numbers, booleans and None pass;
    so do values of columns that are not personal (ids, states, timestamps).
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [mask(v, column, kind) for v in value]
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    col = (column or "").lower()
    if kind is None:
        if _SECRET_COL.search(col):
            kind = "secret"
        elif _EMAIL_COL.search(col):
            kind = "email"
        elif _NOT_PERSONAL.match(col):
            kind = "none"
        elif _NAME_COL.search(col):
            kind = "name"
        elif _PHONE_COL.search(col):
            kind = "phone"
        elif _SHAPE_COL.search(col):
            kind = "shape"
        elif isinstance(value, str) and "@" in value:
            kind = "email"
        else:
            kind = "generic"
    if kind == "none":
        return value if isinstance(value, str) else str(value)
    text = value if isinstance(value, str) else str(value)
    if kind == "secret":
        return "********"
    if kind == "email":
        return _mask_email(text)
    if kind == "name":
        return _mask_name(text)
    if kind == "phone":
        return _mask_phone(text)
    if kind == "shape":
        return _mask_shape(text)
    return _mask_generic(text)


def mask_row(row):
    """A dict of column -> value with every personal value masked."""
    return {col: mask(val, col) for col, val in row.items()}


# ------------------------------------------------------------------------------ helpers
def _rel(schema, name):
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def _scalar(cur, query, args=None):
    cur.execute(query, args)
    return cur.fetchone()[0]


METADATA_COLUMNS = ("legacy_raw",)


def difference_kind(columns):
    """'migration metadata only' when every differing column is the migration's own bookkeeping (the set-aside
    legacy values), else 'data'."""
    if columns and all(c in METADATA_COLUMNS for c in columns):
        return "migration metadata only"
    return "data"


def _key_out(values):
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else values


class Validator:
    """Runs the selected checks over the mapping declaration; every statement is read-only."""

    def __init__(self, conn, legacy_schema=schemas.LEGACY_SCHEMA, mapping_schema=schemas.MAPPING_SCHEMA,
                 target_schema=schemas.TARGET_SCHEMA, tables=None, selected=None, chunk_rows=DEFAULT_CHUNK_ROWS,
                 max_keys=20, consent_columns=None, quality_max_invalid=0, progress=None):
        self.conn = conn
        # a job_progress.ProgressFile (or anything with update(**fields)): check and table at hand, for the
        # operator following the job (carbot.migration.job_follow); None: no progress
        self.progress = progress
        self.legacy, self.mapping, self.target = legacy_schema, mapping_schema, target_schema
        self.full_declaration = list(tables) if tables is not None else meta.load_declaration()
        self.declaration = meta.order_tables(self.full_declaration, selected)
        self.chunk_rows = max(1, int(chunk_rows))
        self.max_keys = max(1, int(max_keys))
        self.consent_columns = CONSENT_COLUMNS if consent_columns is None else consent_columns
        self.quality_max_invalid = int(quality_max_invalid)
        self._specs = None
        self._quarantine = None

    def _at(self, done, total, current=None, unit="tables"):
        if self.progress is not None:
            self.progress.update(done=done, total=total, unit=unit, current=current)

    def _each(self, items, name=lambda item: item.name, unit="tables"):
        """The items of a check one by one, recording which one is at hand and how many are done."""
        items = list(items)
        for i, item in enumerate(items):
            self._at(i, len(items), name(item), unit)
            yield item
        self._at(len(items), len(items), None, unit)

    @property
    def specs(self):
        if self._specs is None:
            self._specs = meta.resolve(self.conn, self.declaration, self.legacy, self.mapping, self.target)
        return self._specs

    @property
    def quarantine(self):
        if self._quarantine is None:
            self._quarantine = meta.QuarantineKeys(self.conn, self.target)
        return self._quarantine

    def run(self, checks=DEFAULT_CHECKS):
        """{"checks": {name: result}, "failed": bool, "msg": str, "elapsed": {name: s}}."""
        results, elapsed = {}, {}
        with self.conn.cursor() as cur:
            # Plans over the mapping views cross jit_above_cost; compiling costs more than it saves here.
            cur.execute("SET jit TO off")
        self.conn.commit()
        # Each check reads both schemas in ONE snapshot (REPEATABLE READ): the sync triggers write both
        # sides in the app's transaction, so a consistent snapshot sees them equal while the app keeps
        # writing; READ COMMITTED would compare the legacy side of one moment with the target of another.
        previous_isolation = self.conn.isolation_level
        self.conn.set_session(isolation_level="REPEATABLE READ")
        try:
            return self._run_checks(checks, results, elapsed)
        finally:
            self.conn.rollback()
            self.conn.set_session(isolation_level=previous_isolation)

    def _run_checks(self, checks, results, elapsed):
        for index, name in enumerate(checks):
            if name not in CHECKS:
                raise ValueError("unknown check %r (known: %s)" % (name, ", ".join(CHECKS)))
            if self.progress is not None:
                self.progress.update(phase=name, step=index + 1, steps=len(checks))
            t0 = time.monotonic()
            with self.conn.cursor() as cur:
                # the check's snapshot (REPEATABLE READ: the first statement fixes it): what it covered
                cur.execute("SELECT pg_current_snapshot()::text")
                snapshot = cur.fetchone()[0]
                results[name] = getattr(self, "check_" + name)(cur)
                results[name]["snapshot"] = snapshot
            self.conn.rollback()
            elapsed[name] = round(time.monotonic() - t0, 3)
        failed = [n for n in checks if not results[n]["ok"]]
        if failed:
            lines = []
            for n in failed:
                lines.extend("%s: %s" % (n, f) for f in results[n]["failures"])
            msg = "Validation failed (%s): %s" % (", ".join(failed), "; ".join(lines))
        else:
            msg = "Validation passed: %s" % ", ".join(checks)
        return {"checks": results, "failed": bool(failed), "failed_checks": failed, "msg": msg,
                "elapsed": elapsed}

    # ---------------------------------------------------------------------- counts
    def _quarantined(self, cur, spec):
        return _scalar(cur, sql.SQL("SELECT count(*) FROM {} WHERE target_table = %s").format(self.quarantine.rel),
                       (spec.name,))

    def check_counts(self, cur):
        tables, failures = {}, []
        for spec in self._each(self.specs):
            if spec.kind == "row":
                source = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(spec.source_rel))
            else:
                source = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(spec.view_rel))
            target = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(spec.target_rel))
            quarantined = self._quarantined(cur, spec)
            ok = source == target + quarantined
            cur.execute(sql.SQL("SELECT reason, count(*) FROM {} WHERE target_table = %s GROUP BY reason "
                                "ORDER BY count(*) DESC, reason").format(self.quarantine.rel), (spec.name,))
            reasons = dict((r, n) for r, n in cur.fetchall())
            tables[spec.name] = {"source_rows": source, "target_rows": target, "quarantined": quarantined,
                                 "difference": source - target - quarantined, "ok": ok, "kind": spec.kind,
                                 "reasons": reasons}
            failed_sync = sorted((r, n) for r, n in reasons.items() if r.startswith(SYNC_FAILED))
            if failed_sync:
                cur.execute(sql.SQL("SELECT source_pk, reason FROM {} WHERE target_table = %s AND reason LIKE %s "
                                    "ORDER BY source_pk LIMIT %s").format(self.quarantine.rel),
                            (spec.name, SYNC_FAILED + "%", self.max_keys))
                tables[spec.name]["sync_failed"] = [{"key": k, "reason": r} for k, r in cur.fetchall()]
                failures.append("%s: %d rows the sync could not map (quarantined; fix the legacy value or the rule, "
                                "then sync_check repair): %s" % (spec.name, sum(n for _r, n in failed_sync), "; ".join(
                                    "%s: %s" % (x["key"], x["reason"]) for x in tables[spec.name]["sync_failed"][:5])))
            if not ok:
                failures.append("%s: %s %s.%s rows != %d in %s.%s + %d quarantined (difference %+d)" % (
                    spec.name, source, self.legacy if spec.kind == "row" else self.mapping,
                    spec.source if spec.kind == "row" else spec.view, target, self.target, spec.name, quarantined,
                    source - target - quarantined))
        return {"ok": not failures, "failures": failures, "tables": tables}

    # -------------------------------------------------------------------- checksums
    def _key_type(self, cur, spec):
        cols = dict((c[0], c[1]) for c in meta.table_columns(cur, self.target, spec.name))
        return cols.get(spec.target_key[0], "text")

    def _chunking(self, key_type, rows):
        """(kind, parameter): how keys are grouped into ranges of about chunk_rows rows."""
        if key_type in ("bigint", "integer", "smallint"):
            return "int", self.chunk_rows
        chunks = max(1.0, rows / float(self.chunk_rows))
        digits = min(6, max(1, int(math.ceil(math.log(chunks, 16))) if chunks > 1 else 1))
        return ("uuid" if key_type == "uuid" else "hash"), digits

    @staticmethod
    def _chunk_expr(chunking, key_ident):
        kind, param = chunking
        if kind == "int":
            return sql.SQL("({} / {})::bigint").format(key_ident, sql.Literal(param))
        if kind == "uuid":
            return sql.SQL("left({}::text, {})").format(key_ident, sql.Literal(param))
        return sql.SQL("left(md5({}::text), {})").format(key_ident, sql.Literal(param))

    @staticmethod
    def _chunk_range(chunking, key_ident, chunk):
        """An index-friendly superset range of one chunk (or TRUE)."""
        kind, param = chunking
        if kind == "int":
            c = int(chunk)
            return sql.SQL("{k} BETWEEN {lo} AND {hi}").format(k=key_ident, lo=sql.Literal((c - 1) * param),
                                                                hi=sql.Literal((c + 1) * param))  # noqa: E127
        if kind == "uuid":
            lo = (chunk + "0" * 8)[:8] + "-0000-0000-0000-000000000000"
            hi = (chunk + "f" * 8)[:8] + "-ffff-ffff-ffff-ffffffffffff"
            return sql.SQL("{k} BETWEEN {lo}::uuid AND {hi}::uuid").format(k=key_ident, lo=sql.Literal(lo),
                                                                            hi=sql.Literal(hi))  # noqa: E127
        return sql.SQL("TRUE")

    def _side(self, spec, which, extra=None):
        """``SELECT k1.., h`` of the view (``which='m'``) or the target (``'t'``): same key aliases, row hash."""
        keys = ["k%d" % (i + 1) for i in range(len(spec.view_key))]
        key_cols = spec.view_key if which == "m" else spec.target_key
        rel = spec.view_rel if which == "m" else spec.target_rel
        alias = sql.Identifier(which)
        cols = sql.SQL(", ").join(sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c in spec.columns)
        key_list = sql.SQL(", ").join(sql.SQL("{}.{} AS {}").format(alias, sql.Identifier(c), sql.Identifier(k))
                                      for c, k in zip(key_cols, keys))
        preds = []
        if which == "m" and spec.has_reason:
            preds.append(sql.SQL("m.{} IS NULL").format(sql.Identifier(meta.QUARANTINE_REASON)))
        if extra is not None:
            preds.append(extra)
        where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(preds) if preds else sql.SQL("")
        return sql.SQL("SELECT {keys}, md5(ROW({cols})::text) AS h FROM {rel} {alias} {where}").format(
            keys=key_list, cols=cols, rel=rel, alias=alias, where=where), keys, key_cols

    def _chunk_sums(self, cur, side, keys, chunking):
        # Keys are unique on each side, so an order-independent sum of 60-bit row hashes (with the key
        # in the hashed text) identifies a chunk's content without sorting: cheaper than string_agg.
        key_row = sql.SQL("ROW({}, s.h)::text").format(sql.SQL(", ").join(
            sql.SQL("s.{}").format(sql.Identifier(k)) for k in keys))
        cur.execute(sql.SQL(
            "SELECT {chunk} AS c, count(*), sum(('x' || left(md5({key_row}), 15))::bit(60)::bigint)::text "
            "FROM ({side}) s GROUP BY 1").format(
            chunk=self._chunk_expr(chunking, sql.SQL("s.{}").format(sql.Identifier(keys[0]))),
            key_row=key_row, side=side))
        return {str(r[0]): (r[1], r[2]) for r in cur.fetchall()}

    def _chunk_rows(self, cur, spec, which, chunking, chunk):
        """{key tuple (text): row hash} of one chunk of one side."""
        _side, keys, key_cols = self._side(spec, which)
        # an index-friendly range on the relation's own first key column, then the exact chunk
        rng = self._chunk_range(chunking, sql.SQL("{}.{}").format(sql.Identifier(which),
                                                                  sql.Identifier(key_cols[0])), chunk)
        side, keys, _cols = self._side(spec, which, rng)
        cur.execute(sql.SQL("SELECT * FROM ({side}) s WHERE {chunk} = {val}").format(
            side=side, chunk=self._chunk_expr(chunking, sql.SQL("s.{}").format(sql.Identifier(keys[0]))),
            val=sql.Literal(chunk if chunking[0] != "int" else int(chunk))))
        return {tuple(str(v) for v in r[:-1]): r[-1] for r in cur.fetchall()}

    def _sample_diff(self, cur, spec, key):
        """The differing columns of one key, values masked."""
        vmatch = sql.SQL(" AND ").join(sql.SQL("m.{}::text = %s").format(sql.Identifier(v)) for v in spec.view_key)
        tmatch = sql.SQL(" AND ").join(sql.SQL("t.{}::text = %s").format(sql.Identifier(c)) for c in spec.target_key)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
        cur.execute(sql.SQL("SELECT {cols} FROM {rel} m WHERE {m}").format(cols=cols, rel=spec.view_rel, m=vmatch),
                    list(key))
        want = cur.fetchone()
        cur.execute(sql.SQL("SELECT {cols} FROM {rel} t WHERE {m}").format(cols=cols, rel=spec.target_rel, m=tmatch),
                    list(key))
        have = cur.fetchone()
        if want is None or have is None:
            return {}
        diff = {}
        for col, a, b in zip(spec.columns, want, have):
            if a != b:
                diff[col] = {"expected": mask(_plain(a), col), "found": mask(_plain(b), col)}
        return diff

    def check_checksums(self, cur):
        tables, failures = {}, []
        for spec in self._each(self.specs):
            view_side, keys, _vk = self._side(spec, "m")
            target_side, _keys, _tk = self._side(spec, "t")
            rows = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(spec.target_rel))
            chunking = self._chunking(self._key_type(cur, spec), rows)
            want = self._chunk_sums(cur, view_side, keys, chunking)
            have = self._chunk_sums(cur, target_side, keys, chunking)
            bad = sorted(c for c in set(want) | set(have) if want.get(c) != have.get(c))
            missing, extra, different, samples = [], [], [], []
            for chunk in bad[:MAX_DRILL_CHUNKS]:
                w = self._chunk_rows(cur, spec, "m", chunking, chunk)
                h = self._chunk_rows(cur, spec, "t", chunking, chunk)
                missing.extend(sorted(k for k in w if k not in h))
                extra.extend(sorted(k for k in h if k not in w))
                different.extend(sorted(k for k in w if k in h and w[k] != h[k]))
            # the differing columns of every named key: data, or only the migration's own metadata (legacy_raw)
            columns = {}
            for key in different[:self.max_keys]:
                diff = self._sample_diff(cur, spec, key)
                columns[key] = sorted(diff)
                if len(samples) < 3:
                    samples.append({"key": _key_out(key), "columns": diff})
            ok = not bad
            tables[spec.name] = {
                "ok": ok, "rows": rows, "chunks": len(set(want) | set(have)), "differing_chunks": len(bad),
                "missing": len(missing), "extra": len(extra), "different": len(different),
                "missing_keys": [_key_out(k) for k in missing[:self.max_keys]],
                "extra_keys": [_key_out(k) for k in extra[:self.max_keys]],
                "different_keys": [_key_out(k) for k in different[:self.max_keys]],
                "different_columns": {"/".join(k): cols for k, cols in columns.items()},
                "different_kinds": {"/".join(k): difference_kind(cols) for k, cols in columns.items()},
                "samples": samples,
            }
            if not ok:
                parts = []
                for label, items in (("missing in target", missing), ("extra in target", extra),
                                     ("different", different)):
                    if items:
                        shown = ", ".join("/".join(k) + (" (%s: %s)" % (", ".join(columns[k]), difference_kind(
                            columns[k])) if k in columns else "") for k in items[:self.max_keys])
                        more = " (+%d more)" % (len(items) - self.max_keys) if len(items) > self.max_keys else ""
                        parts.append("%d %s: %s%s" % (len(items), label, shown, more))
                if len(bad) > MAX_DRILL_CHUNKS:
                    parts.append("%d differing chunks, first %d inspected" % (len(bad), MAX_DRILL_CHUNKS))
                failures.append("%s: %s" % (spec.name, "; ".join(parts) or "%d chunks differ" % len(bad)))
        return {"ok": not failures, "failures": failures, "tables": tables}

    # ---------------------------------------------------------------------- changes
    def _key_parts(self, cur, spec, text_expr):
        """Typed key expressions from a key's text (the change log's and the quarantine's form)."""
        types = [dict((c[0], c[1]) for c in meta.table_columns(cur, self.target, spec.name)).get(k, "text")
                 for k in spec.target_key]
        if len(types) == 1:
            return [sql.SQL("({})::{}").format(text_expr, sql.SQL(types[0]))]
        return [sql.SQL("(({})::text[])[{}]::{}").format(text_expr, sql.Literal(i + 1), sql.SQL(t))
                for i, t in enumerate(types)]

    def check_changes(self, cur):
        log = sql.Identifier(self.mapping, CHANGE_LOG)
        cur.execute("SELECT to_regclass(%s)", (log.as_string(cur),))
        if cur.fetchone()[0] is None:
            return {"ok": False, "failures": ["no change log %s.%s: install the sync triggers first"
                                              % (self.mapping, CHANGE_LOG)], "tables": {}, "keys_checked": 0}
        tables, failures, checked = {}, [], 0
        for spec in self._each(self.specs):
            parts = self._key_parts(cur, spec, sql.SQL("k.key"))
            tmatch = sql.SQL(" AND ").join(sql.SQL("t.{} = {}").format(sql.Identifier(c), e)
                                           for c, e in zip(spec.target_key, parts))
            if spec.name == "chat_sessions":
                # the view is an aggregate per conversation: looked up by the session's conversation
                vmatch = sql.SQL("m.workshop_id = t.workshop_id AND m.client_key = t.client_key")
            else:
                vmatch = sql.SQL(" AND ").join(sql.SQL("m.{} = {}").format(sql.Identifier(v), e)
                                               for v, e in zip(spec.view_key, parts))
            reason = sql.SQL("m.{}").format(sql.Identifier(meta.QUARANTINE_REASON)) if spec.has_reason \
                else sql.SQL("NULL::text")
            cur.execute(sql.SQL(
                "SELECT k.key, v.found, v.reason, v.h, t.h, q.reason FROM (SELECT DISTINCT key FROM {log} "
                "WHERE target_table = %s) k "
                "LEFT JOIN LATERAL (SELECT md5(ROW({tcols})::text) AS h, t.* FROM {target} t WHERE {tmatch}) t ON true "
                "LEFT JOIN LATERAL (SELECT true AS found, {reason} AS reason, md5(ROW({mcols})::text) AS h "
                "FROM {view} m WHERE {vmatch}) v ON true "
                "LEFT JOIN {q} q ON q.target_table = %s AND q.source_pk = k.key").format(
                log=log, target=spec.target_rel, view=spec.view_rel, q=self.quarantine.rel, tmatch=tmatch,
                vmatch=vmatch, reason=reason,
                tcols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in spec.columns),
                mcols=sql.SQL(", ").join(sql.SQL("m.{}").format(sql.Identifier(c)) for c in spec.columns)),
                (spec.name, spec.name))
            rows = cur.fetchall()
            checked += len(rows)
            missing, extra, different, stuck = [], [], [], []
            for key, found, why, want, have, qreason in rows:
                if qreason and qreason.startswith(SYNC_FAILED):
                    stuck.append("%s (%s)" % (key, qreason))
                elif found and why is None:
                    if have is None:
                        missing.append(key)
                    elif want != have:
                        different.append(key)
                elif have is not None and (spec.name != "chat_sessions" or not found):
                    extra.append(key)
            named = {}
            for key in different[:self.max_keys]:
                values = [str(v) for v in self._key_values(key)]
                named[key] = sorted(self._sample_diff(cur, spec, values))
            ok = not (missing or extra or different or stuck)
            tables[spec.name] = {"ok": ok, "keys": len(rows), "missing_keys": missing[:self.max_keys],
                                 "extra_keys": extra[:self.max_keys], "different_keys": different[:self.max_keys],
                                 "different_columns": named,
                                 "different_kinds": {k: difference_kind(c) for k, c in named.items()},
                                 "sync_failed": stuck[:self.max_keys]}
            if not ok:
                parts = []
                for label, items in (("missing in target", missing), ("extra in target", extra),
                                     ("different", different), ("could not be synced", stuck)):
                    if items:
                        parts.append("%d %s: %s" % (len(items), label, ", ".join(
                            k + (" (%s: %s)" % (", ".join(named[k]), difference_kind(named[k])) if k in named else "")
                            for k in items[:10])))
                failures.append("%s: %s" % (spec.name, "; ".join(parts)))
        return {"ok": not failures, "failures": failures, "tables": tables, "keys_checked": checked}

    @staticmethod
    def _key_values(key):
        if key.startswith("{") and key.endswith("}"):
            return [v.strip('"') for v in key[1:-1].split(",")]
        return [key]

    # -------------------------------------------------------------------- integrity
    def check_integrity(self, cur):
        cur.execute(
            "SELECT con.conname, child.relname, parent.relname, con.convalidated, "
            "ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) "
            "      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o)::text[], "
            "ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o) "
            "      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)::text[], "
            "pn.nspname "
            "FROM pg_constraint con JOIN pg_class child ON child.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = child.relnamespace JOIN pg_class parent ON parent.oid = con.confrelid "
            "JOIN pg_namespace pn ON pn.oid = parent.relnamespace "
            "WHERE con.contype = 'f' AND n.nspname = %s ORDER BY child.relname, con.conname", (self.target,))
        fks = cur.fetchall()
        results, failures = [], []
        for name, child, parent, validated, ccols, pcols, pschema in self._each(
                fks, name=lambda fk: "%s (%s)" % (fk[0], fk[1]), unit="foreign keys"):
            notnull = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in ccols)
            match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(p), sql.Identifier(c))
                                          for p, c in zip(pcols, ccols))
            cur.execute(sql.SQL(
                "SELECT count(*), (array_agg(ROW({cc})::text))[1:5] FROM {child} c WHERE {nn} "
                "AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})").format(
                cc=sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in ccols),
                child=_rel(self.target, child), nn=notnull, parent=_rel(pschema, parent), match=match))
            count, sample = cur.fetchone()
            rec = {"constraint": name, "table": child, "columns": ccols, "parent": parent,
                   "parent_columns": pcols, "validated": validated, "violations": count,
                   "sample_values": sample or []}
            results.append(rec)
            if count:
                failures.append("%s: %d rows of %s (%s) without a parent in %s%s; e.g. %s" % (
                    name, count, child, ", ".join(ccols), parent, "" if validated else " (constraint NOT VALID)",
                    ", ".join(sample or [])))
        return {"ok": not failures, "failures": failures, "foreign_keys": results,
                "not_valid": [r["constraint"] for r in results if not r["validated"]]}

    # ---------------------------------------------------------------------- quality
    def check_quality(self, cur):
        findings, failures, warnings = [], [], []
        for spec in self._each(self.specs):
            cols = meta.table_columns(cur, self.target, spec.name)
            for rule, name_re, value_re, strict in QUALITY_RULES:
                for col, ctype, _gen in cols:
                    if not re.search(name_re, col) or ctype not in ("text", "character varying", "citext"):
                        continue
                    cur.execute(sql.SQL(
                        "SELECT count(*) FILTER (WHERE {c} IS NOT NULL), "
                        "count(*) FILTER (WHERE {c} IS NOT NULL AND {c} !~* {rx}), "
                        "(array_agg({c}) FILTER (WHERE {c} IS NOT NULL AND {c} !~* {rx}))[1:5] FROM {rel}").format(
                        c=sql.Identifier(col), rx=sql.Literal(value_re), rel=spec.target_rel))
                    present, invalid, sample = cur.fetchone()
                    rec = {"table": spec.name, "column": col, "rule": rule, "values": present, "invalid": invalid,
                           "strict": strict, "sample": [mask(v, col) for v in sample or []]}
                    findings.append(rec)
                    if invalid > self.quality_max_invalid:
                        text = "%s.%s: %d invalid %s values (of %d; allowed %d), e.g. %s" % (
                            spec.name, col, invalid, rule, present, self.quality_max_invalid,
                            ", ".join(rec["sample"]))
                        (failures if strict else warnings).append(text)
        return {"ok": not failures, "failures": failures, "warnings": warnings, "columns": findings}

    # ---------------------------------------------------------------------- consent
    def check_consent(self, cur):
        by_name = {s.name: s for s in self.specs}
        tables, failures = {}, []
        for pair in self._each(self.consent_columns, name=lambda pair: pair["target"]):
            spec = by_name.get(pair["target"])
            if spec is None or spec.kind != "row":
                continue
            lcols = {c[0] for c in meta.table_columns(cur, self.legacy, spec.source)}
            tcols = {c[0] for c in meta.table_columns(cur, self.target, spec.name)}
            if pair["legacy_column"] not in lcols or pair["target_column"] not in tcols:
                failures.append("%s: consent columns %s.%s / %s.%s not found" % (
                    spec.name, spec.source, pair["legacy_column"], spec.name, pair["target_column"]))
                continue
            lc, tc = sql.Identifier(pair["legacy_column"]), sql.Identifier(pair["target_column"])
            figures = sql.SQL("count(*) FILTER (WHERE {c} IS TRUE), count(*) FILTER (WHERE {c} IS FALSE), "
                              "count(*) FILTER (WHERE {c} IS NULL)")
            cur.execute(sql.SQL("SELECT {} FROM {} s").format(figures.format(c=sql.SQL("s.{}").format(lc)),
                                                             spec.source_rel))  # noqa: E128
            legacy = dict(zip(("true", "false", "null"), cur.fetchone()))
            # legacy figures of the rows that were migrated (not quarantined), through the view's key
            kmatch = sql.SQL(" AND ").join(sql.SQL("m.{} = s.{}").format(sql.Identifier(v), sql.Identifier(k))
                                           for v, k in zip(spec.view_key, spec.source_key))
            reason = sql.SQL("AND m.{} IS NULL").format(sql.Identifier(meta.QUARANTINE_REASON)) \
                if spec.has_reason else sql.SQL("")
            cur.execute(sql.SQL("SELECT {} FROM {} s JOIN {} m ON {} {}").format(
                figures.format(c=sql.SQL("s.{}").format(lc)), spec.source_rel, spec.view_rel, kmatch, reason))
            migrated = dict(zip(("true", "false", "null"), cur.fetchone()))
            cur.execute(sql.SQL("SELECT {} FROM {} t").format(figures.format(c=sql.SQL("t.{}").format(tc)),
                                                             spec.target_rel))  # noqa: E128
            target = dict(zip(("true", "false", "null"), cur.fetchone()))
            tmatch = sql.SQL(" AND ").join(sql.SQL("s.{} = t.{}").format(sql.Identifier(k), sql.Identifier(c))
                                           for k, c in zip(spec.source_key, spec.target_key))
            cur.execute(sql.SQL(
                "SELECT count(*), (array_agg(ROW({tk})::text))[1:5] FROM {t} t LEFT JOIN {s} s ON {m} "
                "WHERE t.{tc} IS TRUE AND s.{lc} IS NOT TRUE").format(
                tk=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in spec.target_key),
                t=spec.target_rel, s=spec.source_rel, m=tmatch, tc=tc, lc=lc))
            fabricated, fab_keys = cur.fetchone()
            ok = fabricated == 0 and target["true"] == migrated["true"]
            tables[spec.name] = {"legacy_column": pair["legacy_column"], "target_column": pair["target_column"],
                                 "legacy": legacy, "legacy_migrated": migrated, "target": target,
                                 "fabricated": fabricated, "fabricated_keys": fab_keys or [], "ok": ok}
            if fabricated:
                failures.append("%s: %d rows with %s = true whose legacy %s is not true (fabricated consent), "
                                "e.g. %s" % (spec.name, fabricated, pair["target_column"], pair["legacy_column"],
                                             ", ".join(fab_keys or [])))
            elif target["true"] != migrated["true"]:
                failures.append("%s: %d rows with consent in the target, %d in the migrated legacy rows" % (
                    spec.name, target["true"], migrated["true"]))
        return {"ok": not failures, "failures": failures, "tables": tables}

    # --------------------------------------------------------------------- unmapped
    def check_unmapped(self, cur):
        failures, values = [], []
        view_cols = meta.table_columns(cur, self.mapping, "unmapped_values")
        if view_cols:
            cur.execute(sql.SQL("SELECT * FROM {} LIMIT 200").format(_rel(self.mapping, "unmapped_values")))
            names = [d[0] for d in cur.description]
            for row in cur.fetchall():
                rec = dict(zip(names, (_plain(v) for v in row)))
                # the unknown value is shown when its column is not personal (a status, a type, ...)
                column = next((rec[c] for c in ("legacy_column", "column_name", "column") if rec.get(c)), None)
                values.append({k: mask(v, column if k in ("value", "legacy_value") and column else k)
                               for k, v in rec.items()})
            if values:
                failures.append("%d legacy values the mapping does not know (their rows are quarantined): %s" % (
                    len(values), "; ".join(", ".join("%s=%s" % kv for kv in v.items()) for v in values[:10])))
        read = set()
        for decl in self.full_declaration:
            read.update(decl.get("reads") or [])
            if decl.get("source"):
                read.add(decl["source"])
        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1", (self.legacy,))
        unread = []
        for (name,) in self._each(cur.fetchall(), name=lambda row: row[0], unit="legacy tables"):
            if name in read:
                continue
            rows = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(_rel(self.legacy, name)))
            if rows:
                unread.append({"table": name, "rows": rows})
        if unread:
            failures.append("legacy tables with rows that no mapping reads: %s" % ", ".join(
                "%s (%d rows)" % (u["table"], u["rows"]) for u in unread))
        return {"ok": not failures, "failures": failures, "unmapped_values": values,
                "unmapped_view": bool(view_cols), "unread_tables": unread}


def report_part(result):
    """The validation's part of the migration report (module_utils/report.py): per-table counts,
    quarantine reasons and checksum verdicts, and one line per check. Keys and samples stay out:
    the report is for reading, the module's result has the detail."""
    checks = result.get("checks", {})
    tables = {}
    for name, t in (checks.get("counts") or {}).get("tables", {}).items():
        tables[name] = {"source": t["source_rows"], "migrated": t["target_rows"], "quarantined": t["quarantined"],
                        "reasons": t.get("reasons", {}), "kind": t.get("kind")}
    for name, t in (checks.get("checksums") or {}).get("tables", {}).items():
        tables.setdefault(name, {})["checksum_ok"] = bool(t.get("ok"))
    validation = []
    for name, check in checks.items():
        failures = check.get("failures") or []
        detail = "; ".join(failures[:3]) + (" (+%d more)" % (len(failures) - 3) if len(failures) > 3 else "")
        if not failures:
            detail = "%s s" % result.get("elapsed", {}).get(name, "?")
            if check.get("warnings"):
                detail += "; %d warnings" % len(check["warnings"])
        validation.append({"check": name, "ok": bool(check.get("ok")), "message": detail})
    return {"tables": tables, "validation": validation}


def _plain(value):
    """JSON-friendly value for samples."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return str(value)
