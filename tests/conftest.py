"""Shared pytest fixtures: a real, throwaway PostgreSQL cluster per test session.

The cluster is started by the same code as the ``local_postgres`` role and
Molecule's create.yml (``plugins/module_utils/local_cluster.py``).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import uuid

import psycopg2
import psycopg2.sql
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".collections"))
# Tests read what ansible and ansible-playbook print: no colour codes in it (`make` turns colour on).
os.environ["ANSIBLE_FORCE_COLOR"] = "0"
os.environ["ANSIBLE_NOCOLOR"] = "1"
# Playbooks run by tests write their migration reports here, not into the repository's reports/.
os.environ.setdefault("CARBOT_REPORTS_DIR", tempfile.mkdtemp(prefix="carbot-test-reports-"))

from ansible_collections.carbot.rehearsal.plugins.module_utils.local_cluster import LocalCluster  # noqa: E402

# For a test play that runs one role: the connection as every playbook takes it (playbooks/vars/connection.yml,
# carbot_db_login from the inventory's carbot_db_*), handed to the collection's database modules.
PLAY_CONNECTION = (
    "  vars_files: [%s]\n"
    "  module_defaults:\n"
    '    group/carbot.migration.db: "{{ carbot_db_login }}"\n') % (REPO / "playbooks" / "vars" / "connection.yml")

SUPERUSER_PASSWORD = "carbot-local-test"  # a throwaway cluster on loopback, not a secret


class Database:
    """Connection facts of one test database, and a way to connect to it."""

    def __init__(self, host, port, dbname, user, password):
        self.host, self.port, self.dbname, self.user, self.password = host, port, dbname, user, password

    @property
    def params(self):
        return {"host": self.host, "port": self.port, "dbname": self.dbname,
                "user": self.user, "password": self.password}

    @property
    def dsn(self):
        return "host=%s port=%s dbname=%s user=%s password=%s" % (
            self.host, self.port, self.dbname, self.user, self.password)

    def connect(self, autocommit=True, **extra):
        conn = psycopg2.connect(**dict(self.params, **extra))
        conn.autocommit = autocommit
        return conn

    def query(self, sql, args=None):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description else None
        conn.close()
        return rows

    def scalar(self, sql, args=None):
        return self.query(sql, args)[0][0]


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL cluster for the whole test session, on a free port."""
    base = tempfile.mkdtemp(prefix="carbot-pytest-")
    cluster = LocalCluster(os.path.join(base, "pg"))
    cluster.ensure_started(SUPERUSER_PASSWORD)
    facts = cluster.facts()
    facts["password"] = SUPERUSER_PASSWORD
    try:
        yield facts
    finally:
        cluster.ensure_absent()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def make_database(pg_cluster):
    """Factory: a new, empty database on the session cluster."""
    admin = Database(pg_cluster["host"], pg_cluster["port"], "postgres",
                     pg_cluster["superuser"], pg_cluster["password"])

    def factory(prefix="t"):
        name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
        conn = admin.connect()
        with conn.cursor() as cur:
            cur.execute('CREATE DATABASE "%s"' % name)  # name is generated above, never user input
        conn.close()
        return Database(admin.host, admin.port, name, admin.user, admin.password)

    return factory


@pytest.fixture(autouse=True)
def _reset_cluster_wide_role_settings(request):
    """A role's settings for all databases (``ALTER ROLE r SET ...`` without ``IN DATABASE``) live in the cluster,
    not in a test's database: one test's override would be seen in every later test's database on the session
    cluster (assess reports it as a no-go, search_path lists it as an override). Reset them after each test."""
    yield
    if "pg_cluster" not in request.fixturenames:
        return
    facts = request.getfixturevalue("pg_cluster")
    conn = Database(facts["host"], facts["port"], "postgres", facts["superuser"], facts["password"]).connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT r.rolname FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                        "WHERE s.setdatabase = 0")
            for (role,) in cur.fetchall():
                cur.execute(psycopg2.sql.SQL("ALTER ROLE {} RESET ALL").format(psycopg2.sql.Identifier(role)))
    finally:
        conn.close()


def playbook_pids(vars_file, playbook=None):
    """Pids of the ansible-playbook processes run with ``-e @vars_file`` (and, if given, ``playbook``): the main
    process and its workers, which have the same command line (ansible-core's workers call setsid(), so a kill of
    the main process's group leaves them running)."""
    marker = ("@%s" % vars_file).encode()
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and marker in argv and (playbook is None or any(a.endswith(playbook.encode()) for a in argv)):
            pids.append(int(entry.name))
    return pids


SEQUENCE_PRIVILEGES = {"USAGE, SELECT": "USAGE, SELECT", "USAGE, SELECT, UPDATE": "USAGE, SELECT, UPDATE", "ALL": "ALL"}


def make_app_role(db, password, schemas=("public",), sequences="USAGE, SELECT", name=None, connect=False):
    """A login role with what the CarBot app has in production (rehearsal/playbooks/legacy_data.yml): DML on every
    table of ``schemas`` and ``sequences`` privileges on their sequences, nothing else. The name is generated
    (``app_<hex>``) unless given; ``connect`` also grants CONNECT on the database. Returns the role's name."""
    role = name or "app_%s" % uuid.uuid4().hex[:8]
    ident = psycopg2.sql.Identifier(role)
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(psycopg2.sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(ident), (password,))
            if connect:
                cur.execute(psycopg2.sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    psycopg2.sql.Identifier(db.dbname), ident))
            for schema in schemas:
                names = {"schema": psycopg2.sql.Identifier(schema), "role": ident}
                cur.execute(psycopg2.sql.SQL("GRANT USAGE ON SCHEMA {schema} TO {role}").format(**names))
                cur.execute(psycopg2.sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
                                             "TO {role}").format(**names))
                cur.execute(psycopg2.sql.SQL("GRANT {privileges} ON ALL SEQUENCES IN SCHEMA {schema} TO {role}").format(
                    privileges=psycopg2.sql.SQL(SEQUENCE_PRIVILEGES[sequences]), **names))
    finally:
        conn.close()
    return role


def load_sql_file(db, path):
    """Run one SQL file from the repository against ``db``."""
    text = (REPO / path).read_text()
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute(text)
    conn.close()


@pytest.fixture
def legacy_db(make_database):
    """A fresh database holding the empty legacy schema in ``public``."""
    db = make_database("legacy")
    load_sql_file(db, "sql/legacy/schema.sql")
    return db


def run_module_process(name, params, timeout=300):
    """Run one of the collection's modules in its own process the way Ansible does (an arguments file).

    Returns the module's JSON result, or ``{"raw": <stdout and stderr>}`` when it printed none.
    """
    args_file = REPO / "tests" / "output" / ("%s_%s.json" % (name, uuid.uuid4().hex[:8]))
    args_file.parent.mkdir(exist_ok=True)
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
    try:
        out = subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-m",
             "ansible_collections.carbot.migration.plugins.modules." + name, str(args_file)],
            cwd=str(REPO), env=dict(os.environ, PYTHONPATH=str(REPO / ".collections")),
            capture_output=True, text=True, timeout=timeout)
    finally:
        args_file.unlink()
    return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {"raw": out.stdout + out.stderr}
