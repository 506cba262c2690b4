#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sequences
short_description: Make carbot_v2's id columns draw from the legacy sequences, so ids never collide
description:
  - Reads the catalog for every sequence-fed column of O(target_schema) (identity columns, serial defaults, any
    C(nextval) default); nothing is hard-coded.
  - B(Shared rule.) A target column whose legacy counterpart (the mapping declaration's driving table, else the
    table of the same name; same column name) is itself sequence-fed is made to use B(the same sequence object),
    C(ALTER TABLE <target>.<t> ALTER COLUMN <c> DROP IDENTITY IF EXISTS) and
    C(SET DEFAULT nextval('<legacy sequence>'::regclass)), in one transaction. The app then gets its ids from one
    sequence whether it writes to carbot_v2 (after the switch) or to the legacy schema again (after a rollback),
    and the sync triggers copy rows with their ids in both directions, so ids can never collide.
  - B(Own rule.) A column without a legacy counterpart keeps its sequence, which is only moved ahead of the
    column's highest value when it lags behind.
  - Every sequence used is moved (C(setval), never backwards) beyond the highest id in both the target and the
    legacy column, so that the copied ids are never handed out again.
  - With O(app_role), checks that the role has C(USAGE) on every sequence used; with O(app_password) as well, it
    proves it; as the app role, in one transaction that is rolled back, one row is inserted into the legacy
    table and one into the target table of every shared column; both ids must be new and different.
  - O(check_only=true) only reports (for preflight); idempotent; supports check mode.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  check_only:
    description: Report the columns and what is not aligned, change nothing, never fail for a finding.
    type: bool
    default: false
  sequence_owned_by:
    description:
      - V(legacy) leaves a shared sequence C(OWNED BY) its legacy column (as created by C(bigserial)).
      - V(target) moves the ownership to the carbot_v2 column, so that dropping the legacy tables at cleanup does
        not drop the sequence that carbot_v2 uses. Do this at cleanup, not before a possible rollback is over.
    type: str
    choices: [legacy, target]
    default: legacy
  replaced_sequences:
    description:
      - C(DROP IDENTITY) drops the identity column's own sequence. V(keep) creates a plain sequence of the same
        name, position and grants in its place, so that code naming it (the sync triggers bump the other side's
        sequence by name) keeps working; nothing draws ids from it any more. V(drop) leaves it dropped.
    type: str
    choices: [keep, drop]
    default: keep
  app_role:
    description:
      - The application's role (C(carbot_app_db_user)); its C(USAGE) is checked on every sequence of a table it may
        insert into (C(app_usage) is null for the others, e.g. the migration's bookkeeping).
    type: str
  app_password:
    description: Password of O(app_role) (C(carbot_app_db_password)), for the insert proof; never logged.
    type: str
  tables:
    description: Only these target tables (default every table of O(target_schema)).
    type: list
    elements: str
notes:
  - C(ALTER TABLE) takes an C(ACCESS EXCLUSIVE) lock on the target table for a moment; it runs under
    O(lock_timeout_ms) and is retried with backoff, one table per transaction.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Let carbot_v2 draw ids from the legacy sequences
  carbot.migration.sequences:
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
  no_log: true

- name: Preflight - report sequences and the app's USAGE on them
  carbot.migration.sequences:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    check_only: true
  no_log: true
"""

RETURN = r"""
columns:
  description:
    - Per sequence-fed target column, C(table), C(column), C(rule) (V(shared) or V(own)), C(sequence) (the one it
      draws from, qualified), C(wanted_sequence), C(next_value) (of C(sequence)), C(max_target), C(max_legacy),
      C(app_usage), C(ok) and C(problems).
  returned: always
  type: list
  elements: dict
ok:
  description: Every column aligned (and the app role's checks passed).
  returned: always
  type: bool
problems:
  description: What is not right, one line each.
  returned: always
  type: list
  elements: str
proof:
  description: The ids the insert proof got, per table (C(legacy_id), C(target_id)).
  returned: when app_password is set and not in check mode
  type: dict
diff:
  description:
    - With C(--diff), per id column of the target (C(carbot_v2.leads.id)) the sequence it draws from (and whether as
      an identity or a default), the value it hands out next and the column owning the sequence, C(before) and
      C(after) the run; in check mode and with O(check_only), C(after) is what the statements would leave.
  returned: with --diff
  type: dict
  sample:
    before: "carbot_v2.leads.id: carbot_v2.leads_id_seq (identity), next value 1, owned by carbot_v2.leads.id\n"
    after: "carbot_v2.leads.id: public.leads_id_seq (default), next value 20001, owned by public.leads.id\n"
executed_queries:
  description: Statements run (or that would run in check mode).
  returned: always
  type: list
  elements: str
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import catalog, probe, sequences as seqs
from ansible_collections.carbot.migration.plugins.module_utils import common, db
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


def align(module, conn):
    """Align the sequences (or report what is off); ends the module."""
    aligner = Aligner(module, conn)
    with conn.cursor() as cur:
        items = aligner.columns(cur)
        if module._diff:
            aligner.before = aligner.state(cur)
    conn.commit()
    for item in items:
        aligner.align(item)
    # In check mode nothing moved: report what is there now (the plan is in executed_queries).
    columns, problems = aligner.report(items)
    result = dict(changed=aligner.changed and not module.params["check_only"], columns=columns,
                  executed_queries=aligner.queries)
    if module.params["check_only"] or module.check_mode:
        problems = [pr for c in columns for pr in c["problems"]]
    if module.params["app_password"] and not module.check_mode and not module.params["check_only"]:
        result["proof"], proof_problems = aligner.prove(columns)
        problems += proof_problems
    result["problems"] = problems
    result["ok"] = not problems
    if module._diff:
        # --diff: what each id column draws from, its next value and the sequence's owner
        dry = module.check_mode or module.params["check_only"]
        if dry:
            after = dict(aligner.before, **aligner.expected)
        else:
            with conn.cursor() as cur:
                after = aligner.state(cur)
            conn.commit()
        result["diff"] = {"before_header": "id sequences of %s (now)" % module.params["target_schema"],
                          "after_header": "id sequences of %s (%s)" % (
                              module.params["target_schema"], "after aligning" if dry else "after this run"),
                          "before": aligner.diff_text(aligner.before), "after": aligner.diff_text(after)}
    result["carbot_report"] = {"sequences": {
        "%s.%s" % (c["table"], c["column"]): {
            "rule": c["rule"], "sequence": c["sequence"], "next_value": c["next_value"], "ok": c["ok"]}
        for c in columns}}
    if problems and not module.params["check_only"] and not module.check_mode:
        module.fail_json(msg="sequences not right after aligning: %s" % "; ".join(problems), **result)
    module.exit_json(**result)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "legacy_schema"),
        check_only=dict(type="bool", default=False),
        sequence_owned_by=dict(type="str", default="legacy", choices=["legacy", "target"]),
        replaced_sequences=dict(type="str", default="keep", choices=["keep", "drop"]),
        app_role=dict(type="str"),
        app_password=dict(type="str", no_log=True),
        tables=dict(type="list", elements="str"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True,
                                    required_by={"app_password": "app_role"})
    common.run_connected(module, lambda conn: align(module, conn), "sequences failed")


if __name__ == "__main__":
    main()
