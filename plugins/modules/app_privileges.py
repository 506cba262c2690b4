#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app_privileges
short_description: Give the application role on carbot_v2 what it has on the legacy schema
description:
  - Compares, object by object, what O(app_role) may do in O(legacy_schema) with what it may do in
    O(target_schema), and grants what is missing. Nothing is revoked, except on O(exclude_tables).
  - B(Schema) C(USAGE) on O(target_schema) (without it PostgreSQL silently skips the schema on the search_path
    and the app keeps reading the legacy tables).
  - B(Tables.) Each target table gets the privileges (C(has_table_privilege)) the role has on its legacy
    counterpart (the mapping declaration's driving table, else the table of the same name). A target table with
    no counterpart gets O(new_table_privileges). With O(table_privileges) set, every table gets exactly that
    declared set instead of the comparison. Tables in O(exclude_tables) (the migration's bookkeeping; the
    quarantine holds legacy rows with secrets, the cutover state steers the rollback) get nothing, and whatever
    the role holds on them (and on their sequences) is revoked - however it got it, e.g. through the default
    privileges below when the table was created after them, as C(migration_cutover_state) is. (Default privileges
    cannot leave out single tables; C(carbot.migration.search_path) also revokes on the state table whenever it
    writes it.) A privilege that stays because it comes through C(PUBLIC) or a role membership fails the task.
  - B(Sequences.) Every sequence a target column draws from (its identity sequence, or the shared legacy sequence
    after C(carbot.migration.sequences)) gets what the role has on the legacy counterpart's sequence, at least
    O(sequence_privileges) (C(nextval) needs C(USAGE)).
  - B(Default privileges.) C(ALTER DEFAULT PRIVILEGES FOR ROLE <each of default_privileges_for> IN SCHEMA
    <target>) on tables and sequences, so that a table created later in carbot_v2 is usable too; and every
    default privilege the legacy schema grants the role is mirrored.
  - C(CONNECT) on the database is checked and reported, never granted.
  - O(check_only=true) is the preflight; it reports what is missing (C(missing)) and changes nothing.
    Idempotent; supports check mode.
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  app_role:
    description: The application's role (C(carbot_app_db_user)).
    type: str
    required: true
  check_only:
    description: Report what is missing; grant nothing.
    type: bool
    default: false
  table_privileges:
    description: A declared set for every target table instead of the comparison with the legacy counterpart.
    type: list
    elements: str
    choices: [SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER]
  new_table_privileges:
    description: Privileges for a target table that has no legacy counterpart (e.g. C(organizations)).
    type: list
    elements: str
    choices: [SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER]
    default: [SELECT, INSERT, UPDATE, DELETE]
  sequence_privileges:
    description: Privileges every sequence used by a target column gets at least.
    type: list
    elements: str
    choices: [USAGE, SELECT, UPDATE]
    default: [USAGE, SELECT]
  exclude_tables:
    description: Target tables the role gets nothing on.
    type: list
    elements: str
    default: [migration_status, migration_quarantine, migration_cutover_state]
  default_privileges_for:
    description:
      - Roles whose future tables and sequences in O(target_schema) the app role gets privileges on by default
        (C(ALTER DEFAULT PRIVILEGES FOR ROLE ...)). Default the owner of O(target_schema). Empty list disables.
    type: list
    elements: str
notes:
  - The connecting role must own the target tables (or be superuser) to grant on them, and be (a member of) each
    role in O(default_privileges_for).
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Preflight - what does the app role miss on carbot_v2?
  carbot.migration.app_privileges:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    check_only: true
  register: missing
  no_log: true

- name: Grant the app role on carbot_v2 what it has on public
  carbot.migration.app_privileges:
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
  no_log: true
"""

RETURN = r"""
missing:
  description:
    - What the role lacks (before the run), one dict each with C(object_type) (V(database), V(schema), V(table),
      V(sequence), V(default)), C(object), C(privilege), and C(why) (the legacy object it is compared with, or the
      declared set).
  returned: always
  type: list
  elements: dict
still_missing:
  description: What is still missing after the run (same shape as RV(missing)); in check_only or check mode RV(missing).
  returned: always
  type: list
  elements: dict
ok:
  description: Nothing missing after the run (in check_only mode or check mode, nothing missing at all).
  returned: always
  type: bool
diff:
  description:
    - With C(--diff), the privileges O(app_role) holds on every object this run grants or revokes something on,
      one line per object (the object, a colon, its privileges), C(before) and C(after) the run; in check
      mode and with O(check_only), C(after) is what the statements would leave.
  returned: with --diff
  type: dict
  sample:
    before: "schema carbot_v2: (none)\ntable carbot_v2.leads: (none)\n"
    after: "schema carbot_v2: USAGE\ntable carbot_v2.leads: SELECT, INSERT, UPDATE, DELETE\n"
executed_queries:
  description: GRANT statements run (or that would run).
  returned: always
  type: list
  elements: str
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import catalog, cutover_state, sequences as seqs
from ansible_collections.carbot.migration.plugins.module_utils import common, db
from ansible_collections.carbot.migration.plugins.module_utils.db import sql

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
DEFAULT_TYPES = {"r": ("TABLES", TABLE_PRIVILEGES), "S": ("SEQUENCES", SEQUENCE_PRIVILEGES)}

# Default privileges a schema grants the role: (for_role, objtype, privilege).
DEFAULT_ACL_SQL = """
SELECT pg_catalog.pg_get_userbyid(d.defaclrole), d.defaclobjtype, x.privilege_type
  FROM pg_catalog.pg_default_acl d
  JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
 CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) x
 WHERE n.nspname = %s AND x.grantee = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)
   AND d.defaclobjtype IN ('r', 'S')
"""


def _has(cur, kind, role, qualified_name, privilege):
    func = {"table": "has_table_privilege", "sequence": "has_sequence_privilege"}[kind]
    cur.execute("SELECT pg_catalog.%s(%%s, %%s, %%s)" % func, (role, qualified_name, privilege))  # noqa: S608
    return cur.fetchone()[0]


def _ordered(privileges, order):
    return [pr for pr in order if pr in privileges] + sorted(pr for pr in privileges if pr not in order)


class Privileges:
    def __init__(self, module, conn):
        self.module = module
        self.p = module.params
        self.conn = conn
        self.changes = []  # what the last missing() plans per object, for --diff

    def _plan(self, kind, label, ident, grant=(), revoke=False):
        self.changes.append({"kind": kind, "label": label, "ident": ident, "grant": list(grant), "revoke": revoke})

    def held(self, cur, change):
        """The privileges the app role holds on one planned object now (in the canonical order)."""
        app, kind, ident = self.p["app_role"], change["kind"], change["ident"]
        if kind == "schema":
            cur.execute("SELECT pr FROM pg_catalog.unnest(ARRAY['USAGE', 'CREATE']) pr "
                        "WHERE pg_catalog.has_schema_privilege(%s, %s, pr)", (app, ident))
            return _ordered([r[0] for r in cur.fetchall()], ("USAGE", "CREATE"))
        if kind == "table":
            name = self.q(*ident)
            out = [pr for pr in TABLE_PRIVILEGES if _has(cur, "table", app, name, pr)]
            for pr in ("SELECT", "INSERT", "UPDATE", "REFERENCES"):  # column grants, shown as such
                cur.execute("SELECT pg_catalog.has_any_column_privilege(%s, %s, %s)", (app, name, pr))
                if cur.fetchone()[0] and pr not in out:
                    out.append("%s (columns)" % pr)
            return out
        if kind == "sequence":
            return [pr for pr in SEQUENCE_PRIVILEGES if _has(cur, "sequence", app, self.q(*ident), pr)]
        role, objtype = ident  # default privileges
        cur.execute(DEFAULT_ACL_SQL, (self.p["target_schema"], app))
        return _ordered([pr for r, t, pr in cur.fetchall() if r == role and t == objtype], DEFAULT_TYPES[objtype][1])

    def diff(self, cur, before=None):
        """{label: privileges} of every planned object: now, or (with ``before``) what the plan leaves."""
        out = {}
        for change in self.changes:
            if before is None:
                out[change["label"]] = self.held(cur, change)
            elif change["revoke"]:
                out[change["label"]] = []
            else:
                order = {"sequence": SEQUENCE_PRIVILEGES, "schema": ("USAGE", "CREATE"), "table": TABLE_PRIVILEGES,
                         }.get(change["kind"]) or DEFAULT_TYPES[change["ident"][1]][1]
                out[change["label"]] = _ordered(set(before[change["label"]]) | set(change["grant"]), order)
        return out

    @staticmethod
    def diff_text(held):
        return "".join("%s: %s\n" % (label, ", ".join(privileges) or "(none)") for label, privileges in held.items())

    def q(self, schema, name):
        return catalog.qualified(self.conn, schema, name)

    def missing(self, cur):
        """Everything the app role lacks, as (dicts, grant statements)."""
        p = self.p
        app, target, legacy = p["app_role"], p["target_schema"], p["legacy_schema"]
        missing, grants = [], []
        self.changes = []
        cur.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (app,))
        if cur.fetchone() is None:
            self.module.fail_json(msg="role %s (carbot_app_db_user) does not exist" % app)
        cur.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (target,))
        if cur.fetchone() is None:
            self.module.fail_json(msg="schema %s does not exist in database %s" % (target, p["login_db"]))

        cur.execute("SELECT pg_catalog.has_database_privilege(%s, pg_catalog.current_database(), 'CONNECT')", (app,))
        if not cur.fetchone()[0]:
            missing.append({"object_type": "database", "object": p["login_db"], "privilege": "CONNECT",
                            "why": "the app connects to it (not granted here: check the database's grants)"})

        cur.execute("SELECT pg_catalog.has_schema_privilege(%s, %s, 'USAGE')", (app, target))
        if not cur.fetchone()[0]:
            missing.append({"object_type": "schema", "object": target, "privilege": "USAGE",
                            "why": "without it the schema is skipped on the search_path"})
            grants.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(target),
                                                                           sql.Identifier(app)))
            self._plan("schema", "schema %s" % target, target, grant=["USAGE"])

        legacy_tables = set(catalog.tables_in(cur, legacy))
        for table in catalog.tables_in(cur, target):
            if table in p["exclude_tables"]:
                m, g = self.excess(cur, table)
                missing += m
                grants += g
                continue
            source = catalog.counterpart(table, legacy_tables)
            if p["table_privileges"]:
                wanted, why = list(p["table_privileges"]), "declared table_privileges"
            elif source:
                wanted = [pr for pr in TABLE_PRIVILEGES if _has(cur, "table", app, self.q(legacy, source), pr)]
                why = "as on %s.%s" % (legacy, source)
            else:
                wanted, why = list(p["new_table_privileges"]), "new table: new_table_privileges"
            lacking = [pr for pr in wanted if not _has(cur, "table", app, self.q(target, table), pr)]
            for pr in lacking:
                missing.append({"object_type": "table", "object": "%s.%s" % (target, table), "privilege": pr,
                                "why": why})
            if lacking:
                grants.append(sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(pr) for pr in lacking), sql.Identifier(target, table),
                    sql.Identifier(app)))
                self._plan("table", "table %s.%s" % (target, table), (target, table), grant=lacking)

        legacy_seqs = {(c["table"], c["column"]): c for c in seqs.sequence_columns(cur, legacy)}
        seen = set()
        for col in seqs.sequence_columns(cur, target):
            if col["table"] in p["exclude_tables"]:
                seq = (col["sequence_schema"], col["sequence"])
                having = [pr for pr in SEQUENCE_PRIVILEGES if _has(cur, "sequence", app, self.q(*seq), pr)]
                if having and seq not in seen:
                    seen.add(seq)
                    missing.append({"object_type": "sequence", "object": "%s.%s" % seq, "privilege": "no " +
                                    ", ".join(having), "why": "sequence of the migration's %s" % col["table"]})
                    grants.append(sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(
                        sql.Identifier(*seq), sql.Identifier(app)))
                    self._plan("sequence", "sequence %s.%s" % seq, seq, revoke=True)
                continue
            seq = (col["sequence_schema"], col["sequence"])
            if seq in seen:
                continue
            seen.add(seq)
            wanted = set(p["sequence_privileges"])
            source = catalog.counterpart(col["table"], legacy_tables)
            lc = legacy_seqs.get((source, col["column"])) if source else None
            why = "sequence of %s.%s.%s" % (target, col["table"], col["column"])
            if lc:
                legacy_seq = self.q(lc["sequence_schema"], lc["sequence"])
                wanted |= {pr for pr in SEQUENCE_PRIVILEGES if _has(cur, "sequence", app, legacy_seq, pr)}
                why += ", as on %s.%s" % (lc["sequence_schema"], lc["sequence"])
            lacking = [pr for pr in SEQUENCE_PRIVILEGES
                       if pr in wanted and not _has(cur, "sequence", app, self.q(*seq), pr)]
            for pr in lacking:
                missing.append({"object_type": "sequence", "object": "%s.%s" % seq, "privilege": pr, "why": why})
            if lacking:
                grants.append(sql.SQL("GRANT {} ON SEQUENCE {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(pr) for pr in lacking), sql.Identifier(*seq), sql.Identifier(app)))
                self._plan("sequence", "sequence %s.%s" % seq, seq, grant=lacking)

        m, g = self.default_privileges(cur)
        return missing + m, grants + g

    def excess(self, cur, table):
        """An excluded table (the migration's bookkeeping): the app role must hold nothing on it, however it got
        it (a GRANT ON ALL TABLES, or this schema's default privileges when the table was created after them, as
        migration_cutover_state is). Returns (findings, [REVOKE])."""
        app, target = self.p["app_role"], self.p["target_schema"]
        name = self.q(target, table)
        having = [pr for pr in TABLE_PRIVILEGES if _has(cur, "table", app, name, pr)]
        for pr in ("SELECT", "INSERT", "UPDATE", "REFERENCES"):  # column grants count too
            cur.execute("SELECT pg_catalog.has_any_column_privilege(%s, %s, %s)", (app, name, pr))
            if cur.fetchone()[0] and pr not in having:
                having.append(pr)
        if not having:
            return [], []
        self._plan("table", "table %s.%s" % (target, table), (target, table), revoke=True)
        return ([{"object_type": "table", "object": "%s.%s" % (target, table), "privilege": "no " + ", ".join(having),
                  "why": "the migration's bookkeeping (exclude_tables): the app role must neither read nor write it"}],
                [sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(sql.Identifier(target, table), sql.Identifier(app))])

    def default_privileges(self, cur):
        p = self.p
        app, target, legacy = p["app_role"], p["target_schema"], p["legacy_schema"]
        wanted = {}  # (for_role, objtype) -> set of privileges
        for_roles = p["default_privileges_for"]
        if for_roles is None:
            cur.execute("SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = %s",
                        (target,))
            for_roles = [cur.fetchone()[0]]
        table_set = set(p["table_privileges"] or p["new_table_privileges"])
        for role in for_roles:
            wanted.setdefault((role, "r"), set()).update(table_set)
            wanted.setdefault((role, "S"), set()).update(p["sequence_privileges"])
        cur.execute(DEFAULT_ACL_SQL, (legacy, app))
        for role, objtype, privilege in cur.fetchall():
            wanted.setdefault((role, objtype), set()).add(privilege)
        cur.execute(DEFAULT_ACL_SQL, (target, app))
        have = set(cur.fetchall())  # (role, object type, privilege)
        missing, grants = [], []
        for (role, objtype), privileges in sorted(wanted.items()):
            kind, order = DEFAULT_TYPES[objtype]
            lacking = [pr for pr in order if pr in privileges and (role, objtype, pr) not in have]
            for pr in lacking:
                missing.append({"object_type": "default", "privilege": pr,
                                "object": "%s %s created by %s" % (target, kind.lower(), role),
                                "why": "default privileges, so that later objects are usable"})
            if lacking:
                grants.append(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON {} TO {}").format(
                    sql.Identifier(role), sql.Identifier(target), sql.SQL(", ").join(sql.SQL(pr) for pr in lacking),
                    sql.SQL(kind), sql.Identifier(app)))
                self._plan("default", "default privileges on %s created by %s in %s" % (kind.lower(), role, target),
                           (role, objtype), grant=lacking)
        return missing, grants


def grant(module, conn):
    """The grants (or, with check_only or in check mode, what is missing); ends the module."""
    priv = Privileges(module, conn)
    with conn.cursor() as cur:
        missing, grants = priv.missing(cur)
        queries = [g.as_string(conn) for g in grants]
        planned = list(priv.changes)
        before = priv.diff(cur) if module._diff else None
    conn.commit()
    dry = module.check_mode or module.params["check_only"]
    if grants and not dry:
        def attempt():
            with db.transaction(conn), conn.cursor() as cur:
                for grant in grants:
                    cur.execute(grant)
        db.with_retries(attempt, attempts=8)
        with conn.cursor() as cur:
            still = priv.missing(cur)[0]
        conn.commit()
    else:
        still = missing
    diff = None
    if module._diff:
        # --diff: the app role's privileges on every object this run grants or revokes something on
        priv.changes = planned
        with conn.cursor() as cur:
            after = priv.diff(cur, before) if dry else priv.diff(cur)
        conn.commit()
        diff = {"before_header": "privileges of %s (now)" % module.params["app_role"],
                "after_header": "privileges of %s (%s)" % (module.params["app_role"],
                                                           "after the grants" if dry else "after this run"),
                "before": priv.diff_text(before), "after": priv.diff_text(after)}
    ok = not still
    result = dict(changed=bool(grants) and not module.params["check_only"], missing=missing, still_missing=still,
                  ok=ok, executed_queries=queries,
                  carbot_report={"app_privileges": {"role": module.params["app_role"],
                                                    "missing_before": len(missing),
                                                    "granted": 0 if dry else len(grants), "ok": ok}})
    if diff is not None:
        result["diff"] = diff
    if still and not dry:
        module.fail_json(msg="role %s still lacks: %s" % (module.params["app_role"], ", ".join(
            "%s on %s" % (m["privilege"], m["object"]) for m in still)), **result)
    module.exit_json(**result)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "legacy_schema"),
        app_role=dict(type="str", required=True),
        check_only=dict(type="bool", default=False),
        table_privileges=dict(type="list", elements="str", choices=list(TABLE_PRIVILEGES)),
        new_table_privileges=dict(type="list", elements="str", choices=list(TABLE_PRIVILEGES),
                                  default=["SELECT", "INSERT", "UPDATE", "DELETE"]),
        sequence_privileges=dict(type="list", elements="str", choices=list(SEQUENCE_PRIVILEGES),
                                 default=["USAGE", "SELECT"]),
        exclude_tables=dict(type="list", elements="str",
                            default=["migration_status", "migration_quarantine", cutover_state.STATE_TABLE]),
        default_privileges_for=dict(type="list", elements="str"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True)
    common.run_connected(module, lambda conn: grant(module, conn), "app_privileges failed")


if __name__ == "__main__":
    main()
