#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: search_path
short_description: Switch the application's search_path to carbot_v2 and back, exactly
description:
  - V(target) sets C(ALTER DATABASE <db> SET search_path TO <target_schema>, <legacy_schema>) and
    V(legacy) puts back exactly what was there before.
  - B(Role-level overrides.) A setting made with C(ALTER ROLE <app> SET search_path) or
    C(ALTER ROLE <app> IN DATABASE <db> SET search_path) beats the database-level one, so the app would
    silently keep the legacy schema. The module reads C(pg_db_role_setting), reports every override that
    applies to the database, and handles the ones of O(app_role) (and O(roles)) by also setting the target
    path at the role-in-database level, the most specific level there is.
  - B(Exact way back.) Before the first change the previous values (database level, and role-in-database
    level of every handled role; "none" included) are recorded in C(<target_schema>.migration_cutover_state)
    (created if absent), in the same transaction as the change. V(legacy) restores those values
    (C(RESET) where there was none) and leaves any role-level (all databases) setting untouched, so that
    after the way back every role sees exactly the path it saw before.
  - B(A record nobody else can steer.) Every privilege on the state table is revoked from all roles but its owner
    whenever the module writes it (default privileges of the schema would give the app role some). A sha256 of
    each recorded value is kept in the table's C(COMMENT), which only the owner can change; a record that does
    not match it is refused, and V(legacy) also refuses a record that names roles other than O(app_role) and
    O(roles); nothing is changed then, and the message says why. Schemas in it that do not exist are warned about.
  - B(Existing sessions.) Settings apply when a session starts; sessions of the app role that started
    before the switch keep the old path. They are found in C(pg_stat_activity) (C(backend_start) earlier
    than the recorded switch) and, by default, the idle ones are terminated with C(pg_terminate_backend)
    (the app's pool reconnects and gets the new path). See O(sessions).
  - B(Verification.) With O(app_password), the module opens a fresh session as O(app_role) after the change and
    checks C(SHOW search_path), the schema where O(verify_table) resolves, and an C(INSERT) into
    O(verify_write_table) (rolled back) whose id must lie beyond the highest id in both schemas. A failed
    verification fails the task.
  - V(read) changes nothing and needs no target schema; it reports the settings that apply to the database
    (database level, C(ALTER ROLE ALL), every role's role and role-in-database level) as lists of schema names
    (RV(settings)), parsed the way PostgreSQL reads them (quoted names kept, unquoted folded to lower case), and
    the path a new session of O(app_role) gets (RV(effective)). Playbooks compare these lists instead of parsing
    C(pg_db_role_setting) themselves.
  - Idempotent (C(changed=false) when the settings are already as wanted and no old session is left) and
    supports check mode (reports the statements it would run and the sessions it would terminate).
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  state:
    description:
      - V(target) switches to O(search_path) (default C(<target_schema>, <legacy_schema>)).
      - V(legacy) restores the values recorded before the switch.
      - V(read) only reads the settings (RV(settings), RV(effective)); it never fails for a missing schema.
    type: str
    choices: [target, legacy, read]
    default: target
  target_schema:
    description: The enterprise schema (C(carbot_target_schema)); it also holds the state table.
  search_path:
    description: The path set by V(target); default O(target_schema) then O(legacy_schema).
    type: list
    elements: str
  app_role:
    description: The application's database role (C(carbot_app_db_user)).
    type: str
    required: true
  app_password:
    description:
      - Password of O(app_role) (C(carbot_app_db_password)); never logged. When set, the result is verified
        from a fresh session as O(app_role).
    type: str
  roles:
    description:
      - More roles whose role-level overrides must be handled like those of O(app_role) (e.g. a reporting role).
        Overrides of other roles are reported, not changed.
    type: list
    elements: str
    default: []
  sessions:
    description:
      - What to do with sessions of the handled roles that started before the change and so still use the old path.
      - V(terminate_idle) terminates the idle ones, waiting up to O(session_wait_seconds) for busy ones to become
        idle (a transaction in progress is never cut); what is left is reported with a warning.
      - V(terminate_all) terminates them all, busy or not (their open transactions roll back).
      - V(report) only counts them.
    type: str
    choices: [terminate_idle, terminate_all, report]
    default: terminate_idle
  session_wait_seconds:
    description: How long V(terminate_idle) waits for busy old sessions to become idle.
    type: int
    default: 10
  verify_table:
    description: Table whose unqualified name must resolve in the wanted schema for O(app_role).
    type: str
    default: leads
  verify_write_table:
    description:
      - Table the verification inserts one row into, by its unqualified name (rolled back). It needs a
        sequence-fed O(verify_write_column) in both schemas. Empty string skips the write.
    type: str
    default: audit_logs
  verify_write_column:
    description: The sequence-fed id column of O(verify_write_table).
    type: str
    default: id
notes:
  - The connecting role (C(carbot_db_user)) must own the database (or be superuser) for C(ALTER DATABASE ... SET),
    have C(CREATEROLE) for C(ALTER ROLE ... IN DATABASE ... SET), and be allowed to signal the app's
    backends (superuser, or member of C(pg_signal_backend)).
  - A path the application sets itself (C(SET search_path) after connecting, C(options=-csearch_path=...) in its
    connection string, C(PGOPTIONS)) cannot be seen from the server; the fresh-session verification and the
    health check through the API are what catch it.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Switch the app to carbot_v2
  carbot.migration.search_path:
    state: target
    login_host: "{{ carbot_db_host }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    app_password: "{{ carbot_app_db_password }}"
  no_log: true

- name: Read the search_path settings (lists of schema names), changing nothing
  carbot.migration.search_path:
    state: read
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
  register: settings

- name: The database-level path starts with carbot_v2
  ansible.builtin.assert:
    that: (settings.settings.database | default([], true) | first | default('')) == 'carbot_v2'

- name: Back to the legacy schema, exactly as before
  carbot.migration.search_path:
    state: legacy
    login_db: "{{ carbot_db_name }}"
    login_password: "{{ carbot_db_password }}"
    app_role: "{{ carbot_app_db_user }}"
    app_password: "{{ carbot_app_db_password }}"
  no_log: true
"""

RETURN = r"""
previous:
  description:
    - The values recorded before the switch (C(database), and C(roles) as role-in-database values);
      C(null) means "no setting". V(legacy) restores exactly these.
  returned: always
  type: dict
current:
  description: The settings after the run (C(database), C(all_roles), C(roles)), as search_path strings.
  returned: always
  type: dict
settings:
  description:
    - The settings after the run as lists of schema names, C(null) where there is no setting (an empty list is an
      explicit empty path). C(database) is the database level, C(all_roles) C(ALTER ROLE ALL), and C(roles) maps each
      role with a setting to its C(role) (all databases) and C(role_in_database) values.
  returned: always
  type: dict
  sample:
    database: [carbot_v2, public]
    all_roles: null
    roles: {carbot_app: {role: null, role_in_database: [carbot_v2, public]}}
effective:
  description:
    - The path a new session of O(app_role) gets after the run (C(search_path) as a string, C(names) as a list,
      C(null) when postgresql.conf decides), and from which C(level) it comes.
  returned: always
  type: dict
overrides:
  description: Every role-level search_path setting that applies to the database (before the run), with C(handled).
  returned: always
  type: list
  elements: dict
sessions:
  description: Old sessions found (C(old_path)), C(terminated), C(remaining), the C(policy) and the C(pids) involved.
  returned: always
  type: dict
verification:
  description: The fresh-session check as O(app_role) (C(search_path), C(resolved_schema), C(write_id), C(ok)).
  returned: when app_password is set and not in check mode
  type: dict
diff:
  description:
    - With C(--diff), every search_path setting that applies in the database (database level, C(ALTER ROLE ALL),
      each role's own levels) and the path a new session of O(app_role) gets, one per line, C(before) and
      C(after) the run (in check mode, after the statements it would run).
  returned: with --diff
  type: dict
  sample:
    before: "database carbot: \"$user\", public\nall roles: (not set)\na new session of carbot_app gets: ..."
    after: "database carbot: carbot_v2, public\nall roles: (not set)\na new session of carbot_app gets: ..."
executed_queries:
  description: Statements that changed settings (or would, in check mode).
  returned: always
  type: list
  elements: str
carbot_report:
  description: A summary for the migration report.
  returned: always
  type: dict
"""

import copy
import time

from ansible_collections.carbot.migration.plugins.module_utils import (

    catalog, cutover_state, probe, search_path as paths, sequences as seqs, sessions as app_sessions)
from ansible_collections.carbot.migration.plugins.module_utils import common, db

STATE_KEY = "search_path"


def diff_text(settings, dbname, app_role):
    """The search_path settings that apply in ``dbname``, one per line, for ``--diff``: the database level,
    ALTER ROLE ALL, every role's own levels, and the path a new session of the app role gets."""
    def show(names):
        return "(not set)" if names is None else paths.format_search_path(names)

    lines = ["database %s: %s" % (dbname, show(settings["database"])),
             "all roles: %s" % show(settings["all_roles"])]
    for role in sorted(settings["roles"]):
        entry = settings["roles"][role]
        lines.append("role %s (all databases): %s" % (role, show(entry.get("role"))))
        lines.append("role %s in database %s: %s" % (role, dbname, show(entry.get("role_in_database"))))
    level, path = paths.effective_setting(settings, app_role)
    lines.append("a new session of %s gets: %s (%s)" % (app_role, show(path), level or "postgresql.conf"))
    return "".join(line + "\n" for line in lines)


def predicted(settings, database, roles):
    """``settings`` with the database level set to ``database`` and the role-in-database level of each of
    ``roles`` ({role: value}) set: what the planned statements leave behind (check mode's 'after')."""
    out = copy.deepcopy(settings)
    out["database"] = database
    for role, value in roles.items():
        out["roles"].setdefault(role, {"role": None, "role_in_database": None})["role_in_database"] = value
    for role in [r for r, e in out["roles"].items() if e["role"] is None and e["role_in_database"] is None]:
        del out["roles"][role]
    return out


def _fmt_settings(settings):
    return {
        "database": paths.format_search_path(settings["database"]),
        "all_roles": paths.format_search_path(settings["all_roles"]),
        "roles": {r: {k: paths.format_search_path(v) for k, v in e.items()} for r, e in settings["roles"].items()},
    }


class Switch:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.dbname = self.p["login_db"]
        self.target_path = self.p["search_path"] or [self.p["target_schema"], self.p["legacy_schema"]]
        self.roles = [self.p["app_role"]] + [r for r in self.p["roles"] if r != self.p["app_role"]]
        self.queries = []
        self.warnings = []
        self.cur = None
        self.expected = None  # the settings the planned statements leave behind (--diff in check mode)

    # ---- planning -----------------------------------------------------------------------------
    def plan(self, cur):
        self.cur = cur
        settings = paths.read_path_settings(cur, self.dbname)
        try:
            record = cutover_state.read_state(cur, self.p["target_schema"], STATE_KEY, verify=True) \
                if self._schema_exists(cur) else None
        except cutover_state.StateError as exc:
            self.module.fail_json(msg="search_path %s: %s Nothing was changed." % (self.p["state"], exc))
        handled = [r for r in self.roles
                   if (settings["roles"].get(r) or {}).get("role") is not None
                   or (settings["roles"].get(r) or {}).get("role_in_database") is not None]
        if self.p["state"] == "target":
            return self._plan_target(settings, record, handled)
        return self._plan_legacy(settings, record)

    def _schema_exists(self, cur):
        cur.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (self.p["target_schema"],))
        if cur.fetchone() is None:
            self.module.fail_json(msg="schema %s does not exist in database %s" % (
                self.p["target_schema"], self.dbname))
        return True

    def _plan_target(self, settings, record, handled):
        self.expected = predicted(settings, self.target_path, dict((r, self.target_path) for r in handled))
        statements = []
        if settings["database"] != self.target_path:
            statements.append(paths.set_database_path_sql(self.dbname, self.target_path))
        for role in handled:
            if settings["roles"][role]["role_in_database"] != self.target_path:
                statements.append(paths.set_role_database_path_sql(role, self.dbname, self.target_path))
        if record is None or record.get("direction") != "target":
            previous = {"database": settings["database"],
                        "roles": {r: settings["roles"][r]["role_in_database"] for r in handled}}
            if settings["database"] == self.target_path:
                self.warnings.append(
                    "search_path of database %s already is %s but nothing recorded the value before it: the way "
                    "back ('legacy') will keep it. Set the database-level search_path by hand before the switch "
                    "if that is not what you want." % (self.dbname, paths.format_search_path(self.target_path)))
            new_record = {"direction": "target", "previous": previous, "search_path": self.target_path,
                          "switched_at": None}
        else:
            new_record = copy.deepcopy(record)
            previous = new_record["previous"]
            for role in handled:
                if role not in previous["roles"]:  # an override that appeared after the switch
                    previous["roles"][role] = settings["roles"][role]["role_in_database"]
            if new_record == record:
                new_record = None
        return settings, handled, statements, new_record, (record or {}).get("switched_at")

    def _plan_legacy(self, settings, record):
        self.expected = settings
        if record is None:
            stuck = settings["database"] == self.target_path or any(
                (settings["roles"].get(r) or {}).get("role_in_database") == self.target_path for r in self.roles)
            if stuck:
                self.module.fail_json(
                    msg="search_path is %s but %s.%s holds no record of the previous value, so the way back is not "
                        "known. Set it by hand (ALTER DATABASE %s SET search_path TO ...)." % (
                            paths.format_search_path(self.target_path), self.p["target_schema"],
                            cutover_state.STATE_TABLE, self.dbname))
            return settings, [], [], None, None
        previous = record.get("previous")
        problems = self._invalid_previous(previous, record)
        if problems:
            self.module.fail_json(
                msg="search_path legacy: refusing the recorded way back in %s.%s: %s. Nothing was changed; set the "
                    "values by hand after checking them." % (
                        self.p["target_schema"], cutover_state.STATE_TABLE, "; ".join(problems)))
        self.expected = predicted(settings, previous["database"], previous["roles"])
        statements = []
        if settings["database"] != previous["database"]:
            statements.append(paths.set_database_path_sql(self.dbname, previous["database"]))
        for role, value in sorted(previous["roles"].items()):
            current = (settings["roles"].get(role) or {}).get("role_in_database")
            if current != value:
                statements.append(paths.set_role_database_path_sql(role, self.dbname, value))
        new_record = None
        if record.get("direction") != "legacy":
            new_record = dict(copy.deepcopy(record), direction="legacy", restored_at=None)
        return settings, list(previous["roles"]), statements, new_record, record.get("restored_at")

    def _invalid_previous(self, previous, record):
        """Why the recorded values must not be restored (empty list when they may).

        The way back only touches what the switch changed: the database level, and the role-in-database level
        of the roles it handles (O(app_role), O(roles)); each value must be a list of names. Schemas that do
        not exist are only warned about: the path before the switch may legitimately name one (the digest
        check of read_state is what proves the values are the ones the switch recorded)."""
        if not isinstance(previous, dict) or set(previous) != {"database", "roles"} \
                or not isinstance(previous["roles"], dict):
            return ["its 'previous' entry is not what the switch records ({database, roles})"]
        if not isinstance(record.get("search_path"), list):
            return ["its 'search_path' entry is missing"]
        problems = []
        strange = sorted(r for r in previous["roles"] if r not in self.roles)
        if strange:
            problems.append("it names role(s) %s, which the switch does not handle (app_role and roles are %s)"
                            % (", ".join(strange), ", ".join(self.roles)))
        values = [("database " + self.dbname, previous["database"])] + sorted(
            ("role " + r, v) for r, v in previous["roles"].items() if r in self.roles)
        names = set()
        for what, value in values:
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                problems.append("the value for %s is not a list of schema names" % what)
                continue
            names.update(n for n in value if n not in ("$user", "pg_catalog", "pg_temp"))
        if names:
            self.cur.execute("SELECT n FROM pg_catalog.unnest(%s::text[]) n WHERE NOT EXISTS"
                             " (SELECT 1 FROM pg_catalog.pg_namespace s WHERE s.nspname = n) ORDER BY 1",
                             (sorted(names),))
            missing = [r[0] for r in self.cur.fetchall()]
            if missing:  # legitimate (a path may name a schema that is gone); the digest says it was recorded
                self.warnings.append("the recorded search_path names schema(s) that do not exist: %s"
                                     % ", ".join(missing))
        return problems

    # ---- applying -----------------------------------------------------------------------------
    def apply(self, conn, statements, new_record):
        def attempt():
            try:
                with conn.cursor() as cur:
                    if new_record is not None:
                        cutover_state.ensure_state_table(cur, self.p["target_schema"])
                    for stmt, args in statements:
                        cur.execute(stmt, args)
                    if new_record is not None:
                        cutover_state.write_state(cur, self.p["target_schema"], STATE_KEY, new_record)
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            # The moment from which new sessions get the new path; older sessions are "old".
            with conn.cursor() as cur:
                stamp = cutover_state.now_iso(cur)
                key = "switched_at" if self.p["state"] == "target" else "restored_at"
                record = cutover_state.read_state(cur, self.p["target_schema"], STATE_KEY)
                if record is not None:
                    record[key] = stamp
                    cutover_state.write_state(cur, self.p["target_schema"], STATE_KEY, record)
            conn.commit()
            return stamp

        stamp = db.with_retries(attempt, attempts=5)[0]
        return stamp

    def sessions(self, conn, handled, since):
        policy = self.p["sessions"]
        roles = sorted(set(self.roles) | set(handled))
        result = {"policy": policy, "old_path": 0, "terminated": 0, "remaining": 0, "pids": []}
        if since is None:
            return result
        with conn.cursor() as cur:
            old = app_sessions.old_sessions(cur, self.dbname, roles, since)
            conn.commit()
            result["old_path"] = len(old)
            result["pids"] = [s["pid"] for s in old]
            if not old:
                return result
            if policy == "report" or self.module.check_mode:
                result["remaining"] = len(old)
                result["would_terminate"] = len([s for s in old if policy == "terminate_all" or s["state"] == "idle"])
                return result
            terminated = set()
            deadline = time.monotonic() + max(0, self.p["session_wait_seconds"])
            while True:
                current = [s for s in app_sessions.old_sessions(cur, self.dbname, roles, since)
                           if s["pid"] not in terminated]
                victims = [s["pid"] for s in current if policy == "terminate_all" or s["state"] == "idle"]
                terminated.update(app_sessions.terminate(cur, victims))
                conn.commit()
                left = [s for s in current if s["pid"] not in terminated]
                if not left or time.monotonic() >= deadline:
                    break
                time.sleep(0.3)
            # A terminated backend needs a moment to go away; wait for it so that "remaining" is true.
            settle = time.monotonic() + 5
            while time.monotonic() < settle:
                still = app_sessions.old_sessions(cur, self.dbname, roles, since)
                conn.commit()
                if not [s for s in still if s["pid"] in terminated]:
                    break
                time.sleep(0.1)
            remaining = [s for s in app_sessions.old_sessions(cur, self.dbname, roles, since)
                         if s["pid"] not in terminated]
            conn.commit()
        result["terminated"] = len(terminated)
        result["remaining"] = len(remaining)
        if remaining:
            self.warnings.append(
                "%d session(s) of %s started before the change and still use the old search_path (busy for more than "
                "%ss): pids %s. They get the new path when they reconnect; sessions=terminate_all ends them now."
                % (len(remaining), ", ".join(roles), self.p["session_wait_seconds"],
                   ", ".join(str(s["pid"]) for s in remaining)))
        return result

    # ---- verification -------------------------------------------------------------------------
    def verify(self, admin_conn, settings_after):
        p = self.p
        app_params = dict(p, login_user=p["app_role"], login_password=p["app_password"])
        expected_schema = p["target_schema"] if p["state"] == "target" else p["legacy_schema"]
        level, expected_path = paths.effective_setting(settings_after, p["app_role"])
        out = {"role": p["app_role"], "expected_schema": expected_schema,
               "expected_search_path": paths.format_search_path(expected_path), "problems": []}
        try:
            conn = db.connect(app_params, application_name="carbot.migration search_path verify")
        except Exception as exc:  # noqa: BLE001 - reported, with the password never in the text
            out["problems"].append("cannot connect as %s: %s" % (p["app_role"], str(exc).strip().splitlines()[0]))
            out["ok"] = False
            return out
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW search_path")
                shown = cur.fetchone()[0]
                out["search_path"] = shown
                if expected_path is not None and paths.split_search_path(shown) != expected_path:
                    out["problems"].append("a fresh session of %s has search_path %s, expected %s" % (
                        p["app_role"], shown, paths.format_search_path(expected_path)))
                out["resolved_schema"] = catalog.resolve_schema(cur, p["verify_table"])
                if out["resolved_schema"] != expected_schema:
                    out["problems"].append("%s resolves in schema %s for %s, expected %s" % (
                        p["verify_table"], out["resolved_schema"], p["app_role"], expected_schema))
                if p["verify_write_table"]:
                    try:
                        out["write_schema"], out["write_id"] = probe.probe_insert(
                            cur, None, p["verify_write_table"], p["verify_write_column"])
                    except Exception as exc:  # noqa: BLE001 - a failed write is the finding
                        conn.rollback()
                        out["problems"].append("the test write into %s as %s failed: %s" % (
                            p["verify_write_table"], p["app_role"], str(exc).strip().splitlines()[0]))
            conn.rollback()  # the probe row never becomes visible
        finally:
            conn.close()
        if out.get("write_id") is not None:
            highest = {}
            with admin_conn.cursor() as cur:
                for schema in (p["legacy_schema"], p["target_schema"]):
                    if catalog.column_exists(cur, schema, p["verify_write_table"], p["verify_write_column"]):
                        highest[schema] = seqs.max_id(cur, schema, p["verify_write_table"], p["verify_write_column"])
            admin_conn.commit()
            out["max_ids"] = highest
            beaten = [s for s, m in highest.items() if m is not None and out["write_id"] <= m]
            if beaten:
                out["problems"].append("the test write got id %s, not beyond the highest id in %s (%s): ids would "
                                       "collide; run carbot.migration.sequences" % (
                                           out["write_id"], ", ".join(beaten),
                                           ", ".join(str(highest[s]) for s in beaten)))
        out["effective_level"] = level
        out["ok"] = not out["problems"]
        return out


def read_only(module):
    """state=read: the settings as lists, nothing changed, no state table needed (it may not exist yet)."""
    def read(conn):
        with conn.cursor() as cur:
            settings = paths.read_path_settings(cur, module.params["login_db"])
            found = paths.overrides(settings, module.params["login_db"])
        conn.rollback()
        return settings, found

    settings, found = common.run_connected(module, read, "search_path read failed")
    for item in found:
        item.pop("names")
    level, path = paths.effective_setting(settings, module.params["app_role"])
    effective = {"role": module.params["app_role"], "level": level, "search_path": paths.format_search_path(path),
                 "names": path}
    module.exit_json(changed=False, state="read", previous={}, current=_fmt_settings(settings), settings=settings,
                     effective=effective, overrides=found, sessions={}, executed_queries=[],
                     carbot_report={"search_path": {"state": "read", "changed": False, "effective": effective}})


def switch_path(module, conn, switch):
    """Switch the search_path (state target or legacy); ends the module."""
    with conn.cursor() as cur:
        settings, handled, statements, new_record, since = switch.plan(cur)
        found = paths.overrides(settings, switch.dbname)
        for item in found:
            item["handled"] = item["role"] in handled
            item.pop("names")
            if not item["handled"]:
                switch.warnings.append(
                    "role %s has its own search_path (%s, %s level); it is not handled here (add it to roles "
                    "if the application connects as it)" % (item["role"], item["value"], item["level"]))
        switch.queries = [cur.mogrify(stmt, args).decode() for stmt, args in statements]
    conn.commit()
    changed = bool(statements) or new_record is not None
    if changed and not module.check_mode:
        since = switch.apply(conn, statements, new_record)
    elif changed and statements:
        since = "infinity"  # check mode: every current session would be old once the change is made
    sessions = switch.sessions(conn, handled, since)
    changed = changed or sessions["terminated"] > 0
    with conn.cursor() as cur:
        after = paths.read_path_settings(cur, switch.dbname)
        record = cutover_state.read_state(cur, module.params["target_schema"], STATE_KEY)
    conn.commit()
    if module.check_mode and new_record is not None:
        record = new_record
    level, path = paths.effective_setting(after, module.params["app_role"])
    result = dict(
        changed=changed,
        state=module.params["state"],
        previous={"database": paths.format_search_path(((record or {}).get("previous") or {}).get("database")),
                  "roles": {r: paths.format_search_path(v)
                            for r, v in (((record or {}).get("previous") or {}).get("roles") or {}).items()}},
        current=_fmt_settings(after),
        settings=after,
        effective={"role": module.params["app_role"], "level": level, "search_path": paths.format_search_path(path),
                   "names": path},
        overrides=found,
        sessions=sessions,
        executed_queries=switch.queries,
    )
    if module._diff:
        # --diff: every search_path setting of the database, before and after (in check mode: after the
        # planned statements)
        result["diff"] = {
            "before_header": "search_path settings in %s (now)" % switch.dbname,
            "after_header": "search_path settings in %s (%s)" % (
                switch.dbname, "after the switch" if module.check_mode else "after this run"),
            "before": diff_text(settings, switch.dbname, module.params["app_role"]),
            "after": diff_text(switch.expected if module.check_mode else after, switch.dbname,
                               module.params["app_role"]),
        }
    if module.params["app_password"] and not module.check_mode:
        result["verification"] = switch.verify(conn, after)
    result["carbot_report"] = {"search_path": {
        "state": module.params["state"], "changed": changed, "effective": result["effective"],
        "overrides": found, "sessions": {k: v for k, v in sessions.items() if k != "pids"},
        "verified": (result.get("verification") or {}).get("ok")}}
    for warning in switch.warnings:
        module.warn(warning)
    if result.get("verification") and not result["verification"]["ok"]:
        module.fail_json(msg="search_path %s: verification as %s failed: %s" % (
            module.params["state"], module.params["app_role"], "; ".join(result["verification"]["problems"])),
            **result)
    module.exit_json(**result)


def main():
    argument_spec = common.argument_spec(
        ("target_schema", "legacy_schema"),
        state=dict(type="str", default="target", choices=["target", "legacy", "read"]),
        search_path=dict(type="list", elements="str"),
        app_role=dict(type="str", required=True),
        app_password=dict(type="str", no_log=True),
        roles=dict(type="list", elements="str", default=[]),
        sessions=dict(type="str", default="terminate_idle", choices=["terminate_idle", "terminate_all", "report"]),
        session_wait_seconds=dict(type="int", default=10),
        verify_table=dict(type="str", default="leads"),
        verify_write_table=dict(type="str", default="audit_logs"),
        verify_write_column=dict(type="str", default="id"),
    )
    module = common.database_module(argument_spec, supports_check_mode=True)
    if module.params["state"] == "read":
        read_only(module)
    switch = Switch(module)
    common.run_connected(module, lambda conn: switch_path(module, conn, switch),
                         "search_path %s failed" % module.params["state"])


if __name__ == "__main__":
    main()
