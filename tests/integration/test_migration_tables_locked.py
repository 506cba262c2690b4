"""Issue 12, item 7: the app role can neither read nor steer the migration's state and control tables.

Before: carbot.migration.app_privileges set default privileges on carbot_v2 for the app role, and
migration_cutover_state, created later by the switch, inherited them; search_path's way back replayed
whatever its row said, so `UPDATE ... SET value = jsonb_set(value, '{previous,roles}', ...)` as the app made
the rollback run ALTER ROLE "postgres" ... SET search_path TO 'attacker_schema', 'public'.
Now: every privilege on the migration's tables is revoked from the app role (app_privileges) and on the
state table from everyone but its owner (whenever the switch writes it), and the way back refuses a record
whose digest (kept in the owner-only table COMMENT) does not match or that names roles it does not handle.
"""

import psycopg2
import pytest
from test_search_path import APP_PASSWORD, app_connect, load_v2, make_app_role, module_args, raw_settings, run_module

MIGRATION_TABLES = {"migration_cutover_state": "updated_at", "migration_status": "updated_at",
                    "migration_quarantine": "reason"}  # table -> a column of it


@pytest.fixture
def switched(legacy_db):
    """Production order: the app's grants on carbot_v2 (app_privileges, with its default privileges), then the
    switch, which creates the state table. The app role also got a blanket GRANT ON ALL TABLES before."""
    db = legacy_db
    load_v2(db)
    db.app_role = make_app_role(db, grant_v2=True)  # SELECT..DELETE on every carbot_v2 table, bookkeeping too
    granted = run_module("app_privileges", {
        "login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
        "login_password": db.password, "ssl_mode": "disable", "app_role": db.app_role})
    assert granted.get("failed") is not True, granted
    assert any(q.startswith("REVOKE ALL ON TABLE") and "migration_quarantine" in q
               for q in granted["executed_queries"]), granted["executed_queries"]
    assert db.scalar("SELECT count(*) FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace "
                     "WHERE n.nspname = 'carbot_v2'") > 0  # the default privileges that used to leak
    switch = run_module("search_path", module_args(db, state="target"))
    assert switch["changed"] is True and switch["verification"]["ok"], switch
    return db


@pytest.mark.parametrize("table", sorted(MIGRATION_TABLES))
@pytest.mark.parametrize("statement", [
    "SELECT * FROM carbot_v2.{t}",
    "UPDATE carbot_v2.{t} SET {c} = {c}",
    "DELETE FROM carbot_v2.{t}",
])
def test_the_app_role_gets_permission_denied_on_the_migration_tables(switched, table, statement):
    conn = app_connect(switched)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement.format(t=table, c=MIGRATION_TABLES[table]))
    finally:
        conn.close()


def test_app_privileges_reports_nothing_left_to_do_afterwards(switched):
    """A rerun after the state table exists: nothing to grant or revoke (the switch locked it down)."""
    db = switched
    again = run_module("app_privileges", {
        "login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
        "login_password": db.password, "ssl_mode": "disable", "app_role": db.app_role, "check_only": True})
    assert again["ok"] is True and again["executed_queries"] == [], again


def test_the_issue_tampering_is_refused_by_the_way_back(switched):
    db = switched
    before = raw_settings(db)
    # What the app could run before the fix (here as the owner: the app role no longer can).
    db.query("UPDATE carbot_v2.migration_cutover_state SET value = jsonb_set(value, '{previous,roles}', "
             "'{\"postgres\": [\"attacker_schema\", \"public\"]}') WHERE key = 'search_path'")
    back = run_module("search_path", module_args(db, state="legacy"))
    assert back.get("failed") is True, back
    assert "changed outside carbot.migration" in back["msg"] and "refusing" in back["msg"], back["msg"]
    assert raw_settings(db) == before  # no ALTER ROLE "postgres" ..., nothing restored either
    assert db.scalar("SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                     "WHERE r.rolname = current_user") == 0


def test_a_tampered_value_of_a_handled_role_is_refused_too(switched):
    db = switched
    db.query('ALTER ROLE "%s" IN DATABASE "%s" SET search_path TO public' % (db.app_role, db.dbname))
    assert run_module("search_path", module_args(db, state="target"))["changed"] is True
    before = raw_settings(db)
    db.query("CREATE SCHEMA attacker_schema")
    db.query("UPDATE carbot_v2.migration_cutover_state SET value = jsonb_set(value, ARRAY['previous', 'roles', %s], "
             "'[\"attacker_schema\", \"public\"]') WHERE key = 'search_path'", (db.app_role,))
    back = run_module("search_path", module_args(db, state="legacy"))
    assert back.get("failed") is True and "changed outside carbot.migration" in back["msg"], back
    assert raw_settings(db) == before


def test_a_record_naming_roles_the_switch_does_not_handle_is_refused(switched):
    """Defence in depth, even with a matching digest (e.g. the owner's own mistake): only the handled roles."""
    from ansible_collections.carbot.migration.plugins.module_utils import cutover_state

    db = switched
    before = raw_settings(db)
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        record = cutover_state.read_state(cur, "carbot_v2", "search_path", verify=True)
        record["previous"]["roles"]["postgres"] = ["attacker_schema", "public"]
        cutover_state.write_state(cur, "carbot_v2", "search_path", record)
    conn.commit()
    conn.close()
    back = run_module("search_path", module_args(db, state="legacy"))
    assert back.get("failed") is True, back
    assert "names role(s) postgres, which the switch does not handle" in back["msg"], back["msg"]
    assert raw_settings(db) == before


def test_an_untampered_record_still_takes_the_way_back(switched):
    db = switched
    back = run_module("search_path", module_args(db, state="legacy"))
    assert back["changed"] is True and back["verification"]["ok"], back
    assert APP_PASSWORD not in str(back)
