"""carbot.migration.search_path against a real PostgreSQL 15.

The database-level switch as a fresh app-role session sees it; role-level and role-in-database
overrides detected and handled; existing app sessions terminated and reported; the way back restores
exactly the previous pg_db_role_setting rows; idempotent both ways; check mode changes nothing.
"""

import contextlib
import importlib
import io
import json
import pathlib
import uuid

import psycopg2
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.carbot.migration.plugins.module_utils import catalog
from ansible_collections.carbot.migration.plugins.module_utils import search_path as paths
from conftest import PLAY_CONNECTION

REPO = pathlib.Path(__file__).resolve().parents[2]
APP_PASSWORD = "app-test-password"  # a throwaway role on a loopback test cluster, not a secret


def run_module(name, args, check=False):
    """Run one of the collection's modules in-process, the way Ansible would; returns its result dict."""
    module = importlib.import_module("ansible_collections.carbot.migration.plugins.modules." + name)
    if check:
        args = dict(args, _ansible_check_mode=True)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main()
    return json.loads(out.getvalue())


def warnings_of(result):
    """Warning texts of a module result (ansible-core 2.19 returns them as structured summaries)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def load_v2(db):
    """carbot_v2 beside the legacy schema, from the repository's sql/v2 files."""
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS carbot_v2")
        cur.execute("SET search_path TO carbot_v2")
        for path in sorted((REPO / "sql" / "v2").glob("*.sql")):
            cur.execute(path.read_text())
    conn.close()


def make_app_role(db, grant_v2=True):
    """A new login role with the app's usual grants on public (and, for these tests, on carbot_v2)."""
    role = "app_%s" % uuid.uuid4().hex[:8]
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute('CREATE ROLE "%s" LOGIN PASSWORD %%s' % role, (APP_PASSWORD,))  # generated name
        cur.execute('GRANT CONNECT ON DATABASE "%s" TO "%s"' % (db.dbname, role))
        schemas = ["public"] + (["carbot_v2"] if grant_v2 else [])
        for schema in schemas:
            cur.execute('GRANT USAGE ON SCHEMA %s TO "%s"' % (schema, role))
            cur.execute('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO "%s"' % (schema, role))
            cur.execute('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %s TO "%s"' % (schema, role))
    conn.close()
    return role


@pytest.fixture
def switch_db(legacy_db):
    load_v2(legacy_db)
    legacy_db.app_role = make_app_role(legacy_db)
    return legacy_db


def module_args(db, **extra):
    args = {"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
            "login_password": db.password, "ssl_mode": "disable", "app_role": db.app_role,
            "app_password": APP_PASSWORD, "session_wait_seconds": 1}
    args.update(extra)
    return args


def app_connect(db):
    return psycopg2.connect(host=db.host, port=db.port, dbname=db.dbname, user=db.app_role, password=APP_PASSWORD)


def fresh_app_view(db):
    """(search_path, schema where `leads` resolves) as a new app-role session sees them."""
    conn = app_connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW search_path")
            path = cur.fetchone()[0]
            return path, catalog.resolve_schema(cur, "leads")
    finally:
        conn.close()


def raw_settings(db):
    """pg_db_role_setting rows for search_path that can apply to this database, verbatim."""
    return db.query(
        "SELECT coalesce(r.rolname, ''), s.setdatabase <> 0, cfg FROM pg_db_role_setting s"
        " LEFT JOIN pg_roles r ON r.oid = s.setrole CROSS JOIN unnest(s.setconfig) cfg"
        " WHERE cfg LIKE 'search_path=%%' AND (s.setdatabase = 0 OR s.setdatabase ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())) ORDER BY 1, 2, 3")


# ----------------------------------------------------------------------------------------------
# search_path values: parsing and formatting (pure)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, names", [
    ("carbot_v2, public", ["carbot_v2", "public"]),
    ('"$user", public', ["$user", "public"]),
    ('  Public ,"Odd ""Name"", x" ', ["public", 'Odd "Name", x']),
    ('""', [""]),
    ("", []),
])
def test_split_and_format_round_trip(text, names):
    assert paths.split_search_path(text) == names
    assert paths.split_search_path(paths.format_search_path(names) or "") == names


def test_split_rejects_garbage():
    with pytest.raises(ValueError):
        paths.split_search_path('"open')
    with pytest.raises(ValueError):
        paths.split_search_path("a b")


# ----------------------------------------------------------------------------------------------
# The switch
# ----------------------------------------------------------------------------------------------
def test_database_level_switch_seen_from_fresh_app_session_and_back(switch_db):
    db = switch_db
    assert fresh_app_view(db) == ('"$user", public', "public")
    before = raw_settings(db)

    result = run_module("search_path", module_args(db, state="target"))
    assert result["changed"] is True, result
    assert result["verification"]["ok"], result["verification"]
    assert result["verification"]["resolved_schema"] == "carbot_v2"
    assert result["verification"]["write_schema"] == "carbot_v2"
    assert result["effective"] == {"role": db.app_role, "level": "database", "search_path": "carbot_v2, public",
                                   "names": ["carbot_v2", "public"]}
    assert result["settings"]["database"] == ["carbot_v2", "public"]
    assert result["previous"] == {"database": None, "roles": {}}
    assert result["overrides"] == []
    assert fresh_app_view(db) == ("carbot_v2, public", "carbot_v2")

    again = run_module("search_path", module_args(db, state="target"))
    assert again["changed"] is False, again
    assert again["executed_queries"] == []

    back = run_module("search_path", module_args(db, state="legacy"))
    assert back["changed"] is True
    assert back["verification"]["ok"], back["verification"]
    assert back["verification"]["resolved_schema"] == "public"
    assert fresh_app_view(db) == ('"$user", public', "public")
    assert raw_settings(db) == before

    back_again = run_module("search_path", module_args(db, state="legacy"))
    assert back_again["changed"] is False, back_again


def test_role_level_override_detected_and_handled(switch_db):
    db = switch_db
    db.query('ALTER ROLE "%s" SET search_path TO public' % db.app_role)
    before = raw_settings(db)
    assert fresh_app_view(db) == ("public", "public")

    result = run_module("search_path", module_args(db, state="target"))
    assert result["changed"] is True
    assert {"role": db.app_role, "level": "role", "database": None, "value": "public", "handled": True} \
        in result["overrides"]
    assert result["effective"]["level"] == "role_in_database"
    assert result["verification"]["ok"], result["verification"]
    assert fresh_app_view(db) == ("carbot_v2, public", "carbot_v2")
    assert result["previous"] == {"database": None, "roles": {db.app_role: None}}

    assert run_module("search_path", module_args(db, state="target"))["changed"] is False

    back = run_module("search_path", module_args(db, state="legacy"))
    assert back["changed"] is True
    assert back["verification"]["ok"], back["verification"]
    assert raw_settings(db) == before  # the role-level setting is untouched, the rest as it was
    assert fresh_app_view(db) == ("public", "public")
    assert run_module("search_path", module_args(db, state="legacy"))["changed"] is False


def test_role_in_database_override_and_database_value_restored_exactly(switch_db):
    db = switch_db
    db.query('ALTER ROLE "%s" IN DATABASE "%s" SET search_path TO "$user", public, "Odd Schema"'
             % (db.app_role, db.dbname))
    db.query('ALTER DATABASE "%s" SET search_path TO public, pg_catalog' % db.dbname)
    other = make_app_role(db)
    db.query('ALTER ROLE "%s" SET search_path TO public' % other)  # another role's override: reported, not changed
    before = raw_settings(db)

    result = run_module("search_path", module_args(db, state="target"))
    assert result["changed"] is True
    handled = {(o["role"], o["level"]): o["handled"] for o in result["overrides"]}
    assert handled[(db.app_role, "role_in_database")] is True
    assert handled[(other, "role")] is False
    assert any(other in w for w in warnings_of(result))
    assert result["previous"] == {"database": "public, pg_catalog",
                                  "roles": {db.app_role: '"$user", public, "Odd Schema"'}}
    assert fresh_app_view(db) == ("carbot_v2, public", "carbot_v2")

    back = run_module("search_path", module_args(db, state="legacy", verify_table="leads"))
    assert back["changed"] is True
    assert raw_settings(db) == before
    assert fresh_app_view(db)[0] == '"$user", public, "Odd Schema"'
    assert run_module("search_path", module_args(db, state="legacy"))["changed"] is False


def test_existing_app_sessions_are_reported_and_terminated(switch_db):
    db = switch_db
    idle = app_connect(db)
    idle.autocommit = True
    busy = app_connect(db)  # idle in transaction: busy, never cut by terminate_idle
    with busy.cursor() as cur:
        cur.execute("SELECT 1")
    try:
        result = run_module("search_path", module_args(db, state="target", session_wait_seconds=1))
        assert result["sessions"]["old_path"] == 2, result["sessions"]
        assert result["sessions"]["terminated"] == 1
        assert result["sessions"]["remaining"] == 1
        assert any("old search_path" in w for w in warnings_of(result))
        with pytest.raises(psycopg2.OperationalError):
            with idle.cursor() as cur:
                cur.execute("SELECT 1")
        # The busy one still has the legacy path: what the warning is about.
        with busy.cursor() as cur:
            cur.execute("SHOW search_path")
            assert cur.fetchone()[0] == '"$user", public'

        # Settings are in place: a rerun reports the old session but changes nothing (it is still busy).
        rerun = run_module("search_path", module_args(db, state="target"))
        assert rerun["changed"] is False and rerun["sessions"]["remaining"] == 1

        forced = run_module("search_path", module_args(db, state="target", sessions="terminate_all"))
        assert forced["changed"] is True and forced["sessions"]["terminated"] == 1
        assert forced["sessions"]["remaining"] == 0
        with pytest.raises(psycopg2.OperationalError):
            with busy.cursor() as cur:
                cur.execute("SELECT 1")
    finally:
        idle.close()
        busy.close()


def test_way_back_terminates_sessions_that_run_on_carbot_v2(switch_db):
    db = switch_db
    run_module("search_path", module_args(db, state="target"))
    new_session = app_connect(db)
    new_session.autocommit = True
    with new_session.cursor() as cur:
        cur.execute("SHOW search_path")
        assert cur.fetchone()[0] == "carbot_v2, public"
    back = run_module("search_path", module_args(db, state="legacy"))
    assert back["sessions"]["old_path"] == 1 and back["sessions"]["terminated"] == 1
    new_session.close()


def test_report_only_leaves_sessions_alone(switch_db):
    db = switch_db
    idle = app_connect(db)
    idle.autocommit = True
    try:
        result = run_module("search_path", module_args(db, state="target", sessions="report"))
        assert result["sessions"]["old_path"] == 1 and result["sessions"]["terminated"] == 0
        with idle.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        idle.close()


def test_check_mode_changes_nothing(switch_db):
    db = switch_db
    db.query('ALTER ROLE "%s" SET search_path TO public' % db.app_role)
    idle = app_connect(db)
    before = raw_settings(db)
    try:
        result = run_module("search_path", module_args(db, state="target"), check=True)
        assert result["changed"] is True
        assert len(result["executed_queries"]) == 2, result["executed_queries"]
        assert result["sessions"]["would_terminate"] == 1 and result["sessions"]["terminated"] == 0
        assert "verification" not in result
        assert raw_settings(db) == before
        assert db.scalar("SELECT to_regclass('carbot_v2.migration_cutover_state') IS NULL")
        with idle.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        idle.close()


def test_way_back_without_a_record_fails_clearly(switch_db):
    db = switch_db
    db.query('ALTER DATABASE "%s" SET search_path TO carbot_v2, public' % db.dbname)
    result = run_module("search_path", module_args(db, state="legacy"))
    assert result.get("failed") is True
    assert "no record of the previous value" in result["msg"]
    # Nothing recorded and nothing switched: the way back is a no-op.
    db.query('ALTER DATABASE "%s" RESET search_path' % db.dbname)
    assert run_module("search_path", module_args(db, state="legacy"))["changed"] is False


def test_verification_fails_when_the_app_has_no_grants_on_carbot_v2(legacy_db):
    db = legacy_db
    load_v2(db)
    db.app_role = make_app_role(db, grant_v2=False)
    result = run_module("search_path", module_args(db, state="target"))
    assert result.get("failed") is True
    assert "verification" in result["msg"]
    # Without USAGE on carbot_v2 PostgreSQL skips the schema silently: leads still resolves in public.
    assert "leads resolves in schema public" in result["msg"], result["verification"]


def test_verification_fails_when_the_app_cannot_write_to_carbot_v2(legacy_db):
    db = legacy_db
    load_v2(db)
    db.app_role = make_app_role(db, grant_v2=False)
    db.query('GRANT USAGE ON SCHEMA carbot_v2 TO "%s"' % db.app_role)
    db.query('GRANT SELECT ON ALL TABLES IN SCHEMA carbot_v2 TO "%s"' % db.app_role)
    result = run_module("search_path", module_args(db, state="target"))
    assert result.get("failed") is True
    assert any("permission denied" in p for p in result["verification"]["problems"]), result["verification"]


# ----------------------------------------------------------------------------------------------
# The role, through ansible-playbook: override handled, rerun changes nothing, undo restores
# ----------------------------------------------------------------------------------------------
ROLE_PLAY = """
- name: search_path role
  hosts: localhost
  gather_facts: false
""" + PLAY_CONNECTION + """  tasks:
    - name: Switch or undo
      ansible.builtin.include_role:
        name: carbot.migration.search_path
        tasks_from: "{{ entry }}"
"""


def run_role(db, tmp_path, entry, *extra_args):
    import os
    import subprocess
    import sys

    (tmp_path / "play.yml").write_text(ROLE_PLAY)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({
        "carbot_db_host": db.host, "carbot_db_port": db.port, "carbot_db_name": db.dbname,
        "carbot_db_user": db.user, "carbot_db_password": db.password, "carbot_db_sslmode": "disable",
        "carbot_legacy_schema": "public", "carbot_target_schema": "carbot_v2",
        "carbot_app_db_user": db.app_role, "carbot_app_db_password": APP_PASSWORD, "entry": entry,
        "search_path_session_wait_seconds": 1, "ansible_python_interpreter": sys.executable}))
    vars_file.chmod(0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), CARBOT_REPORTS_DIR=str(tmp_path / "reports"))
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", "-e", "@%s" % vars_file, *extra_args, str(tmp_path / "play.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert db.password not in done.stdout + done.stderr and APP_PASSWORD not in done.stdout + done.stderr
    return done


def recap_changed(stdout):
    import re

    return int(re.search(r"localhost\s*:.*changed=(\d+)", stdout).group(1))


@pytest.mark.slow
def test_role_handles_a_role_level_override_and_a_rerun_changes_nothing(switch_db, tmp_path):
    db = switch_db
    db.query('ALTER ROLE "%s" SET search_path TO public' % db.app_role)
    before = raw_settings(db)

    checked = run_role(db, tmp_path, "main", "--check")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert raw_settings(db) == before

    done = run_role(db, tmp_path, "main")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert recap_changed(done.stdout) == 1
    assert "resolves in carbot_v2" in done.stdout
    assert fresh_app_view(db) == ("carbot_v2, public", "carbot_v2")

    rerun = run_role(db, tmp_path, "main")
    assert rerun.returncode == 0 and recap_changed(rerun.stdout) == 0, rerun.stdout[-3000:]

    undo = run_role(db, tmp_path, "undo")
    assert undo.returncode == 0, undo.stdout[-4000:]
    assert raw_settings(db) == before and fresh_app_view(db) == ("public", "public")
    assert recap_changed(run_role(db, tmp_path, "undo").stdout) == 0


# ----------------------------------------------------------------------------------------------
# state=read: the settings as lists, for playbooks that must not parse pg_db_role_setting themselves
# ----------------------------------------------------------------------------------------------
def test_read_returns_every_level_as_lists_and_changes_nothing(legacy_db):
    """No target schema needed; quoted names kept, unquoted folded; the app's effective path and its level."""
    db = legacy_db
    db.app_role = make_app_role(db, grant_v2=False)
    empty = run_module("search_path", module_args(db, state="read", app_password=None))
    assert empty["changed"] is False and not empty.get("failed"), empty
    # (other tests' roles may have role-level settings: ALTER ROLE is cluster-wide)
    assert empty["settings"]["database"] is None and db.app_role not in empty["settings"]["roles"]
    assert empty["effective"]["level"] is None and empty["effective"]["names"] is None

    db.query('ALTER DATABASE "%s" SET search_path TO %%s, %%s' % db.dbname, ("Carbot V2", "public"))
    db.query('ALTER ROLE "%s" SET search_path TO "$user", Legacy' % db.app_role)
    db.query('ALTER ROLE "%s" IN DATABASE "%s" SET search_path TO %%s' % (db.app_role, db.dbname), ("x,y",))
    before = raw_settings(db)
    got = run_module("search_path", module_args(db, state="read", app_password=None))
    assert not got.get("failed"), got
    assert got["settings"]["database"] == ["Carbot V2", "public"]
    assert got["settings"]["roles"][db.app_role] == {"role": ["$user", "legacy"], "role_in_database": ["x,y"]}
    assert got["current"]["database"] == '"Carbot V2", public'
    assert got["effective"] == {"role": db.app_role, "level": "role_in_database", "search_path": '"x,y"',
                                "names": ["x,y"]}
    assert got["executed_queries"] == [] and raw_settings(db) == before
    db.query('ALTER ROLE "%s" IN DATABASE "%s" RESET search_path' % (db.app_role, db.dbname))
    db.query('ALTER ROLE "%s" RESET search_path' % db.app_role)
    db.query('ALTER DATABASE "%s" RESET search_path' % db.dbname)


def test_read_fails_cleanly_when_the_database_is_unreachable(legacy_db):
    db = legacy_db
    db.app_role = "nobody"
    got = run_module("search_path", module_args(db, state="read", app_password=None, login_port=1,
                                                connect_timeout=2))
    assert got.get("failed") is True and "Could not connect to" in got["msg"] and db.password not in json.dumps(got)
