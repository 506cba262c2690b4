# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The search_path switch (module carbot.migration.search_path): ``Switch(module)`` plans the settings to write
(state target or legacy), records the previous ones in the cutover state table (cutover_state.py) for the way
back, handles the sessions that still run with the old path (sessions.py) and verifies the result as the
application role (probe.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time

from ansible_collections.carbot.migration.plugins.module_utils import (
    catalog, cutover_state, probe, search_path as paths, sequences as seqs, sessions as app_sessions)
from ansible_collections.carbot.migration.plugins.module_utils import db

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


def format_settings(settings):
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
