# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aligning the id sequences for the cutover (module carbot.migration.sequences): ``Aligner(module, conn)`` finds
the id columns of both schemas, works out what is off and fixes it (or, in check mode and with check_only, only
says so), and proves the result with a write through the application role (probe.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils import catalog, probe, sequences as seqs
from ansible_collections.carbot.migration.plugins.module_utils import db
from ansible_collections.carbot.migration.plugins.module_utils.db import sql

OWNER_SQL = """
SELECT n.nspname, c.relname, a.attname
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class c ON c.oid = d.refobjid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = pg_catalog.to_regclass(%s)
   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
"""


class Aligner:
    def __init__(self, module, conn):
        self.module = module
        self.p = module.params
        self.conn = conn
        self.queries = []
        self.changed = False
        self.before = None  # --diff: state() before the run
        self.expected = {}  # --diff: what align() would leave per column (check mode, check_only)

    def _owner(self, cur, schema, name):
        cur.execute(OWNER_SQL, (catalog.qualified(self.conn, schema, name),))
        row = cur.fetchone()
        return ".".join(row) if row else None

    def state(self, cur):
        """{schema.table.column: {sequence, how, next_value, owned_by}} of every id column handled, now."""
        out = {}
        for col in self.columns(cur):
            schema, name = col["current_sequence"].split(".", 1)
            last, called, inc = seqs.sequence_position(cur, schema, name)
            out["%s.%s.%s" % (self.p["target_schema"], col["table"], col["column"])] = {
                "sequence": col["current_sequence"], "how": "identity" if col["identity"] else "default",
                "next_value": seqs.next_value(last, called, inc), "owned_by": self._owner(cur, schema, name)}
        return out

    @staticmethod
    def diff_text(state):
        return "".join("%s: %s (%s), next value %s, owned by %s\n" % (
            key, v["sequence"], v["how"], v["next_value"], v["owned_by"] or "no column")
            for key, v in sorted(state.items()))

    def columns(self, cur):
        target, legacy = self.p["target_schema"], self.p["legacy_schema"]
        legacy_cols = {(c["table"], c["column"]): c for c in seqs.sequence_columns(cur, legacy)}
        legacy_tables = set(catalog.tables_in(cur, legacy))
        out = []
        for col in seqs.sequence_columns(cur, target):
            if self.p["tables"] and col["table"] not in self.p["tables"]:
                continue
            source = catalog.counterpart(col["table"], legacy_tables)
            lc = legacy_cols.get((source, col["column"])) if source else None
            item = {"table": col["table"], "column": col["column"], "identity": col["identity"],
                    "current_sequence": "%s.%s" % (col["sequence_schema"], col["sequence"])}
            if lc:
                item.update(rule="shared", legacy_table=source, seq_schema=lc["sequence_schema"], seq=lc["sequence"])
                item["aligned"] = (col["identity"] is None and col["sequence_schema"] == lc["sequence_schema"]
                                   and col["sequence"] == lc["sequence"])
            else:
                item.update(rule="own", legacy_table=None, seq_schema=col["sequence_schema"], seq=col["sequence"],
                            aligned=True)
            item["sequence"] = "%s.%s" % (item["seq_schema"], item["seq"])
            out.append(item)
        return out

    def _run(self, cur, statement, args=None):
        self.queries.append(cur.mogrify(statement, args).decode())
        if not self.module.check_mode and not self.p["check_only"]:
            cur.execute(statement, args)
        self.changed = True

    def align(self, item):
        """One transaction per column: default, position, ownership."""
        target, legacy = self.p["target_schema"], self.p["legacy_schema"]

        def attempt():
            try:
                with self.conn.cursor() as cur:
                    table = sql.Identifier(target, item["table"])
                    column = sql.Identifier(item["column"])
                    if not item["aligned"]:
                        if item["identity"]:
                            self.drop_identity(cur, item, table, column)
                        self._run(cur, sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT "
                                               "pg_catalog.nextval(%s::regclass)").format(table, column),
                                  (catalog.qualified(self.conn, item["seq_schema"], item["seq"]),))
                    floor = [seqs.max_id(cur, target, item["table"], item["column"])]
                    if item["legacy_table"]:
                        floor.append(seqs.max_id(cur, legacy, item["legacy_table"], item["column"]))
                    floor = max([f for f in floor if f is not None], default=None)
                    last, called, inc = seqs.sequence_position(cur, item["seq_schema"], item["seq"])
                    if self.before is not None:  # --diff: what this leaves (check mode shows it as 'after')
                        key = "%s.%s.%s" % (target, item["table"], item["column"])
                        nxt = seqs.next_value(last, called, inc)
                        owned = self._owner(cur, item["seq_schema"], item["seq"])
                        if item["rule"] == "shared" and self.p["sequence_owned_by"] == "target":
                            owned = "%s.%s.%s" % (target, item["table"], item["column"])
                        self.expected[key] = {
                            "sequence": item["sequence"],
                            "how": "default" if not item["aligned"] else self.before.get(key, {}).get("how", "default"),
                            "next_value": max(floor, last) + inc if floor is not None and nxt <= floor else nxt,
                            "owned_by": owned}
                    if floor is not None and seqs.next_value(last, called, inc) <= floor:
                        # Never backwards: a concurrent nextval may have moved it on meanwhile.
                        self._run(cur, sql.SQL("SELECT pg_catalog.setval(%s::regclass, GREATEST(%s::bigint,"
                                               " (SELECT last_value FROM {})), true)").format(
                                                   sql.Identifier(item["seq_schema"], item["seq"])),
                                  (catalog.qualified(self.conn, item["seq_schema"], item["seq"]), floor))
                    if item["rule"] == "shared" and self.p["sequence_owned_by"] == "target":
                        cur.execute(OWNER_SQL, (catalog.qualified(self.conn, item["seq_schema"], item["seq"]),))
                        owner = cur.fetchone()
                        if owner != (target, item["table"], item["column"]):
                            self._run(cur, sql.SQL("ALTER SEQUENCE {} OWNED BY {}.{}").format(
                                sql.Identifier(item["seq_schema"], item["seq"]), table, column))
                self.conn.commit()
            except Exception:
                self.conn.rollback()
                raise

        db.with_retries(attempt, attempts=8)

    def drop_identity(self, cur, item, table, column):
        """DROP IDENTITY drops the identity's own sequence. Code that names that sequence (the sync triggers keep
        it ahead of ids written on the legacy side, by name) would then fail, and with it the application's
        writes, so by default a plain sequence of the same name, position and grants stands in for it."""
        old_schema, old_name = item["current_sequence"].split(".", 1)
        old = sql.Identifier(old_schema, old_name)
        last, called = seqs.sequence_position(cur, old_schema, old_name)[:2]
        cur.execute("SELECT CASE WHEN x.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(x.grantee) END,"
                    " x.privilege_type FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) x"
                    " WHERE c.oid = pg_catalog.to_regclass(%s)", (catalog.qualified(self.conn, old_schema, old_name),))
        acl = cur.fetchall()
        self._run(cur, sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP IDENTITY IF EXISTS").format(table, column))
        if self.p["replaced_sequences"] != "keep":
            return
        self._run(cur, sql.SQL("CREATE SEQUENCE {} AS bigint").format(old))
        self._run(cur, sql.SQL("SELECT pg_catalog.setval(%s::regclass, %s, %s)"),
                  (catalog.qualified(self.conn, old_schema, old_name), last, called))
        for grantee, privilege in acl:
            self._run(cur, sql.SQL("GRANT {} ON SEQUENCE {} TO {}").format(
                sql.SQL(privilege), old, sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)))
        self._run(cur, sql.SQL("COMMENT ON SEQUENCE {} IS %s").format(old), (
            "carbot.migration: stand-in for the former identity sequence of %s.%s.%s, kept for code that names it; "
            "the column now draws from %s" % (
                self.p["target_schema"], item["table"], item["column"], item["sequence"]),))

    def report(self, items):
        target, legacy, app = self.p["target_schema"], self.p["legacy_schema"], self.p["app_role"]
        problems = []
        out = []
        with self.conn.cursor() as cur:
            fresh = {(c["table"], c["column"]): c for c in self.columns(cur)}
            for item in items:
                now = fresh.get((item["table"], item["column"]), item)
                # What the column draws from now (after aligning; in check mode, before).
                cur_schema, cur_name = now["current_sequence"].split(".", 1)
                entry = {"table": item["table"], "column": item["column"], "rule": item["rule"],
                         "sequence": now["current_sequence"], "wanted_sequence": now["sequence"],
                         "legacy_table": item["legacy_table"], "problems": []}
                if not now["aligned"]:
                    entry["problems"].append("%s.%s.%s draws from %s, not from the legacy sequence %s" % (
                        target, item["table"], item["column"], now["current_sequence"], now["sequence"]))
                entry["max_target"] = seqs.max_id(cur, target, item["table"], item["column"])
                entry["max_legacy"] = (seqs.max_id(cur, legacy, item["legacy_table"], item["column"])
                                       if item["legacy_table"] else None)
                last, called, inc = seqs.sequence_position(cur, cur_schema, cur_name)
                entry["next_value"] = seqs.next_value(last, called, inc)
                highest = max([v for v in (entry["max_target"], entry["max_legacy"]) if v is not None], default=None)
                if highest is not None and entry["next_value"] <= highest:
                    entry["problems"].append("%s would hand out %s next, but the highest id is %s" % (
                        entry["sequence"], entry["next_value"], highest))
                if app:
                    # Only where the app may insert at all (not into the migration's bookkeeping, say);
                    # app_privileges reports missing table privileges.
                    tables = [catalog.qualified(self.conn, target, item["table"])]
                    if item["legacy_table"]:
                        tables.append(catalog.qualified(self.conn, legacy, item["legacy_table"]))
                    cur.execute("SELECT bool_or(pg_catalog.has_table_privilege(%s, t, 'INSERT'))"
                                " FROM pg_catalog.unnest(%s::text[]) t", (app, tables))
                    inserts = cur.fetchone()[0]
                    cur.execute("SELECT pg_catalog.has_sequence_privilege(%s, %s, 'USAGE')",
                                (app, catalog.qualified(self.conn, cur_schema, cur_name)))
                    entry["app_usage"] = cur.fetchone()[0] if inserts else None
                    if entry["app_usage"] is False:
                        entry["problems"].append("role %s has no USAGE on %s: its inserts into %s would fail" % (
                            app, entry["sequence"], item["table"]))
                entry["ok"] = not entry["problems"]
                problems.extend(entry["problems"])
                out.append(entry)
        self.conn.commit()
        return out, problems

    def prove(self, items):
        """Insert through the app role into both schemas (rolled back): ids new and distinct."""
        p = self.p
        app_params = dict(p, login_user=p["app_role"], login_password=p["app_password"])
        proof, problems = {}, []
        try:
            conn = db.connect(app_params, application_name="carbot.migration sequences proof")
        except Exception as exc:  # noqa: BLE001
            return proof, ["cannot connect as %s: %s" % (p["app_role"], str(exc).strip().splitlines()[0])]
        try:
            for item in items:
                if item["rule"] != "shared":
                    continue
                got = {}
                for side, schema, table in (("legacy_id", p["legacy_schema"], item["legacy_table"]),
                                            ("target_id", p["target_schema"], item["table"])):
                    try:
                        with conn.cursor() as cur:
                            cur.execute("SAVEPOINT probe")
                            got[side] = probe.probe_insert(cur, schema, table, item["column"])[1]
                            cur.execute("RELEASE SAVEPOINT probe")
                    except Exception as exc:  # noqa: BLE001 - the failure is the finding
                        with conn.cursor() as cur:
                            cur.execute("ROLLBACK TO SAVEPOINT probe")
                        problems.append("insert into %s.%s as %s failed: %s" % (
                            schema, table, p["app_role"], str(exc).strip().splitlines()[0]))
                highest = max([v for v in (item.get("max_target"), item.get("max_legacy")) if v is not None],
                              default=None)
                for value in got.values():
                    if highest is not None and value <= highest:
                        problems.append("%s: insert as %s got id %s, not beyond the highest id %s" % (
                            item["table"], p["app_role"], value, highest))
                if len(got) == 2 and got["legacy_id"] == got["target_id"]:
                    problems.append("%s: the legacy and the target insert got the same id %s" % (
                        item["table"], got["legacy_id"]))
                proof[item["table"]] = got
            conn.rollback()
        finally:
            conn.close()
        return proof, problems
