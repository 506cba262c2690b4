"""carbot.migration.app_privileges and carbot.migration.sequences against a real PostgreSQL 15.

Preflight reports what the app role lacks on carbot_v2; after the module it can read and write;
ids handed out through either schema never collide, also after a rollback when the app writes to
public again (rows are copied across with their ids, as the sync triggers do).
"""

import contextlib
import importlib
import io
import json
import pathlib

import psycopg2
import psycopg2.sql
import pytest
from ansible.module_utils.testing import patch_module_args
from conftest import PLAY_CONNECTION
from conftest import make_app_role as conftest_make_app_role

REPO = pathlib.Path(__file__).resolve().parents[2]
APP_PASSWORD = "app-test-password"  # a throwaway role on a loopback test cluster, not a secret
SERIAL_TABLES = ("analytics_events", "audit_logs", "chat_messages", "consent_log")


def run_module(name, args, check=False):
    """Run one of the collection's modules in-process, the way Ansible would; returns its result dict."""
    module = importlib.import_module("ansible_collections.carbot.migration.plugins.modules." + name)
    if check:
        args = dict(args, _ansible_check_mode=True)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main()
    return json.loads(out.getvalue())


def load_v2(db):
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS carbot_v2")
        cur.execute("SET search_path TO carbot_v2")
        for path in sorted((REPO / "sql" / "v2").glob("*.sql")):
            cur.execute(path.read_text())
    conn.close()


def seed(db, rows=100):
    """Legacy rows with ids 1..rows in the four bigserial tables, copied into carbot_v2 with their ids
    (as the copy does); the legacy sequences sit at ``rows``, carbot_v2's identities still at 1."""
    db.query("""
        INSERT INTO public.audit_logs (action) SELECT 'seed' FROM generate_series(1, %(n)s);
        INSERT INTO public.consent_log (consent_type) SELECT 'marketing' FROM generate_series(1, %(n)s);
        INSERT INTO public.chat_messages (message) SELECT 'hi' FROM generate_series(1, %(n)s);
        INSERT INTO public.analytics_events (event_type) SELECT 'page_view' FROM generate_series(1, %(n)s);
        INSERT INTO carbot_v2.chat_sessions (id, workshop_id, client_key)
             VALUES ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002', 'k');
        INSERT INTO carbot_v2.audit_logs (id, action) SELECT id, action FROM public.audit_logs;
        INSERT INTO carbot_v2.consent_log (id, consent_type) SELECT id, 'marketing' FROM public.consent_log;
        INSERT INTO carbot_v2.chat_messages (id, session_id, workshop_id, sender, message)
             SELECT id, '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002', 'user',
                    message FROM public.chat_messages;
        INSERT INTO carbot_v2.analytics_events (id, workshop_id, event_type)
             SELECT id, '00000000-0000-0000-0000-000000000002', event_type FROM public.analytics_events;
    """, {"n": rows})


def make_app_role(db):
    """A login role with what the CarBot app has on the legacy schema, and nothing on carbot_v2."""
    role = conftest_make_app_role(db, APP_PASSWORD, connect=True)
    conn = db.connect()
    with conn.cursor() as cur:
        # The legacy app never deletes audit records: the comparison must carry that over.
        cur.execute(psycopg2.sql.SQL("REVOKE DELETE, UPDATE ON public.audit_logs FROM {}").format(
            psycopg2.sql.Identifier(role)))
    conn.close()
    return role


@pytest.fixture
def app_db(legacy_db):
    load_v2(legacy_db)
    seed(legacy_db)
    legacy_db.app_role = make_app_role(legacy_db)
    return legacy_db


def args_for(db, **extra):
    args = {"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
            "login_password": db.password, "ssl_mode": "disable", "app_role": db.app_role}
    args.update(extra)
    return args


def app_connect(db):
    conn = psycopg2.connect(host=db.host, port=db.port, dbname=db.dbname, user=db.app_role, password=APP_PASSWORD)
    conn.autocommit = True
    return conn


def has(db, func, obj, privilege):
    return db.scalar("SELECT %s(%%s, %%s, %%s)" % func, (db.app_role, obj, privilege))


# ----------------------------------------------------------------------------------------------
# Privileges
# ----------------------------------------------------------------------------------------------
def test_preflight_reports_what_the_app_role_lacks_and_changes_nothing(app_db):
    db = app_db
    result = run_module("app_privileges", args_for(db, check_only=True))
    assert result["changed"] is False and result["ok"] is False
    missing = {(m["object_type"], m["object"], m["privilege"]) for m in result["missing"]}
    assert ("schema", "carbot_v2", "USAGE") in missing
    for pr in ("SELECT", "INSERT", "UPDATE", "DELETE"):
        assert ("table", "carbot_v2.leads", pr) in missing
        assert ("table", "carbot_v2.organizations", pr) in missing  # no counterpart: new_table_privileges
    assert ("table", "carbot_v2.audit_logs", "SELECT") in missing
    assert ("table", "carbot_v2.audit_logs", "DELETE") not in missing  # mirrors the legacy grants
    assert ("sequence", "carbot_v2.audit_logs_id_seq", "USAGE") in missing
    assert any(m[0] == "default" for m in missing)
    assert not any("migration_quarantine" in m[1] for m in missing)  # bookkeeping with secrets: excluded
    assert result["executed_queries"], "the preflight also says what it would grant"
    assert not db.scalar("SELECT has_schema_privilege(%s, 'carbot_v2', 'USAGE')", (db.app_role,))


def test_grants_make_carbot_v2_usable_and_are_idempotent(app_db):
    db = app_db
    result = run_module("app_privileges", args_for(db))
    assert result["changed"] is True and result["ok"] is True, result.get("msg")
    assert result["still_missing"] == []
    again = run_module("app_privileges", args_for(db))
    assert again["changed"] is False and again["missing"] == [] and again["executed_queries"] == []
    assert run_module("app_privileges", args_for(db, check_only=True))["ok"] is True

    assert has(db, "has_table_privilege", "carbot_v2.leads", "DELETE")
    assert not has(db, "has_table_privilege", "carbot_v2.audit_logs", "DELETE")
    assert not has(db, "has_table_privilege", "carbot_v2.migration_quarantine", "SELECT")
    conn = app_connect(db)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM carbot_v2.audit_logs")
        assert cur.fetchone()[0] == 100
        cur.execute("SELECT count(*) FROM carbot_v2.leads")
    conn.close()

    # Default privileges: a table created later in carbot_v2 by its owner is usable too.
    db.query("CREATE TABLE carbot_v2.later_table (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, x text)")
    conn = app_connect(db)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO carbot_v2.later_table (x) VALUES ('y') RETURNING id")
        assert cur.fetchone()[0] == 1
    conn.close()


def test_declared_table_privileges_replace_the_comparison(app_db):
    db = app_db
    result = run_module("app_privileges", args_for(db, table_privileges=["SELECT"], check_only=True))
    privileges = {m["privilege"] for m in result["missing"] if m["object_type"] == "table"}
    assert privileges == {"SELECT"}


def test_missing_app_role_fails_clearly(app_db):
    result = run_module("app_privileges", args_for(app_db, app_role="no_such_role"))
    assert result["failed"] is True and "does not exist" in result["msg"]


# ----------------------------------------------------------------------------------------------
# Sequences
# ----------------------------------------------------------------------------------------------
def test_preflight_sees_the_identity_columns_would_collide(app_db):
    db = app_db
    result = run_module("sequences", args_for(db, check_only=True))
    assert result["changed"] is False and result["ok"] is False
    by_table = {c["table"]: c for c in result["columns"]}
    for table in SERIAL_TABLES:
        assert by_table[table]["rule"] == "shared"
        assert by_table[table]["next_value"] == 1  # carbot_v2's identity would hand out 1 again
    assert by_table["migration_quarantine"]["rule"] == "own"
    assert any("would hand out 1 next, but the highest id is 100" in p for p in result["problems"])
    assert db.scalar("SELECT pg_get_serial_sequence('carbot_v2.audit_logs', 'id')") == "carbot_v2.audit_logs_id_seq"


def test_check_mode_lists_the_statements_and_changes_nothing(app_db):
    db = app_db
    result = run_module("sequences", args_for(db), check=True)
    assert result["changed"] is True
    assert any("DROP IDENTITY" in q for q in result["executed_queries"])
    assert db.scalar("SELECT attidentity FROM pg_attribute WHERE attrelid = 'carbot_v2.audit_logs'::regclass"
                     " AND attname = 'id'") == "d"


def test_carbot_v2_draws_from_the_legacy_sequences_and_ids_never_collide(app_db):
    db = app_db
    assert run_module("app_privileges", args_for(db))["ok"]
    result = run_module("sequences", args_for(db, app_password=APP_PASSWORD))
    assert result["changed"] is True and result["ok"] is True, result.get("msg")
    by_table = {c["table"]: c for c in result["columns"]}
    for table in SERIAL_TABLES:
        assert by_table[table]["sequence"] == "public.%s_id_seq" % table
        assert by_table[table]["next_value"] > 100 and by_table[table]["app_usage"] is True
        assert by_table[table]["ok"]
        proof = result["proof"][table]
        assert proof["legacy_id"] > 100 and proof["target_id"] > 100 and proof["legacy_id"] != proof["target_id"]
        assert db.scalar("SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a"
                         " ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
                         " WHERE d.adrelid = %s::regclass AND a.attname = 'id'",
                         ("carbot_v2.%s" % table,)) == "nextval('%s_id_seq'::regclass)" % table
    # The copied ids are not handed out again by carbot_v2's own sequence (the "own" rule).
    again = run_module("sequences", args_for(db, app_password=APP_PASSWORD))
    assert again["changed"] is False and again["executed_queries"] == [], again["executed_queries"]

    # The app writes through both schemas alternately; the sync copies each row across with its id.
    conn = app_connect(db)
    sync = db.connect()
    ids = []

    def write(schema):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO %s.audit_logs (action) VALUES ('app') RETURNING id" % schema)
            new_id = cur.fetchone()[0]
        other = "public" if schema == "carbot_v2" else "carbot_v2"
        with sync.cursor() as cur:  # raises UniqueViolation if the id was already used on the other side
            cur.execute("INSERT INTO %s.audit_logs (id, action) SELECT id, action FROM %s.audit_logs WHERE id = %%s"
                        % (other, schema), (new_id,))
        ids.append(new_id)

    for _ in range(10):  # before the switch (legacy) and after it (carbot_v2), interleaved
        write("public")
        write("carbot_v2")
    for _ in range(5):  # after the switch
        write("carbot_v2")
    for _ in range(5):  # after a rollback: the app inserts into public again
        write("public")
    for _ in range(5):  # and a second cutover
        write("carbot_v2")
    conn.close()
    sync.close()
    assert len(ids) == len(set(ids)) == 35
    assert min(ids) > 100
    assert db.scalar("SELECT count(*) FROM public.audit_logs") == db.scalar("SELECT count(*) FROM carbot_v2.audit_logs")


def test_a_lagging_sequence_is_moved_forward_never_back(app_db):
    db = app_db
    db.query("SELECT setval('public.consent_log_id_seq', 5)")  # behind the legacy max of 100
    db.query("INSERT INTO carbot_v2.migration_quarantine (target_table, source_table, source_pk, reason, row_data)"
             " VALUES ('x', 'x', '1', 'r', '{}')")
    db.query("SELECT setval('public.chat_messages_id_seq', 5000)")  # ahead: stays where it is
    result = run_module("sequences", args_for(db))
    assert result["ok"], result.get("msg")
    by_table = {c["table"]: c for c in result["columns"]}
    assert by_table["consent_log"]["next_value"] == 101
    assert by_table["chat_messages"]["next_value"] == 5001
    assert by_table["migration_quarantine"]["rule"] == "own" and by_table["migration_quarantine"]["ok"]


def test_code_naming_the_replaced_identity_sequence_keeps_working(app_db):
    """The sync triggers bump carbot_v2's sequence by name on every legacy insert: it must still exist."""
    db = app_db
    db.query("""
        CREATE FUNCTION public.bump_v2() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.id > coalesce(pg_sequence_last_value('carbot_v2.audit_logs_id_seq'::regclass), 0) THEN
            PERFORM setval('carbot_v2.audit_logs_id_seq'::regclass, NEW.id);
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER bump_v2 AFTER INSERT ON public.audit_logs FOR EACH ROW EXECUTE FUNCTION public.bump_v2();
    """)
    db.query("GRANT USAGE ON SCHEMA carbot_v2 TO PUBLIC; GRANT USAGE, SELECT, UPDATE ON carbot_v2.audit_logs_id_seq"
             " TO PUBLIC")
    result = run_module("sequences", args_for(db, tables=["audit_logs"]))
    assert result["ok"], result.get("msg")
    assert any("CREATE SEQUENCE" in q for q in result["executed_queries"])
    conn = app_connect(db)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO public.audit_logs (action) VALUES ('after') RETURNING id")
        assert cur.fetchone()[0] == 101
    conn.close()
    assert "stand-in" in db.scalar("SELECT obj_description('carbot_v2.audit_logs_id_seq'::regclass, 'pg_class')")


def test_app_role_without_usage_on_the_shared_sequence_is_reported(app_db):
    db = app_db
    assert run_module("sequences", args_for(db, app_role=None))["ok"]
    db.query('REVOKE USAGE, SELECT ON public.consent_log_id_seq FROM "%s"' % db.app_role)
    result = run_module("sequences", args_for(db, check_only=True))
    assert result["ok"] is False
    assert any("no USAGE on public.consent_log_id_seq" in p for p in result["problems"])
    fixed = run_module("app_privileges", args_for(db))
    assert any("consent_log_id_seq" in q for q in fixed["executed_queries"])
    assert run_module("sequences", args_for(db, check_only=True))["ok"] is True


# ----------------------------------------------------------------------------------------------
# The role, through ansible-playbook: preflight, align, grant, prove; a rerun changes nothing
# ----------------------------------------------------------------------------------------------
ROLE_PLAY = """
- name: app_privileges role
  hosts: localhost
  gather_facts: false
""" + PLAY_CONNECTION + """  tasks:
    - name: Preflight or everything
      ansible.builtin.include_role:
        name: carbot.migration.app_privileges
        tasks_from: "{{ entry }}"
"""


def run_role(db, tmp_path, entry, *extra_args):
    import os
    import re
    import subprocess
    import sys

    (tmp_path / "play.yml").write_text(ROLE_PLAY)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({
        "carbot_db_host": db.host, "carbot_db_port": db.port, "carbot_db_name": db.dbname,
        "carbot_db_user": db.user, "carbot_db_password": db.password, "carbot_db_sslmode": "disable",
        "carbot_legacy_schema": "public", "carbot_target_schema": "carbot_v2",
        "carbot_app_db_user": db.app_role, "carbot_app_db_password": APP_PASSWORD, "entry": entry,
        "ansible_python_interpreter": sys.executable}))
    vars_file.chmod(0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), CARBOT_REPORTS_DIR=str(tmp_path / "reports"))
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", "-e", "@%s" % vars_file, *extra_args, str(tmp_path / "play.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert db.password not in done.stdout + done.stderr and APP_PASSWORD not in done.stdout + done.stderr
    match = re.search(r"localhost\s*:.*changed=(\d+)", done.stdout)
    return done, int(match.group(1)) if match else None


@pytest.mark.slow
def test_role_preflight_then_apply_then_rerun_without_change(app_db, tmp_path):
    db = app_db
    pre, changed = run_role(db, tmp_path, "preflight")
    assert pre.returncode == 0 and changed == 0, pre.stdout[-3000:]
    assert "lacks" in pre.stdout
    assert not db.scalar("SELECT has_schema_privilege(%s, 'carbot_v2', 'USAGE')", (db.app_role,))

    done, changed = run_role(db, tmp_path, "main")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert changed == 2  # sequences aligned, grants given
    assert "inserted into both schemas" in done.stdout

    again, changed = run_role(db, tmp_path, "main")
    assert again.returncode == 0 and changed == 0, again.stdout[-3000:]
