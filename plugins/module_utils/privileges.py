# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The application role's privileges on carbot_v2 (the app_privileges module): what it lacks compared with what it
holds on the legacy schema, the grants that close the gap, and the before/after text of --diff."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils import catalog, sequences as seqs
from ansible_collections.carbot.migration.plugins.module_utils.db import sql
from ansible_collections.carbot.migration.plugins.module_utils.errors import PreconditionError

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
    cur.execute(sql.SQL("SELECT {}(%s, %s, %s)").format(sql.Identifier("pg_catalog", func)),
                (role, qualified_name, privilege))
    return cur.fetchone()[0]


def _ordered(privileges, order):
    return [pr for pr in order if pr in privileges] + sorted(pr for pr in privileges if pr not in order)


class Privileges:
    """What the app role lacks on the target schema (and keeps on the legacy one), as grants to run and as
    before/after text for --diff. ``params`` are the app_privileges module's options."""

    def __init__(self, params, conn):
        self.p = params
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
            raise PreconditionError("role %s (carbot_app_db_user) does not exist" % app)
        cur.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (target,))
        if cur.fetchone() is None:
            raise PreconditionError("schema %s does not exist in database %s" % (target, p["login_db"]))

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
