"""Fidelity tests for the CarBot admin API stand-in (tests/standins/admin_api.py).

Real HTTP over loopback (urllib, and ansible.builtin.uri through ansible-playbook) against a real
PostgreSQL 15 database, with a separate non-superuser application role, as in production.
"""

import http.client
import json
import os
import pathlib
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from psycopg2 import sql

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # tests/ is a namespace package; the stand-ins import as tests.standins.*
    sys.path.insert(0, str(REPO))

from tests.standins.admin_api import start_admin_api  # noqa: E402

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "admin_api_standin.yml"


# --------------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------------
def call(url, method="GET", token=None, body=None, timeout=10, headers=None, raw=None):
    """One HTTP request; returns (status, decoded JSON body, response headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", "Bearer %s" % token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null"), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), exc.headers


class AppDatabase:
    """A fresh database: legacy tables in public, a carbot_v2 schema with a leads table, and an
    application role (non-superuser, with a password) that may use both."""

    def __init__(self, admin_db):
        self.admin = admin_db
        self.role = "carbot_app_%s" % uuid.uuid4().hex[:8]
        self.password = secrets.token_urlsafe(16)

    @property
    def dsn(self):
        return "host=%s port=%s dbname=%s user=%s password=%s" % (
            self.admin.host, self.admin.port, self.admin.dbname, self.role, self.password)

    def run(self, statement, args=None):
        conn = self.admin.connect()
        with conn.cursor() as cur:
            cur.execute(statement, args)
            rows = cur.fetchall() if cur.description else None
        conn.close()
        return rows

    def ident(self, text, **names):
        """``text`` with {placeholders} filled by identifiers (role, db and whatever is passed)."""
        names.setdefault("role", self.role)
        names.setdefault("db", self.admin.dbname)
        return sql.SQL(text).format(**{k: sql.Identifier(v) for k, v in names.items()})


@pytest.fixture
def app_db(legacy_db):
    db = AppDatabase(legacy_db)
    db.run(db.ident("CREATE ROLE {role} LOGIN PASSWORD %s"), (db.password,))
    db.run("INSERT INTO public.leads (id, name, source) VALUES (gen_random_uuid(), 'Max Mustermann', 'widget')")
    db.run("CREATE SCHEMA carbot_v2")
    db.run("CREATE TABLE carbot_v2.leads (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), workshop_id uuid NOT NULL,"
           " client_key text, source text NOT NULL, status text DEFAULT 'new', created_at timestamptz DEFAULT now())")
    for statement in ("GRANT CONNECT ON DATABASE {db} TO {role}",
                      "GRANT USAGE ON SCHEMA public TO {role}",
                      "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
                      "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA carbot_v2 TO {role}"):
        db.run(db.ident(statement))
    # USAGE on carbot_v2 is deliberately NOT granted here: test_health_database_follows_search_path
    # shows what a missing USAGE does to the search_path, then grants it.
    yield db
    db.run(db.ident("DROP OWNED BY {role}"))
    db.run(db.ident("ALTER DATABASE {db} RESET search_path"))
    db.run(db.ident("DROP ROLE {role}"))


@pytest.fixture
def standins():
    """Factory: start a stand-in in a thread; every one is stopped after the test."""
    running = []

    def factory(db_dsn="host=127.0.0.1 port=1 dbname=none user=none password=none", token=None, **options):
        api = start_admin_api(token or secrets.token_urlsafe(24), db_dsn, **options)
        running.append(api)
        return api

    yield factory
    for api in running:
        api.stop()


def request_log(api=None, url=None, token=None):
    status, body, _ = call((url or api.url) + "/_control/log", token=token or api.api.token)
    assert status == 200
    return body


def set_faults(api, *faults):
    status, body, _ = call(api.url + "/_control/faults", "POST", api.api.token, list(faults))
    assert status == 200, body
    return body["faults"]


# --------------------------------------------------------------------------------------------------
# HTTP surface and auth
# --------------------------------------------------------------------------------------------------
def test_liveness_unknown_paths_and_methods(standins):
    api = standins()
    status, body, _ = call(api.url + "/health")
    assert status == 200 and body["ok"] is True and body["service"] == "carbot-admin-api-standin"
    status, body, _ = call(api.url + "/admin/nothing-here", token=api.api.token)
    assert status == 404 and "no such endpoint" in body["error"]
    status, body, headers = call(api.url + "/admin/maintenance", "DELETE", api.api.token)
    assert status == 405 and headers["Allow"] == "GET, POST"


def test_bearer_auth_is_required_and_the_token_is_never_logged(standins):
    api = standins()
    token = api.api.token
    for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer wrong-token"}):
        status, body, response_headers = call(api.url + "/admin/maintenance", headers=headers)
        assert status == 401, headers
        assert body["error"] and response_headers["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = call(api.url + "/admin/maintenance", "POST", token="wrong", body={"enabled": True})
    assert status == 401
    assert call(api.url + "/admin/maintenance", token=token)[1]["enabled"] is False, "a refused POST changed state"
    assert call(api.url + "/health/migrations")[0] == 401
    assert call(api.url + "/_control/log")[0] == 401
    assert call(api.url + "/_control/faults", "POST", body={"endpoint": "*", "down": True})[0] == 401
    assert call(api.url + "/admin/maintenance", token=token)[0] == 200

    log = request_log(api)
    assert [e["auth"] for e in log["requests"]] == ["missing", "malformed", "invalid", "invalid", "ok",
                                                    "missing", "ok"]
    assert token not in json.dumps(log) and "wrong-token" not in json.dumps(log)


# --------------------------------------------------------------------------------------------------
# maintenance mode
# --------------------------------------------------------------------------------------------------
def test_maintenance_validation_round_trip_and_timeline(standins):
    api = standins()
    url, token = api.url + "/admin/maintenance", api.api.token
    assert call(url, "POST", token, raw=b"{not json")[0] == 400
    assert call(url, "POST", token, body={"message": "no enabled"})[0] == 400
    assert call(url, "POST", token, body={"enabled": "true"})[0] == 400, "a string is not a boolean"
    assert call(url, "POST", token, body={"enabled": True, "message": 5})[0] == 400
    assert call(url, "POST", token, body=[True])[0] == 400
    status, body, _ = call(url, "POST", token, raw=b'{"enabled": true}', headers={"Content-Type": "text/plain"})
    assert status == 415, body
    assert call(url, token=token)[1] == {"enabled": False, "message": "", "since": None}

    status, on, _ = call(url, "POST", token, body={"enabled": True, "message": "Wartungsarbeiten bis 03:00"})
    assert status == 200 and on["enabled"] is True and on["changed"] is True and on["since"]
    assert call(url, token=token)[1] == {"enabled": True, "message": "Wartungsarbeiten bis 03:00",
                                         "since": on["since"]}
    status, again, _ = call(url, "POST", token, body={"enabled": True, "message": "noch 5 Minuten"})
    assert again["changed"] is False and again["since"] == on["since"], "since moves only when enabled flips"
    time.sleep(0.05)
    status, off, _ = call(url, "POST", token, body={"enabled": False})
    assert status == 200 and off["changed"] is True and off["since"] > on["since"]

    log = request_log(api)
    assert [(c["enabled"], c["time"]) for c in log["maintenance_changes"]] == [(True, on["since"]),
                                                                                (False, off["since"])]
    [window] = log["write_freeze_windows"]
    started, ended = log["maintenance_changes"]
    # the window is what the two recorded changes say, to the millisecond (no clock is asserted on here)
    assert window == {"start": on["since"], "end": off["since"], "seconds": round(ended["ts"] - started["ts"], 3)}
    posts = [e for e in log["requests"] if e["method"] == "POST"]
    assert [(e["status"], e.get("enabled")) for e in posts] == [
        (400, None), (400, None), (400, None), (400, None), (400, None), (415, None),
        (200, True), (200, True), (200, False)]


def _start_cli(tmp_path, env, *extra):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.admin_api", "--port", "0", "--state-file", str(tmp_path / "state.json"),
         "--ready-file", str(ready), *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the stand-in did not become ready: %s" % proc.communicate()[1])
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    assert info["pid"] == proc.pid
    return proc, info["url"], ready


def _stop_cli(proc, ready):
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert not ready.exists(), "the ready file must not outlive the server"
    return stderr


def test_cli_restart_keeps_maintenance_state_and_hides_secrets(tmp_path, app_db):
    token = secrets.token_urlsafe(24)
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "dsn").write_text(app_db.dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBOT_ADMIN_API_")}
    proc, url, ready = _start_cli(tmp_path, env, "--token-file", str(tmp_path / "token"),
                                  "--db-dsn-file", str(tmp_path / "dsn"))
    try:
        cmdline = pathlib.Path("/proc/%d/cmdline" % proc.pid).read_bytes().decode()
        assert token not in cmdline and app_db.password not in cmdline
        status, on, _ = call(url + "/admin/maintenance", "POST", token, {"enabled": True, "message": "Umzug"})
        assert status == 200
        assert call(url + "/health/database")[1]["resolved_schema"] == "public"
    finally:
        stderr = _stop_cli(proc, ready)
    assert token not in stderr and app_db.password not in stderr
    state_file = tmp_path / "state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert token not in state_file.read_text()

    # The second life takes its secrets from the environment instead of files.
    env.update(CARBOT_ADMIN_API_TOKEN=token, CARBOT_ADMIN_API_DB_DSN=app_db.dsn)
    proc, url, ready = _start_cli(tmp_path, env)
    try:
        assert call(url + "/admin/maintenance", token=token)[1] == {"enabled": True, "message": "Umzug",
                                                                     "since": on["since"]}
        call(url + "/admin/maintenance", "POST", token, {"enabled": False})
        log = request_log(url=url, token=token)
        assert [c["enabled"] for c in log["maintenance_changes"]] == [True, False], "the timeline survives too"
        assert log["write_freeze_windows"][0]["start"] == on["since"]
    finally:
        _stop_cli(proc, ready)


def test_cli_refuses_to_start_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBOT_ADMIN_API_")}
    done = subprocess.run([sys.executable, "-m", "tests.standins.admin_api", "--port", "0"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "no token" in done.stderr


# --------------------------------------------------------------------------------------------------
# /health/database: through the application role, fresh session per call
# --------------------------------------------------------------------------------------------------
def test_health_database_follows_search_path(app_db, standins):
    api = standins(app_db.dsn)
    url = api.url + "/health/database"

    status, body, _ = call(url)
    assert status == 200, body
    assert body["ok"] is True and body["resolved_schema"] == "public" and body["can_write"] is True
    assert body["current_user"] == app_db.role and body["search_path"] == '"$user", public'
    assert body["error"] is None and body["latency_ms"] > 0
    status, body, _ = call(url + "?expect_schema=carbot_v2")
    assert status == 503 and "resolves in schema public, expected carbot_v2" in body["error"]

    old_session = app_db.admin.connect(user=app_db.role, password=app_db.password)
    app_db.run(app_db.ident("ALTER DATABASE {db} SET search_path TO carbot_v2, public"))
    # Without USAGE on carbot_v2 PostgreSQL silently skips the schema: the app still lands in public.
    status, body, _ = call(url + "?expect_schema=carbot_v2")
    assert status == 503 and body["search_path"] == "carbot_v2, public" and body["resolved_schema"] == "public"

    app_db.run(app_db.ident("GRANT USAGE ON SCHEMA carbot_v2 TO {role}"))
    status, body, _ = call(url + "?expect_schema=carbot_v2")
    assert status == 200 and body["resolved_schema"] == "carbot_v2" and body["can_write"] is True, body
    with old_session.cursor() as cur:  # why the stand-in never pools: an old session keeps the old path
        cur.execute("SELECT 'leads'::regclass::text, current_setting('search_path')")
        assert cur.fetchone() == ("leads", '"$user", public')
    old_session.close()

    app_db.run(app_db.ident("ALTER ROLE {role} SET search_path TO public"))  # role-level beats database-level
    assert call(url)[1]["resolved_schema"] == "public"
    app_db.run(app_db.ident("ALTER ROLE {role} RESET search_path"))
    assert call(url)[1]["resolved_schema"] == "carbot_v2"

    # Every health write was rolled back, in both schemas.
    assert app_db.run("SELECT count(*) FROM public.leads")[0][0] == 1
    assert app_db.run("SELECT count(*) FROM carbot_v2.leads")[0][0] == 0
    assert [e["status"] for e in request_log(api)["requests"]] == [200, 503, 503, 200, 200, 200]


def test_revoked_insert_makes_can_write_false(app_db, standins):
    api = standins(app_db.dsn)
    app_db.run(app_db.ident("GRANT USAGE ON SCHEMA carbot_v2 TO {role}"))
    app_db.run(app_db.ident("ALTER DATABASE {db} SET search_path TO carbot_v2, public"))
    assert call(api.url + "/health/database")[0] == 200
    app_db.run(app_db.ident("REVOKE INSERT ON carbot_v2.leads FROM {role}"))
    status, body, _ = call(api.url + "/health/database")
    assert status == 503
    assert body["ok"] is False and body["can_write"] is False and body["resolved_schema"] == "carbot_v2"
    assert "permission denied" in body["error"]


def test_health_write_takes_keys_from_the_sequence_and_parents_from_the_table(app_db, standins):
    """A copy that inserted explicit ids without setval() breaks the app's next insert: the health write
    goes through the sequence, so it sees the same collision (and a missing parent row) before the app does."""
    app_db.run("CREATE TABLE carbot_v2.workshops (id uuid PRIMARY KEY, name text NOT NULL)")
    app_db.run("CREATE TABLE carbot_v2.chat_messages (id bigserial PRIMARY KEY,"
               " workshop_id uuid NOT NULL REFERENCES carbot_v2.workshops (id), sender text NOT NULL,"
               " message text NOT NULL, created_at timestamptz NOT NULL)")
    for statement in ("GRANT USAGE ON SCHEMA carbot_v2 TO {role}",
                      "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA carbot_v2 TO {role}",
                      "GRANT USAGE ON ALL SEQUENCES IN SCHEMA carbot_v2 TO {role}",
                      "ALTER DATABASE {db} SET search_path TO carbot_v2, public"):
        app_db.run(app_db.ident(statement))
    api = standins(app_db.dsn, health_table="chat_messages")
    url = api.url + "/health/database"

    status, body, _ = call(url)
    assert status == 503 and "references carbot_v2.workshops, which has no rows" in body["error"]
    app_db.run("INSERT INTO carbot_v2.workshops VALUES (gen_random_uuid(), 'Autohaus Berg')")
    # The copy kept the legacy ids 1..3 but never moved the sequence.
    app_db.run("INSERT INTO carbot_v2.chat_messages SELECT i, w.id, 'user', 'Hallo', now()"
               " FROM generate_series(1, 3) i, carbot_v2.workshops w")
    status, body, _ = call(url)
    assert status == 503 and body["can_write"] is False and "duplicate key" in body["error"], body
    app_db.run("SELECT setval('carbot_v2.chat_messages_id_seq', (SELECT max(id) FROM carbot_v2.chat_messages))")
    status, body, _ = call(url)
    assert status == 200 and body["can_write"] is True, body
    assert app_db.run("SELECT count(*) FROM carbot_v2.chat_messages")[0][0] == 3


def test_database_unreachable_or_refused_is_503_without_secrets(app_db, standins):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    api = standins(app_db.dsn.replace("port=%s" % app_db.admin.port, "port=%d" % free_port))
    status, body, _ = call(api.url + "/health/database")
    assert status == 503 and body["ok"] is False and body["can_write"] is False
    assert body["error"].startswith("database unreachable") and body["resolved_schema"] is None

    api = standins(app_db.dsn.replace(app_db.password, "wrong-" + app_db.password))
    status, body, _ = call(api.url + "/health/database")
    assert status == 503 and "password authentication failed" in body["error"]
    assert app_db.password not in json.dumps(body)
    assert call(api.url + "/health")[0] == 200, "liveness does not depend on the database"


# --------------------------------------------------------------------------------------------------
# /health/migrations
# --------------------------------------------------------------------------------------------------
def test_health_migrations_with_a_hand_made_status_table(app_db, standins):
    api = standins(app_db.dsn)
    url, token = api.url + "/health/migrations", api.api.token

    status, body, _ = call(url, token=token)
    assert status == 503 and body["ok"] is False and body["reason"] == "table carbot_v2.migration_status does not exist"

    app_db.run("CREATE TABLE carbot_v2.migration_status (target_table text PRIMARY KEY, source_table text NOT NULL,"
               " state text NOT NULL DEFAULT 'pending', last_key text[], rows_copied bigint NOT NULL DEFAULT 0,"
               " rows_quarantined bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now(),"
               " finished_at timestamptz, last_error text)")
    status, body, _ = call(url, token=token)
    assert status == 503 and "permission denied" in body["reason"], "the app role was not granted SELECT"
    app_db.run(app_db.ident("GRANT USAGE ON SCHEMA carbot_v2 TO {role}"))
    app_db.run(app_db.ident("GRANT SELECT ON carbot_v2.migration_status TO {role}"))

    status, body, _ = call(url, token=token)
    assert status == 503 and "no rows" in body["reason"]

    app_db.run("INSERT INTO carbot_v2.migration_status (target_table, source_table, state, rows_copied, last_key)"
               " VALUES ('workshops', 'workshops', 'copied', 120, '{x}'), ('leads', 'leads', 'copying', 5000, NULL),"
               " ('customers', 'customers', 'copied', 20000, NULL)")
    status, body, _ = call(url, token=token)
    assert status == 503 and body["reason"] == "not copied: leads (copying, 5000 rows)"
    assert [t["target_table"] for t in body["tables"]] == ["customers", "leads", "workshops"]
    assert "last_key" not in body["tables"][2] and body["summary"]["copying"] == 1

    app_db.run("UPDATE carbot_v2.migration_status SET state = 'failed',"
               " last_error = 'duplicate key value violates unique constraint' WHERE target_table = 'leads'")
    status, body, _ = call(url, token=token)
    assert status == 503 and body["reason"] == "failed: leads (duplicate key value violates unique constraint)"

    app_db.run("UPDATE carbot_v2.migration_status SET state = 'copied', last_error = NULL, finished_at = now()")
    status, body, _ = call(url, token=token)
    assert status == 200 and body["ok"] is True and body["reason"] is None
    assert body["summary"] == {"pending": 0, "copying": 0, "copied": 3, "failed": 0}
    assert body["tables"][1]["rows_copied"] == 5000 and body["tables"][1]["finished_at"]

    status, body, _ = call(url + "?expect_tables=25", token=token)
    assert status == 503 and body["reason"] == "3 tables registered, 25 expected"
    assert call(url + "?expect_tables=many", token=token)[0] == 400


@pytest.mark.skipif(not (REPO / "sql/v2/040_migration_tables.sql").exists(), reason="sql/v2 has no migration tables")
def test_health_migrations_reads_the_real_status_table(app_db, standins):
    """The table as sql/v2 defines it (enum state, more columns), read through a separate status DSN."""
    conn = app_db.admin.connect()
    with conn.cursor() as cur:
        cur.execute("SET search_path TO carbot_v2")
        for name in ("010_types.sql", "040_migration_tables.sql"):
            cur.execute((REPO / "sql/v2" / name).read_text())
        cur.execute("INSERT INTO migration_status (target_table, source_table, state, rows_copied)"
                    " VALUES ('leads', 'leads', 'copied', 7), ('chat_sessions', 'chat_messages', 'pending', 0)")
    conn.close()
    api = standins(app_db.dsn, status_dsn=app_db.admin.dsn)
    status, body, _ = call(api.url + "/health/migrations", token=api.api.token)
    assert status == 503 and body["reason"] == "not copied: chat_sessions (pending, 0 rows)", body
    app_db.run("UPDATE carbot_v2.migration_status SET state = 'copied'")
    status, body, _ = call(api.url + "/health/migrations", token=api.api.token)
    assert status == 200 and body["ok"] is True and body["summary"]["copied"] == 2


# --------------------------------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------------------------------
def test_fault_status_n_times_then_recovers(standins):
    api = standins()
    url, token = api.url + "/admin/maintenance", api.api.token
    [fault] = set_faults(api, {"endpoint": "/admin/maintenance", "method": "POST", "status": 503, "times": 2})
    assert fault["times"] == 2
    statuses = [call(url, "POST", token, {"enabled": True})[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert call(url, token=token)[1]["enabled"] is True
    assert call(api.url + "/_control/faults", token=token)[1]["faults"] == [], "a used-up fault is removed"
    requests = [(e["method"], e["status"], e["fault"]) for e in request_log(api)["requests"]]
    assert requests == [("POST", 503, "status"), ("POST", 503, "status"), ("POST", 200, None), ("GET", 200, None)]


def test_fault_with_a_lying_body_is_caught_by_reading_back(standins):
    api = standins()
    url, token = api.url + "/admin/maintenance", api.api.token
    set_faults(api, {"endpoint": "/admin/maintenance", "method": "POST", "status": 200, "times": 1,
                     "body": {"enabled": True, "message": "", "since": None}})
    status, body, _ = call(url, "POST", token, {"enabled": True})
    assert status == 200 and body["enabled"] is True
    assert call(url, token=token)[1]["enabled"] is False, "the POST was acknowledged but never applied"


def test_fault_down_closes_connections_until_cleared(standins):
    api = standins()
    token = api.api.token
    set_faults(api, {"endpoint": "*", "down": True})
    for path in ("/health", "/admin/maintenance", "/health/database"):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, urllib.error.URLError)):
            call(api.url + path, token=token, timeout=5)
    assert call(api.url + "/_control/faults", token=token)[0] == 200, "the control plane is never faulted"
    status, body, _ = call(api.url + "/_control/faults", "DELETE", token)
    assert status == 200 and body == {"faults": []}
    assert call(api.url + "/health")[0] == 200
    requests = [(e["path"], e["status"], e["fault"]) for e in request_log(api)["requests"]]
    assert requests == [("/health", None, "down"), ("/admin/maintenance", None, "down"),
                        ("/health/database", None, "down"), ("/health", 200, None)]


def test_fault_delay_makes_clients_time_out(standins):
    api = standins()
    set_faults(api, {"endpoint": "/health", "delay_ms": 1500, "times": 1},
               {"endpoint": "/health", "delay_ms": 300, "status": 502, "times": 1})
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        call(api.url + "/health", timeout=0.3)
    assert time.monotonic() - started < 1.2
    started = time.monotonic()
    status, body, _ = call(api.url + "/health", timeout=5)
    assert status == 502 and body == {"error": "injected fault", "status": 502}
    assert time.monotonic() - started >= 0.3
    assert call(api.url + "/health", timeout=1)[0] == 200

    # One slow endpoint does not hold up the others (a thread per request, as in the real API).
    set_faults(api, {"endpoint": "/health", "delay_ms": 1000, "times": 1})
    slow = threading.Thread(target=call, args=(api.url + "/health",), kwargs={"timeout": 5})
    slow.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert call(api.url + "/admin/maintenance", token=api.api.token, timeout=5)[0] == 200
    assert time.monotonic() - started < 0.5
    slow.join()


def test_invalid_faults_are_refused(standins):
    api = standins()
    url, token = api.url + "/_control/faults", api.api.token
    for fault in ({"endpoint": "/health"}, {"endpoint": "/_control/log", "down": True},
                  {"endpoint": "health", "status": 500}, {"endpoint": "*", "down": True, "status": 500},
                  {"endpoint": "*", "status": 500, "times": 0}, {"endpoint": "*", "statuss": 500},
                  {"endpoint": "*", "status": True}):
        status, body, _ = call(url, "POST", token, fault)
        assert status == 400 and body["error"], fault
    assert call(url, token=token)[1]["faults"] == []


# --------------------------------------------------------------------------------------------------
# through Ansible, as the roles use it
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ansible_uri_retries_through_faults_and_keeps_the_token_out_of_the_log(app_db, standins, tmp_path):
    app_db.run(app_db.ident("GRANT USAGE ON SCHEMA carbot_v2 TO {role}"))
    app_db.run(app_db.ident("ALTER DATABASE {db} SET search_path TO carbot_v2, public"))
    api = standins(app_db.dsn)
    token = api.api.token
    set_faults(api, {"endpoint": "/admin/maintenance", "method": "POST", "status": 503, "times": 2},
               {"endpoint": "/health/database", "status": 500, "times": 1})
    extra_vars = tmp_path / "vars.json"
    extra_vars.write_text(json.dumps({"carbot_api_url": api.url, "carbot_api_token": token,
                                      "expected_schema": "carbot_v2", "ansible_python_interpreter": sys.executable}))
    extra_vars.chmod(0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-v", "-i", "localhost,",
                           "-c", "local", "-e", "@%s" % extra_vars, str(PLAYBOOK)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert token not in done.stdout and token not in done.stderr

    log = request_log(api)
    calls = [(e["method"], e["path"], e["status"]) for e in log["requests"]]
    assert calls == [
        ("POST", "/admin/maintenance", 503), ("POST", "/admin/maintenance", 503), ("POST", "/admin/maintenance", 200),
        ("GET", "/admin/maintenance", 200),
        ("GET", "/health/database", 500), ("GET", "/health/database", 200),
        ("POST", "/admin/maintenance", 200), ("GET", "/admin/maintenance", 200)]
    assert all(e["auth"] == "ok" for e in log["requests"] if e["path"] == "/admin/maintenance")
    assert [c["enabled"] for c in log["maintenance_changes"]] == [True, False]
    started, ended = log["maintenance_changes"]
    assert log["write_freeze_windows"] == [{"start": started["time"], "end": ended["time"],
                                            "seconds": round(ended["ts"] - started["ts"], 3)}]
    assert call(api.url + "/admin/maintenance", token=token)[1]["enabled"] is False
