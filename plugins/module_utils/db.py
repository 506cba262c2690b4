# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one connection path of every carbot.migration database module.

Modelled on community.postgresql's module_utils/postgres.py: a shared argument
spec, one ``connect()``, and a retry helper for statements that take locks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import random
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import psycopg2
    import psycopg2.errors
    import psycopg2.extras
    # sql is re-exported for the modules (from ...db import sql)
    from psycopg2 import sql  # noqa: F401 pylint: disable=unused-import
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError:  # reported by each module through require_psycopg2()
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()
    psycopg2 = None
    sql = None

APPLICATION_NAME = "carbot.migration"


def postgres_argument_spec():
    """Connection options shared by all modules (see doc_fragments/postgres.py)."""
    return dict(
        login_host=dict(type="str", default="127.0.0.1"),
        login_port=dict(type="int", default=5432),
        login_db=dict(type="str", required=True),
        login_user=dict(type="str", default="postgres"),
        login_password=dict(type="str", default="", no_log=True),
        ssl_mode=dict(type="str", default="prefer",
                      choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
        connect_timeout=dict(type="int", default=10),
        lock_timeout_ms=dict(type="int", default=3000),
        statement_timeout_ms=dict(type="int", default=0),
    )


def conn_params(params):
    """libpq keyword arguments from module parameters (a dict)."""
    out = {
        "host": params["login_host"],
        "port": params["login_port"],
        "dbname": params["login_db"],
        "user": params["login_user"],
        "sslmode": params.get("ssl_mode") or "prefer",
        "connect_timeout": params.get("connect_timeout") or 10,
        "application_name": params.get("application_name") or APPLICATION_NAME,
    }
    if params.get("login_password"):
        out["password"] = params["login_password"]
    return out


def require_psycopg2(module, *other_errors):
    """``fail_json`` with ``missing_required_lib('psycopg2')`` when psycopg2 (or a module_utils that needs it)
    could not be imported; the traceback goes to ``exception`` (shown with -vvv)."""
    if HAS_PSYCOPG2 and not any(other_errors):
        return
    module.fail_json(msg=missing_required_lib("psycopg2", url="https://pypi.org/project/psycopg2/"),
                     exception=PSYCOPG2_IMPORT_ERROR or next(str(e) for e in other_errors if e))


def connect(params, autocommit=False, application_name=None):
    """Open a connection with lock_timeout/statement_timeout set for the session."""
    if not HAS_PSYCOPG2:
        raise RuntimeError("psycopg2 is required: %s" % PSYCOPG2_IMPORT_ERROR)
    kwargs = conn_params(params)
    if application_name:
        kwargs["application_name"] = application_name
    lock_ms = int(params.get("lock_timeout_ms") or 0)
    stmt_ms = int(params.get("statement_timeout_ms") or 0)
    kwargs["options"] = "-c lock_timeout=%d -c statement_timeout=%d" % (lock_ms, stmt_ms)
    conn = psycopg2.connect(**kwargs)
    conn.autocommit = autocommit
    return conn


@contextlib.contextmanager
def connection(params, autocommit=False, application_name=None):
    """``connect()`` for the block, closed after it. Its errors are psycopg2's, so that ``with_retries``
    can retry a dropped connection; a module reports them through common.connection/common.run."""
    conn = connect(params, autocommit=autocommit, application_name=application_name)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(conn):
    """One transaction on ``conn``: commit when the block ends, roll back when it raises (anything, a
    ``fail_json`` too), and re-raise. A connection that cannot even roll back (it is gone) is closed, so
    that a retry (``with_retries``) reconnects; the error that broke it is the one raised."""
    try:
        yield conn
    except BaseException:
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - the connection is gone: the caller's error matters, not this one
            conn.close()
        raise
    conn.commit()


# Connection errors that no retry can cure: the credentials, the role, the database or the host
# name are wrong, or pg_hba refuses the client. libpq raises them all as OperationalError without
# an SQLSTATE, so they are told apart by libpq's (untranslated, lc_messages=C on the client) text.
PERMANENT_CONNECT_ERRORS = (
    ("password authentication failed", "check carbot_db_user and carbot_db_password (the vault)"),
    ("authentication failed", "check carbot_db_user and carbot_db_password (the vault)"),
    ("no password supplied", "set carbot_db_password (in the vault for staging/production)"),
    ("could not translate host name", "check carbot_db_host: the name does not resolve"),
    ("name or service not known", "check carbot_db_host: the name does not resolve"),
    ("temporary failure in name resolution", "check carbot_db_host and the DNS of this machine"),
    ("nodename nor servname", "check carbot_db_host: the name does not resolve"),
    ("no pg_hba.conf entry", "the server's pg_hba.conf refuses this client, user or database"),
    ("does not exist", "check carbot_db_name and carbot_db_user"),
    ("invalid sslmode", "check carbot_db_sslmode"),
    ("server does not support ssl", "set carbot_db_sslmode to disable or prefer, or enable SSL on the server"),
    ("certificate verify failed", "check the server certificate and carbot_db_sslmode"),
)


def permanent_error_hint(exc):
    """The fix for a connection error that retrying cannot cure, or None when it may be transient."""
    if not HAS_PSYCOPG2 or not isinstance(exc, psycopg2.OperationalError) or getattr(exc, "pgcode", None):
        return None
    text = str(exc).lower()
    for needle, hint in PERMANENT_CONNECT_ERRORS:
        if needle in text:
            return hint
    return None


def is_retryable(exc):
    """Lock timeouts, deadlocks, serialization failures and dropped connections.

    Not authentication, name-resolution, pg_hba or missing-database errors: these are the same on
    every attempt (see ``permanent_error_hint``).
    """
    if not HAS_PSYCOPG2:
        return False
    retryable = (
        psycopg2.errors.LockNotAvailable,
        psycopg2.errors.DeadlockDetected,
        psycopg2.errors.SerializationFailure,
        psycopg2.errors.QueryCanceled,
    )
    if isinstance(exc, retryable):
        return True
    if permanent_error_hint(exc):
        return False
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


def describe_error(exc):
    """One line for the operator: the cause first, then the fix when it is known."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    hint = permanent_error_hint(exc)
    return "%s (fix: %s)" % (text, hint) if hint else text


def backoff_delays(attempts, base=0.2, cap=10.0, rng=None):
    """Jittered exponential backoff: the delays before attempts 2..N ("full jitter")."""
    rng = rng or random.Random()
    for attempt in range(1, attempts):
        yield rng.uniform(0, min(cap, base * (2 ** attempt)))


def with_retries(func, attempts=10, base=0.2, cap=10.0, on_retry=None, sleep=time.sleep, also=()):
    """Call ``func()`` until it succeeds, retrying only retryable database errors (and ``also``).

    Returns ``(result, attempts_used)``. ``on_retry(attempt, exc, delay)`` is
    called before each sleep. The last error is raised when attempts run out.
    """
    delays = backoff_delays(attempts, base, cap)
    attempt = 1
    while True:
        try:
            return func(), attempt
        except Exception as exc:  # noqa: BLE001 - filtered below
            if not (is_retryable(exc) or isinstance(exc, tuple(also))) or attempt >= attempts:
                raise
            delay = next(delays)
            if on_retry:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1
