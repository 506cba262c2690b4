"""A local stand-in for the CarBot admin API: real HTTP on a loopback socket, a real database behind it.

The cutover turns maintenance mode on and off through the admin API and proves, through the API's
health endpoints, that the application resolves and writes its tables in the new schema. The real
API cannot run here, so this stand-in answers the same requests the roles send, with the same
semantics that matter to them:

* ``/health/database`` opens a NEW connection as the application role on every call (so a changed
  ``ALTER DATABASE/ROLE ... SET search_path`` is seen, as by a freshly started app pod), reports the
  schema where the unqualified health table (``leads``) resolves, and writes one row through the
  application role inside a transaction that is always rolled back.
* ``/health/migrations`` reads ``<target schema>.migration_status``.
* maintenance state is persisted in a state file, so a restart of the stand-in keeps it, and every
  on/off change is recorded with its time (the write-freeze timeline).
* ``/_control/*`` lets tests inject faults and read the request log.

Endpoint contract (all bodies JSON; errors are ``{"error": "..."}``):

=======  ======================  =====  ==========================================================
method   path                    auth   response
=======  ======================  =====  ==========================================================
GET      /health                 no     200 ``{"ok": true, "service", "uptime_s"}`` (liveness, no DB)
GET      /health/database        no     200/503 ``{"ok", "search_path", "resolved_schema", "table",
                                        "can_write", "current_user", "database", "latency_ms",
                                        "error"}``; ``?expect_schema=carbot_v2`` makes ok=false when
                                        the table resolves elsewhere; ``?app_version=new`` checks as
                                        the new app version's role (``--db-dsn-new-file``; online
                                        cutover: new pods connect as their own role), 404 without it
GET      /health/migrations      yes    200/503 ``{"ok", "schema", "tables": [...], "summary":
                                        {state: n}, "reason", "error", "latency_ms"}``;
                                        ``?expect_tables=N`` makes ok=false with fewer rows
GET      /admin/maintenance      yes    200 ``{"enabled", "message", "since"}``
POST     /admin/maintenance      yes    ``{"enabled": bool, "message"?: str}`` -> 200 ``{"enabled",
                                        "message", "since", "changed"}``; 400 bad JSON / no bool
                                        ``enabled``; 415 not ``application/json``
GET      /_control/faults        yes    200 ``{"faults": [...]}``
POST     /_control/faults        yes    one fault or a list -> 200 ``{"faults": [...]}``; 400 invalid
DELETE   /_control/faults        yes    200 ``{"faults": []}``
GET      /_control/log           yes    200 ``{"requests": [...], "maintenance_changes": [...],
                                        "write_freeze_windows": [...]}``
DELETE   /_control/log           yes    200; clears the request log (not the maintenance timeline)
=======  ======================  =====  ==========================================================

``since`` is the ISO 8601 UTC time of the last on/off change (null if there never was one); it does
not move when a POST repeats the current state (``changed`` is then false).

Auth is ``Authorization: Bearer <token>``; without it or with a wrong token: 401 with a JSON error
and ``WWW-Authenticate: Bearer``. Decision: ``/health`` and ``/health/database`` are open, like the
probes of a real deployment (they reveal a schema name, nothing more); ``/health/migrations`` needs
the token because ``last_error`` can quote row values (personal data under GDPR).

Faults (``POST /_control/faults``), first matching rule wins, ``/_control/*`` is never faulted:
``{"endpoint": "/admin/maintenance", "method": "POST", "status": 503, "times": 2}`` answers the next
2 matching calls with 503 (``"body": {...}`` replaces the default error body, e.g. a 200 that lies);
``{"endpoint": "/health/database", "delay_ms": 5000}`` delays (then answers normally, or with
``status`` when given); ``{"endpoint": "*", "down": true}`` closes connections without answering.
Without ``times`` a rule stays until ``DELETE /_control/faults``.

The request log records method, path (never the query string), status, time, duration, the auth
outcome (``ok``/``missing``/``malformed``/``invalid``) and the fault applied; never a header value,
so the token is never recorded. ``/_control/*`` requests are not logged.

CLI (secrets from files or environment, never from the command line where ``ps`` shows them)::

    python -m tests.standins.admin_api --port 0 --token-file F --db-dsn-file F \\
        --state-file F --ready-file F [--status-dsn-file F] [--target-schema carbot_v2]

Environment fallbacks: ``CARBOT_ADMIN_API_TOKEN``, ``CARBOT_ADMIN_API_DB_DSN``,
``CARBOT_ADMIN_API_STATUS_DSN``. The ready file receives ``{"url", "port", "pid"}`` once the socket
listens and is removed on shutdown (SIGTERM/SIGINT).

Python API for pytest: ``with start_admin_api(token, dsn) as api: api.url``.
"""

import argparse
import hmac
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

SERVICE = "carbot-admin-api-standin"
ENV_TOKEN = "CARBOT_ADMIN_API_TOKEN"
ENV_DB_DSN = "CARBOT_ADMIN_API_DB_DSN"
ENV_STATUS_DSN = "CARBOT_ADMIN_API_STATUS_DSN"
MAX_BODY_BYTES = 64 * 1024
MAX_LOG_ENTRIES = 10000
MIGRATION_STATES = ("pending", "copying", "copied", "failed")

logger = logging.getLogger("carbot.admin_api_standin")


def _iso(ts):
    """An epoch time as ISO 8601 UTC with milliseconds, e.g. 2025-01-31T23:59:59.123Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_json_atomically(path, data):
    """Write ``data`` as JSON to ``path`` so that a reader never sees a half-written file (mode 0600)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class HttpError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class HealthWriteError(Exception):
    """The stand-in cannot build a health row for the table (not a database error)."""


# --------------------------------------------------------------------------------------------------
# State: maintenance mode, faults, request log
# --------------------------------------------------------------------------------------------------
class MaintenanceStore:
    """Maintenance state plus the timeline of on/off changes, persisted to ``path`` when given."""

    def __init__(self, path=None):
        self.path = path
        self._lock = threading.Lock()
        self._state = {"enabled": False, "message": "", "since": None}
        self._changes = []
        if path and os.path.exists(path):
            # A corrupt state file is an error, not a silent reset: a stand-in that forgets that
            # maintenance is on would hide exactly the bug the restart test looks for.
            with open(path) as handle:
                data = json.load(handle)
            self._state = {"enabled": bool(data["enabled"]), "message": str(data.get("message") or ""),
                           "since": data.get("since")}
            self._changes = list(data.get("changes") or [])

    def get(self):
        with self._lock:
            return dict(self._state)

    def set(self, enabled, message):
        """Set the state; returns ``(state, changed)``. ``since`` moves only when ``enabled`` flips."""
        with self._lock:
            changed = enabled != self._state["enabled"]
            now = time.time()
            if changed:
                self._state["since"] = _iso(now)
                self._changes.append({"enabled": enabled, "message": message, "time": _iso(now), "ts": now})
            self._state["enabled"], self._state["message"] = enabled, message
            if self.path:
                _write_json_atomically(self.path, dict(self._state, changes=self._changes))
            return dict(self._state), changed

    def changes(self):
        with self._lock:
            return [dict(c) for c in self._changes]


def write_freeze_windows(changes):
    """Pairs of on -> off changes: ``[{"start", "end", "seconds"}]`` (end None while still on)."""
    windows, start = [], None
    for change in changes:
        if change["enabled"] and start is None:
            start = change
        elif not change["enabled"] and start is not None:
            windows.append({"start": start["time"], "end": change["time"],
                            "seconds": round(change["ts"] - start["ts"], 3)})
            start = None
    if start is not None:
        windows.append({"start": start["time"], "end": None, "seconds": None})
    return windows


class FaultTable:
    """Injected failures, matched in insertion order against (method, path)."""

    KEYS = {"endpoint", "method", "status", "delay_ms", "down", "times", "body"}

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    @classmethod
    def validate(cls, spec):
        if not isinstance(spec, dict):
            raise HttpError(400, "a fault is a JSON object")
        unknown = set(spec) - cls.KEYS
        if unknown:
            raise HttpError(400, "unknown fault keys: %s" % ", ".join(sorted(unknown)))
        endpoint = spec.get("endpoint")
        if not isinstance(endpoint, str) or not (endpoint == "*" or endpoint.startswith("/")):
            raise HttpError(400, "'endpoint' must be '*' or a path starting with '/'")
        if endpoint.startswith("/_control"):
            raise HttpError(400, "the /_control endpoints cannot be faulted")
        method = spec.get("method")
        if method is not None and (not isinstance(method, str) or not method.isalpha()):
            raise HttpError(400, "'method' must be an HTTP method such as GET or POST")
        fault = {"endpoint": endpoint.rstrip("/") or "/", "method": method.upper() if method else None,
                 "status": None, "delay_ms": 0, "down": False, "times": None, "body": spec.get("body")}
        status = spec.get("status")
        if status is not None:
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
                raise HttpError(400, "'status' must be an integer HTTP status")
            fault["status"] = status
        delay = spec.get("delay_ms", 0)
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 600000:
            raise HttpError(400, "'delay_ms' must be an integer between 0 and 600000")
        fault["delay_ms"] = delay
        down = spec.get("down", False)
        if not isinstance(down, bool):
            raise HttpError(400, "'down' must be a boolean")
        fault["down"] = down
        times = spec.get("times")
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
            raise HttpError(400, "'times' must be a positive integer (omit it for 'until cleared')")
        fault["times"] = times
        if down and status is not None:
            raise HttpError(400, "a fault is either 'down' or answers with 'status', not both")
        if not down and status is None and not delay:
            raise HttpError(400, "a fault needs 'status', 'delay_ms' or 'down'")
        return fault

    def add(self, specs):
        faults = [self.validate(s) for s in (specs if isinstance(specs, list) else [specs])]
        with self._lock:
            self._faults.extend(faults)
            return [dict(f) for f in self._faults]

    def list(self):
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear(self):
        with self._lock:
            self._faults.clear()

    def take(self, method, path):
        """The first fault matching this request (consuming one of its ``times``), or None."""
        with self._lock:
            for fault in self._faults:
                if fault["endpoint"] not in ("*", path) or fault["method"] not in (None, method):
                    continue
                taken = dict(fault)
                if fault["times"] is not None:
                    fault["times"] -= 1
                    if fault["times"] == 0:
                        self._faults.remove(fault)
                return taken
        return None


class RequestLog:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries = []

    def add(self, entry):
        with self._lock:
            self._entries.append(entry)
            del self._entries[:-MAX_LOG_ENTRIES]

    def list(self):
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self):
        with self._lock:
            self._entries.clear()


# --------------------------------------------------------------------------------------------------
# The database checks
# --------------------------------------------------------------------------------------------------
RESOLVE_SQL = """
SELECT n.nspname, c.oid
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(%s))
"""

# Columns that an INSERT must fill because nothing else would: NOT NULL, no default, no identity,
# not generated. For a single-column foreign key, the referenced table and column.
REQUIRED_COLUMNS_SQL = """
SELECT a.attname, bt.typname, bt.typtype, bt.typcategory, bt.oid,
       fk.ref_schema, fk.ref_table, fk.ref_column
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  LEFT JOIN LATERAL (
        SELECT rn.nspname AS ref_schema, rc.relname AS ref_table, ra.attname AS ref_column
          FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
          JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
          JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1]
         WHERE k.conrelid = a.attrelid AND k.contype = 'f' AND k.conkey = ARRAY[a.attnum]
         LIMIT 1) fk ON true
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
 ORDER BY a.attnum
"""


def _synthetic_value(cur, name, typname, typtype, typcategory, typoid, fk):
    """A value for one required column. Strings go as untyped literals, so PostgreSQL casts them."""
    if fk[0] is not None:
        ref_schema, ref_table, ref_column = fk
        cur.execute(sql.SQL("SELECT {} FROM {}.{} LIMIT 1").format(
            sql.Identifier(ref_column), sql.Identifier(ref_schema), sql.Identifier(ref_table)))
        row = cur.fetchone()
        if row is None:
            raise HealthWriteError("column %s references %s.%s, which has no rows" % (name, ref_schema, ref_table))
        return row[0]
    if typname == "uuid":
        return str(uuid.uuid4())  # the table's own key: a random uuid never collides in practice
    if typtype == "e":
        cur.execute("SELECT enumlabel FROM pg_catalog.pg_enum WHERE enumtypid = %s ORDER BY enumsortorder LIMIT 1",
                    (typoid,))
        return cur.fetchone()[0]
    if typname in ("json", "jsonb"):
        return "{}"
    by_category = {"S": "health-check-%s" % uuid.uuid4().hex[:8], "N": 0, "B": False, "D": "now",
                   "A": "{}", "I": "127.0.0.1"}
    if typcategory in by_category:
        return by_category[typcategory]
    raise HealthWriteError("no health value for column %s of type %s" % (name, typname))


def health_write(cur, table_oid, schema, table):
    """Insert one row into ``schema.table`` (the caller rolls back). Keys come from the table's defaults
    and sequences, so a sequence that lags behind copied ids fails here as it would for the app."""
    cur.execute(REQUIRED_COLUMNS_SQL, (table_oid,))
    required = cur.fetchall()
    names, values = [], []
    for name, typname, typtype, typcategory, typoid, *fk in required:
        names.append(name)
        values.append(_synthetic_value(cur, name, typname, typtype, typcategory, typoid, fk))
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    if names:
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            target, sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names)))
    else:
        statement = sql.SQL("INSERT INTO {} DEFAULT VALUES").format(target)
    cur.execute(statement, values)
    if cur.rowcount != 1:
        raise HealthWriteError("the health insert wrote %s rows" % cur.rowcount)


class AdminApi:
    """The application behind the HTTP handler: configuration, state and the database checks."""

    def __init__(self, token, db_dsn, status_dsn=None, state_file=None, target_schema="carbot_v2",
                 health_table="leads", connect_timeout=5, statement_timeout_ms=5000, new_db_dsn=None):
        if not token:
            raise ValueError("the admin API token must not be empty")
        if not db_dsn:
            raise ValueError("the application's database DSN must not be empty")
        self.token = token
        self._db_dsn = db_dsn
        self._status_dsn = status_dsn or db_dsn
        # The new app version's role (online cutover: old and new pods connect as different roles).
        self._new_db_dsn = new_db_dsn
        self.target_schema = target_schema
        self.health_table = health_table
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.maintenance = MaintenanceStore(state_file)
        self.faults = FaultTable()
        self.log = RequestLog()
        self.started = time.time()
        self.stopping = threading.Event()
        self._secrets = [token] + [parse_dsn(d).get("password") for d in (db_dsn, self._status_dsn, new_db_dsn) if d]

    def scrub(self, text):
        """An error text with every known secret masked (libpq can echo parts of a bad DSN)."""
        text = (text or "").strip()
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _error_text(self, exc):
        message = getattr(exc, "pgerror", None) or str(exc)
        return self.scrub(message.splitlines()[0] if message.strip() else type(exc).__name__)

    def _connect(self, dsn, readonly=False):
        # A new connection per check: session defaults (ALTER DATABASE/ROLE ... SET search_path) apply
        # only to new sessions, which is what a restarted application sees after the cutover.
        conn = psycopg2.connect(dsn, connect_timeout=self.connect_timeout, application_name=SERVICE)
        conn.set_session(readonly=readonly)
        with conn.cursor() as cur:
            # Fail fast instead of queueing behind the cutover's ACCESS EXCLUSIVE locks.
            cur.execute("SELECT pg_catalog.set_config('statement_timeout', %s, true),"
                        " pg_catalog.set_config('lock_timeout', %s, true)",
                        (str(self.statement_timeout_ms), str(min(self.statement_timeout_ms, 2000))))
        return conn

    def check_database(self, expect_schema=None, app_version=None):
        """The health as the app's role sees it; ``app_version='new'``: as the new version's role."""
        if app_version not in (None, "", "old", "new"):
            raise HttpError(400, "app_version must be 'old' or 'new'")
        dsn = self._db_dsn
        if app_version == "new":
            if not self._new_db_dsn:
                raise HttpError(404, "no new app version configured (--db-dsn-new-file)")
            dsn = self._new_db_dsn
        started = time.monotonic()
        result = {"ok": False, "search_path": None, "resolved_schema": None, "table": self.health_table,
                  "can_write": False, "current_user": None, "database": None, "latency_ms": None, "error": None}
        conn = None
        try:
            conn = self._connect(dsn)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.current_setting('search_path'), current_user,"
                            " pg_catalog.current_database()")
                result["search_path"], result["current_user"], result["database"] = cur.fetchone()
                cur.execute(RESOLVE_SQL, (self.health_table,))
                row = cur.fetchone()
                if row is None:
                    result["error"] = "table %s does not resolve on search_path %s for role %s" % (
                        self.health_table, result["search_path"], result["current_user"])
                else:
                    result["resolved_schema"] = row[0]
                    try:
                        health_write(cur, row[1], row[0], self.health_table)
                        result["can_write"] = True
                    except (psycopg2.Error, HealthWriteError) as exc:
                        result["error"] = "health write to %s.%s failed: %s" % (
                            row[0], self.health_table, self._error_text(exc))
            conn.rollback()  # the health row never becomes visible
        except psycopg2.Error as exc:
            result["error"] = "database unreachable or query failed: %s" % self._error_text(exc)
        finally:
            if conn is not None:
                conn.close()
        if result["can_write"] and expect_schema and result["resolved_schema"] != expect_schema:
            result["error"] = "%s resolves in schema %s, expected %s" % (
                self.health_table, result["resolved_schema"], expect_schema)
        result["ok"] = result["can_write"] and result["error"] is None
        result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        return result

    def migration_status(self, expect_tables=None):
        started = time.monotonic()
        result = {"ok": False, "schema": self.target_schema, "tables": [], "summary": {}, "reason": None,
                  "error": None, "latency_ms": None}
        conn = None
        try:
            conn = self._connect(self._status_dsn, readonly=True)
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_catalog.pg_class c"
                            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                            " WHERE n.nspname = %s AND c.relname = 'migration_status'", (self.target_schema,))
                if cur.fetchone() is None:
                    result["reason"] = "table %s.migration_status does not exist" % self.target_schema
                else:
                    # to_jsonb keeps this reader independent of the exact column list of the table.
                    cur.execute(sql.SQL("SELECT pg_catalog.to_jsonb(s) FROM {}.{} AS s").format(
                        sql.Identifier(self.target_schema), sql.Identifier("migration_status")))
                    rows = [r[0] for r in cur.fetchall()]
                    result["tables"] = sorted(({k: v for k, v in r.items() if k != "last_key"} for r in rows),
                                              key=lambda r: str(r.get("target_table")))
            conn.rollback()
        except psycopg2.Error as exc:
            result["error"] = self._error_text(exc)
            result["reason"] = "cannot read %s.migration_status: %s" % (self.target_schema, result["error"])
        finally:
            if conn is not None:
                conn.close()
        if result["reason"] is None:
            result["reason"] = self._migration_verdict(result, expect_tables)
        result["ok"] = result["reason"] is None
        result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        return result

    @staticmethod
    def _migration_verdict(result, expect_tables):
        """None when every table is copied and none failed, else the reason (names the tables)."""
        tables = result["tables"]
        summary = {state: 0 for state in MIGRATION_STATES}
        for table in tables:
            summary[str(table.get("state"))] = summary.get(str(table.get("state")), 0) + 1
        result["summary"] = summary
        if not tables:
            return "%s.migration_status has no rows: no table has been registered for the copy" % result["schema"]
        parts = []
        failed = [t for t in tables if t.get("state") == "failed"]
        if failed:
            parts.append("failed: " + ", ".join(
                "%s (%s)" % (t.get("target_table"), t.get("last_error") or "no error recorded") for t in failed))
        waiting = [t for t in tables if t.get("state") not in ("copied", "failed")]
        if waiting:
            parts.append("not copied: " + ", ".join(
                "%s (%s, %s rows)" % (t.get("target_table"), t.get("state"), t.get("rows_copied")) for t in waiting))
        if expect_tables is not None and len(tables) < expect_tables:
            parts.append("%d tables registered, %d expected" % (len(tables), expect_tables))
        return "; ".join(parts) or None


# --------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------
ROUTES = {
    "/health": ("GET",),
    "/health/database": ("GET",),
    "/health/migrations": ("GET",),
    "/admin/maintenance": ("GET", "POST"),
    "/_control/faults": ("GET", "POST", "DELETE"),
    "/_control/log": ("GET", "DELETE"),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CarBotAdminApiStandIn/1.0"
    sys_version = ""

    def log_message(self, format, *args):
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def api(self):
        return self.server.api

    def _read_body(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(411, "send a Content-Length, not a chunked body")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise HttpError(400, "invalid Content-Length")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise HttpError(413, "request body larger than %d bytes" % MAX_BODY_BYTES)
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self, raw):
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpError(415, "Content-Type must be application/json")
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(400, "invalid JSON: %s" % exc)

    def _auth_outcome(self):
        """How the request authenticated: ok, missing, malformed or invalid (logged for every request,
        faulted ones included, so tests can see whether a role sent its token; the token never is)."""
        header = self.headers.get("Authorization")
        if not header:
            return "missing"
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return "malformed"
        if not hmac.compare_digest(value.strip().encode(), self.api.token.encode()):
            return "invalid"
        return "ok"

    @staticmethod
    def _authorize(entry):
        messages = {"missing": "missing bearer token", "malformed": "Authorization must be 'Bearer <token>'",
                    "invalid": "invalid token"}
        if entry["auth"] != "ok":
            raise HttpError(401, messages[entry["auth"]], {"WWW-Authenticate": 'Bearer realm="carbot-admin"'})

    def _send(self, status, body, headers=None):
        payload = json.dumps(body, default=str).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self, method):
        started = time.monotonic()
        now = time.time()
        path = urlsplit(self.path).path.rstrip("/") or "/"
        control = path == "/_control" or path.startswith("/_control/")
        entry = {"method": method, "path": path, "status": None, "time": _iso(now), "ts": now,
                 "duration_ms": None, "auth": self._auth_outcome(), "fault": None}
        try:
            status, body, headers = self._handle(method, path, control, entry)
        except HttpError as exc:
            status, body, headers = exc.status, {"error": exc.message}, exc.headers
        except Exception as exc:  # a bug in the stand-in: answer 500 and say so, never hang the client
            logger.exception("unhandled error for %s %s", method, path)
            status, body, headers = 500, {"error": "stand-in error: %s" % self.api.scrub(str(exc))}, {}
        entry["status"] = status
        entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        # logged before the answer goes out: a client that reads the log right after its answer finds the request
        # in it (logged after the send, the last request was missing now and then: a race CI caught)
        if not control:
            self.api.log.add(entry)
        if status is not None:
            try:
                self._send(status, body, headers)
            except OSError:  # the client went away (e.g. it timed out during a delay fault)
                self.close_connection = True
        logger.info("%s %s %s %sms%s", method, path, status if status is not None else "(closed)",
                    entry["duration_ms"], " fault=%s" % entry["fault"] if entry["fault"] else "")

    def _handle(self, method, path, control, entry):
        """Returns (status, body, headers); status None means: close without answering."""
        raw = self._read_body()
        if not control:
            fault = self.api.faults.take(method, path)
            if fault is not None:
                if fault["delay_ms"]:
                    entry["fault"] = "delay"
                    self.api.stopping.wait(fault["delay_ms"] / 1000.0)
                if fault["down"]:
                    entry["fault"] = "down"
                    self.close_connection = True
                    return None, None, None
                if fault["status"] is not None:
                    entry["fault"] = "status"
                    body = fault["body"] if fault["body"] is not None else {
                        "error": "injected fault", "status": fault["status"]}
                    return fault["status"], body, {}
        allowed = ROUTES.get(path)
        if allowed is None:
            raise HttpError(404, "no such endpoint: %s" % path)
        if method not in allowed:
            raise HttpError(405, "%s does not allow %s" % (path, method), {"Allow": ", ".join(allowed)})
        if path not in ("/health", "/health/database"):
            self._authorize(entry)
        query = parse_qs(urlsplit(self.path).query)
        handler = getattr(self, "_route_" + path.strip("/").replace("/", "_"))
        return handler(method, raw, query, entry)

    # -- routes ---------------------------------------------------------------------------------
    def _route_health(self, method, raw, query, entry):
        return 200, {"ok": True, "service": SERVICE, "uptime_s": round(time.time() - self.api.started, 1)}, {}

    def _route_health_database(self, method, raw, query, entry):
        result = self.api.check_database(expect_schema=(query.get("expect_schema") or [None])[0],
                                         app_version=(query.get("app_version") or [None])[0])
        return (200 if result["ok"] else 503), result, {}

    def _route_health_migrations(self, method, raw, query, entry):
        expect = (query.get("expect_tables") or [None])[0]
        try:
            expect = int(expect) if expect is not None else None
        except ValueError:
            raise HttpError(400, "expect_tables must be an integer")
        result = self.api.migration_status(expect_tables=expect)
        return (200 if result["ok"] else 503), result, {}

    def _route_admin_maintenance(self, method, raw, query, entry):
        if method == "GET":
            return 200, self.api.maintenance.get(), {}
        body = self._json_body(raw)
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object such as {\"enabled\": true}")
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise HttpError(400, "'enabled' is required and must be a boolean")
        message = body.get("message", "")
        if message is None:
            message = ""
        if not isinstance(message, str):
            raise HttpError(400, "'message' must be a string")
        entry["enabled"] = enabled
        state, changed = self.api.maintenance.set(enabled, message)
        return 200, dict(state, changed=changed), {}

    def _route__control_faults(self, method, raw, query, entry):
        if method == "POST":
            return 200, {"faults": self.api.faults.add(self._json_body(raw))}, {}
        if method == "DELETE":
            self.api.faults.clear()
        return 200, {"faults": self.api.faults.list()}, {}

    def _route__control_log(self, method, raw, query, entry):
        if method == "DELETE":
            self.api.log.clear()
            return 200, {"requests": []}, {}
        changes = self.api.maintenance.changes()
        return 200, {"requests": self.api.log.list(), "maintenance_changes": changes,
                     "write_freeze_windows": write_freeze_windows(changes)}, {}


class AdminApiServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a request sleeping in a delay fault must not hold up shutdown

    def __init__(self, address, api):
        self.api = api
        super().__init__(address, _Handler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return "http://%s:%d" % (host, port)


class RunningAdminApi:
    """A stand-in serving in a background thread; ``url``, ``api`` (the state), ``stop()``."""

    def __init__(self, server):
        self.server, self.api, self.url = server, server.api, server.url
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="admin-api-standin", daemon=True)
        self._thread.start()

    def stop(self):
        self.api.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_admin_api(token, db_dsn, host="127.0.0.1", port=0, **options):
    """Start the stand-in in a thread of this process (for pytest); ``options`` go to ``AdminApi``."""
    return RunningAdminApi(AdminApiServer((host, port), AdminApi(token, db_dsn, **options)))


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def _secret(path, env, what):
    if path:
        with open(path) as handle:
            value = handle.read().strip()
    else:
        value = os.environ.get(env, "").strip()
    if not value and what:
        raise SystemExit("admin API stand-in: no %s (give a file, or set %s)" % (what, env))
    return value or None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tests.standins.admin_api",
        description="Local stand-in for the CarBot admin API. Secrets come from files or environment "
                    "variables, never from arguments (ps would show them).")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback only by default)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (see --ready-file)")
    parser.add_argument("--token-file", help="file holding the bearer token (else $%s)" % ENV_TOKEN)
    parser.add_argument("--db-dsn-file", help="libpq DSN of the application role (else $%s)" % ENV_DB_DSN)
    parser.add_argument("--db-dsn-new-file",
                        help="DSN of the new app version's role (online cutover; /health/database?app_version=new)")
    parser.add_argument("--status-dsn-file",
                        help="DSN for reading migration_status (else $%s, else the app DSN)" % ENV_STATUS_DSN)
    parser.add_argument("--state-file", help="JSON file persisting maintenance state across restarts")
    parser.add_argument("--ready-file", help="written with {url, port, pid} once listening; removed on exit")
    parser.add_argument("--target-schema", default="carbot_v2")
    parser.add_argument("--health-table", default="leads")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s admin-api-standin %(message)s")

    api = AdminApi(_secret(args.token_file, ENV_TOKEN, "token"),
                   _secret(args.db_dsn_file, ENV_DB_DSN, "database DSN"),
                   status_dsn=_secret(args.status_dsn_file, ENV_STATUS_DSN, None),
                   state_file=args.state_file, target_schema=args.target_schema, health_table=args.health_table,
                   new_db_dsn=_secret(args.db_dsn_new_file, "CARBOT_ADMIN_API_DB_DSN_NEW", None))
    if args.ready_file and os.path.exists(args.ready_file):
        os.unlink(args.ready_file)
    server = AdminApiServer((args.host, args.port), api)

    def stop(signum, frame):
        api.stopping.set()
        # shutdown() called from the thread running serve_forever() would deadlock
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file:
        _write_json_atomically(args.ready_file,
                               {"url": server.url, "port": server.server_address[1], "pid": os.getpid()})
    logger.warning("listening on %s", server.url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if args.ready_file and os.path.exists(args.ready_file):
            os.unlink(args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
