"""``--diff`` of search_path, app_privileges and sequences (issue 15): before/after per setting, object and column.

The modules run in-process the way Ansible runs them (``_ansible_diff``, ``_ansible_check_mode``). In check mode the
``after`` is a prediction; each test then runs the module for real and requires that the prediction was exactly what
happened, that check mode changed nothing, and that a rerun's diff shows no change.
"""

import pytest
from test_privileges_sequences import app_db, seed  # noqa: F401 - fixtures
from test_privileges_sequences import args_for as privilege_args
from test_search_path import load_v2, make_app_role, module_args, raw_settings, run_module


def run(name, args, check=False, diff=True):
    return run_module(name, dict(args, _ansible_diff=diff), check=check)


def lines(text):
    return [line for line in text.splitlines() if line]


def changed_lines(diff):
    """(removed, added) lines between before and after."""
    before, after = lines(diff["before"]), lines(diff["after"])
    return [b for b in before if b not in after], [a for a in after if a not in before]


# ----------------------------------------------------------------------------------------------
# search_path
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def switch_db(legacy_db):
    load_v2(legacy_db)
    legacy_db.app_role = make_app_role(legacy_db)
    legacy_db.query('ALTER ROLE "%s" SET search_path TO public' % legacy_db.app_role)  # an override to handle
    return legacy_db


def test_search_path_diff_predicts_the_switch_then_shows_it_and_the_way_back(switch_db):
    db, app, name = switch_db, switch_db.app_role, switch_db.dbname
    settings = raw_settings(db)
    checked = run("search_path", module_args(db, state="target"), check=True)
    assert raw_settings(db) == settings  # check mode changed nothing
    diff = checked["diff"]
    assert lines(diff["before"]) == [
        "database %s: (not set)" % name, "all roles: (not set)", "role %s (all databases): public" % app,
        "role %s in database %s: (not set)" % (app, name), "a new session of %s gets: public (role)" % app]
    removed, added = changed_lines(diff)
    assert added == ["database %s: carbot_v2, public" % name,
                     "role %s in database %s: carbot_v2, public" % (app, name),
                     "a new session of %s gets: carbot_v2, public (role_in_database)" % app], added
    assert len(removed) == 3, removed

    done = run("search_path", module_args(db, state="target"))
    assert done["changed"] and done["verification"]["ok"], done.get("msg")
    assert done["diff"]["before"] == diff["before"] and done["diff"]["after"] == diff["after"]  # as predicted

    again = run("search_path", module_args(db, state="target"))
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"] == diff["after"]

    back = run("search_path", module_args(db, state="legacy"))
    assert back["diff"]["before"] == diff["after"] and back["diff"]["after"] == diff["before"]  # exactly back
    assert raw_settings(db) == settings

    assert "diff" not in run("search_path", module_args(db, state="legacy"), diff=False)


# ----------------------------------------------------------------------------------------------
# app_privileges
# ----------------------------------------------------------------------------------------------
def test_app_privileges_diff_names_each_object_grant_and_revoke(app_db):  # noqa: F811 - the fixture
    db, app = app_db, app_db.app_role
    db.query('GRANT SELECT ON carbot_v2.migration_status TO "%s"' % app)  # bookkeeping: must be revoked
    grants = db.query("SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                      "WHERE grantee = %s AND table_schema = 'carbot_v2' ORDER BY 1, 2", (app,))
    checked = run("app_privileges", privilege_args(db), check=True)
    assert db.query("SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = %s AND table_schema = 'carbot_v2' ORDER BY 1, 2", (app,)) == grants
    before, after = lines(checked["diff"]["before"]), lines(checked["diff"]["after"])
    assert "schema carbot_v2: (none)" in before and "schema carbot_v2: USAGE" in after
    assert "table carbot_v2.leads: (none)" in before
    assert "table carbot_v2.leads: SELECT, INSERT, UPDATE, DELETE" in after
    # the legacy app may not change or delete audit records: carried over
    assert "table carbot_v2.audit_logs: SELECT, INSERT" in after
    assert "table carbot_v2.migration_status: SELECT" in before and "table carbot_v2.migration_status: (none)" in after
    assert any(line.startswith("sequence carbot_v2.") and line.endswith(": USAGE, SELECT") for line in after), after
    assert any(line.startswith("default privileges on tables created by ") for line in after), after
    assert [line.split(":")[0] for line in before] == [line.split(":")[0] for line in after]  # one line per object

    done = run("app_privileges", privilege_args(db))
    assert done["changed"] and done["ok"], done.get("msg")
    assert done["diff"] == dict(checked["diff"], after_header=done["diff"]["after_header"])  # as predicted
    again = run("app_privileges", privilege_args(db))
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"] == ""


# ----------------------------------------------------------------------------------------------
# sequences
# ----------------------------------------------------------------------------------------------
def test_sequences_diff_shows_each_column_sequence_next_value_and_owner(app_db):  # noqa: F811 - the fixture
    db = app_db
    args = {k: v for k, v in privilege_args(db).items() if k != "app_role"}
    positions = db.query("SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2")
    checked = run("sequences", args, check=True)
    assert db.query("SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2") == positions
    before, after = lines(checked["diff"]["before"]), lines(checked["diff"]["after"])
    line = next(x for x in before if x.startswith("carbot_v2.audit_logs.id: "))
    assert line == ("carbot_v2.audit_logs.id: carbot_v2.audit_logs_id_seq (identity), next value 1, "
                    "owned by carbot_v2.audit_logs.id"), line
    line = next(x for x in after if x.startswith("carbot_v2.audit_logs.id: "))
    # seeded ids 1..100 on both sides: the shared legacy sequence hands out 101 next, never an id in use
    assert line == ("carbot_v2.audit_logs.id: public.audit_logs_id_seq (default), next value 101, "
                    "owned by public.audit_logs.id"), line
    assert len(before) == len(after) and len(changed_lines(checked["diff"])[1]) >= 4, checked["diff"]

    done = run("sequences", args)
    assert done["changed"] and done["ok"], done.get("msg")
    assert done["diff"]["before"] == checked["diff"]["before"]
    assert done["diff"]["after"] == checked["diff"]["after"]  # as predicted
    again = run("sequences", args)
    assert again["diff"]["before"] == again["diff"]["after"] == checked["diff"]["after"]
