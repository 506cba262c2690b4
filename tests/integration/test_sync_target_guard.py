"""Issue 12, item 5: an installed sync is never silently re-pointed at another target schema.

The sync functions live in the shared mapping schema and are regenerated for whatever target schema an
install is given. A second prepare with another carbot_target_schema (a typo in an inventory) used to
regenerate them for that schema: the legacy app's writes went there, carbot_v2 went stale, and the run
said "0 tables changed". Now the install refuses, in check mode too, and changes nothing.
"""

import pathlib

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping, sync
from conftest import run_module_process

REPO = pathlib.Path(__file__).resolve().parents[2]
OTHER = "Carbot Typo"  # a name that needs quoting, on purpose


def params(db, **extra):
    return dict({"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
                 "login_password": db.password, "lock_timeout_ms": 3000}, **extra)


def plan_for(db, target):
    conn = db.connect(autocommit=False)
    try:
        mapping.apply_all(conn, str(REPO / "sql"), target_schema=target)
        conn.commit()
        return sync.Plan(conn, target_schema=target)
    finally:
        conn.close()


def new_user(db):
    return db.scalar("INSERT INTO public.users (id, email, full_name, role, password_hash, created_at) "
                     "VALUES (gen_random_uuid(), %s, 'Eva Muster', 'owner', 'x', now()) RETURNING id",
                     ("eva.%s@example.com" % db.dbname,))


def count_in(db, schema, user_id):
    return db.scalar('SELECT count(*) FROM "%s".users WHERE id = %%s' % schema.replace('"', '""'), (user_id,))


@pytest.fixture
def synced(legacy_db):
    """The empty legacy schema with carbot_v2, the mapping and the forward sync installed for carbot_v2;
    and a plan for a second target schema beside it (its tables and mapping built by hand, bypassing the
    schema_apply guard, then the mapping put back for carbot_v2: the views cast to the target's types)."""
    db = legacy_db
    sync.install(params(db), plan_for(db, "carbot_v2"), sync.FORWARD)
    db.other_plan = plan_for(db, OTHER)
    plan_for(db, "carbot_v2")
    return db


def test_install_for_another_target_is_refused_and_changes_nothing(synced):
    db = synced
    before = db.query("SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                      "WHERE n.nspname = 'carbot_migration' AND p.proname LIKE 'carbot\\_sync\\_%%' ORDER BY 1")
    with pytest.raises(sync.SyncError) as err:
        sync.install(params(db), db.other_plan, sync.FORWARD)
    msg = str(err.value)
    assert "installed for target schema carbot_v2" in msg and "refusing" in msg and OTHER in msg
    after = db.query("SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                     "WHERE n.nspname = 'carbot_migration' AND p.proname LIKE 'carbot\\_sync\\_%%' ORDER BY 1")
    assert after == before
    # The live sync still writes to carbot_v2, not to the other schema.
    user_id = new_user(db)
    assert (count_in(db, "carbot_v2", user_id), count_in(db, OTHER, user_id)) == (1, 0)


def test_the_module_refuses_in_check_mode_and_for_real(synced):
    db = synced
    for check in (True, False):
        args = params(db, target_schema=OTHER, direction="forward")
        if check:
            args["_ansible_check_mode"] = True
        result = run_module_process("sync_triggers", args)
        assert result.get("failed") is True, result
        assert "installed for target schema carbot_v2" in result["msg"], result["msg"]
    user_id = new_user(db)
    assert (count_in(db, "carbot_v2", user_id), count_in(db, OTHER, user_id)) == (1, 0)
    # The right schema still installs (idempotent: nothing to change).
    again = run_module_process("sync_triggers", params(db, target_schema="carbot_v2", direction="forward"))
    assert again.get("failed") is not True and again["changed"] is False, again


def test_an_install_without_a_record_is_recognised_from_its_functions(synced):
    """An install made before the record existed: the functions' bodies say which schema they write to."""
    db = synced
    db.query("COMMENT ON SCHEMA carbot_migration IS NULL")
    with pytest.raises(sync.SyncError, match="refusing"):
        sync.install(params(db), db.other_plan, sync.FORWARD)
    # The same target is accepted and recorded.
    conn = db.connect(autocommit=False)
    carbot_v2 = sync.Plan(conn)
    conn.close()
    sync.install(params(db), carbot_v2, sync.FORWARD)
    conn = db.connect()
    with conn.cursor() as cur:
        assert sync.recorded_schemas(cur, "carbot_migration") == {"target_schema": "carbot_v2",
                                                                  "legacy_schema": "public"}
    conn.close()


def test_schema_apply_refuses_to_repoint_the_mapping_of_a_live_sync(synced):
    """prepare.yml's first step: the mapping views re-applied for another target would feed the live sync
    that schema's types (the app's writes to the legacy tables would fail)."""
    db = synced
    result = run_module_process("schema_apply", params(db, target_schema=OTHER, sql_dir=str(REPO / "sql")))
    assert result.get("failed") is True, result
    assert "refusing to apply the mapping" in result["msg"] and "installed for target schema carbot_v2" \
        in result["msg"], result["msg"]
    user_id = new_user(db)
    assert (count_in(db, "carbot_v2", user_id), count_in(db, OTHER, user_id)) == (1, 0)
    ok = run_module_process("schema_apply", params(db, target_schema="carbot_v2", sql_dir=str(REPO / "sql")))
    assert ok.get("failed") is not True, ok


def test_after_removal_another_target_may_be_installed_on_purpose(synced):
    db = synced
    conn = db.connect(autocommit=False)
    carbot_v2 = sync.Plan(conn)
    conn.close()
    sync.remove(params(db), carbot_v2, sync.FORWARD)
    plan_for(db, OTHER)
    sync.install(params(db), db.other_plan, sync.FORWARD)
    user_id = new_user(db)
    assert (count_in(db, "carbot_v2", user_id), count_in(db, OTHER, user_id)) == (0, 1)
