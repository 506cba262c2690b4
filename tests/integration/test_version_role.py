"""carbot.migration.version_role against a real PostgreSQL 15: the online cutover's second application role.

New pods connect as it and resolve carbot_v2 through its own role-in-database search_path, while the old role
keeps the legacy schema; it holds exactly the old role's privileges (membership). Idempotent, a real check mode,
the password never in a result.
"""

import uuid

import psycopg2
import pytest
from test_privileges_sequences import APP_PASSWORD, app_connect, args_for, load_v2, make_app_role, run_module, seed

NEW_PASSWORD = "new-version-test-password"  # a throwaway role on a loopback test cluster, not a secret


@pytest.fixture
def app_db(legacy_db):
    """The legacy schema and carbot_v2 with rows in both, and a role with the app's legacy privileges."""
    load_v2(legacy_db)
    seed(legacy_db)
    legacy_db.app_role = make_app_role(legacy_db)
    return legacy_db


def prepared(db):
    """What the cutover does before: carbot_v2's ids from the shared legacy sequences, the old role's grants on it."""
    shared = run_module("sequences", {k: v for k, v in args_for(db).items() if k != "app_role"})
    assert shared.get("failed") is not True, shared
    granted = run_module("app_privileges", args_for(db))
    assert granted.get("failed") is not True, granted


def new_args(db, role, password=NEW_PASSWORD, **extra):
    args = args_for(db, role=role, password=password)
    args.update(extra)
    return args


def new_connect(db, role, password=NEW_PASSWORD):
    conn = psycopg2.connect(host=db.host, port=db.port, dbname=db.dbname, user=role, password=password)
    conn.autocommit = True
    return conn


def resolves(conn, table="leads"):
    with conn.cursor() as cur:
        cur.execute("SELECT c.relnamespace::regnamespace::text, current_setting('search_path') FROM pg_class c "
                    "WHERE c.oid = to_regclass(%s)", (table,))
        return cur.fetchone()


def test_new_role_resolves_carbot_v2_while_the_old_role_keeps_public(app_db):
    db = app_db
    prepared(db)
    role = "v2_%s" % uuid.uuid4().hex[:8]

    dry = run_module("version_role", new_args(db, role), check=True)
    assert dry["changed"] is True and dry["created"] is True, dry
    assert dry["executed_queries"][0] == "CREATE ROLE %s LOGIN INHERIT PASSWORD '********'" % role
    assert "GRANT %s TO %s" % (db.app_role, role) in dry["executed_queries"]
    assert any("IN DATABASE" in q and "carbot_v2, public" in q for q in dry["executed_queries"]), dry
    assert db.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)) == 0  # check mode changed nothing

    done = run_module("version_role", new_args(db, role))
    assert done.get("failed") is not True, (done.get("msg"), done.get("verification"))
    assert done["changed"] is True and done["verification"]["ok"] is True, done
    assert done["verification"]["resolved_schema"] == "carbot_v2"
    assert done["verification"]["write_schema"] == "carbot_v2"
    assert NEW_PASSWORD not in repr(done) and NEW_PASSWORD not in repr(dry)

    # Both at the same time, each from a fresh session, through unqualified names: old -> public, new -> carbot_v2.
    old, new = app_connect(db), new_connect(db, role)
    try:
        assert resolves(old)[0] == "public"
        assert resolves(new) == ("carbot_v2", "carbot_v2, public")
        with new.cursor() as cur:  # the new role writes carbot_v2 with the shared privileges of the old one
            cur.execute("BEGIN")
            cur.execute("INSERT INTO audit_logs (action) VALUES ('version-role-test') RETURNING id")
            cur.execute("ROLLBACK")
    finally:
        old.close()
        new.close()

    again = run_module("version_role", new_args(db, role))
    assert again["changed"] is False and again["executed_queries"] == [], again
    assert again["verification"]["ok"] is True


def test_a_drifted_role_is_repaired_and_a_wrong_password_reset(app_db):
    db = app_db
    prepared(db)
    role = "v2_%s" % uuid.uuid4().hex[:8]
    assert run_module("version_role", new_args(db, role))["changed"] is True
    db.query('ALTER ROLE "%s" IN DATABASE "%s" SET search_path TO public' % (role, db.dbname))  # generated names
    db.query('REVOKE "%s" FROM "%s"' % (db.app_role, role))
    other = "another-password-%s" % uuid.uuid4().hex[:6]
    fixed = run_module("version_role", new_args(db, role, password=other))
    assert fixed.get("failed") is not True, fixed
    assert fixed["changed"] is True and fixed["created"] is False
    assert "ALTER ROLE %s PASSWORD '********'" % role in fixed["executed_queries"]
    assert "GRANT %s TO %s" % (db.app_role, role) in fixed["executed_queries"]
    assert other not in repr(fixed)
    conn = new_connect(db, role, password=other)
    assert resolves(conn)[0] == "carbot_v2"
    conn.close()


def test_the_same_role_for_both_versions_is_refused(app_db):
    db = app_db
    refused = run_module("version_role", new_args(db, db.app_role, password=APP_PASSWORD))
    assert refused["failed"] is True and "a role of its own" in refused["msg"]
