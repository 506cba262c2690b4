# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one connection path of every carbot.migration database module.

Modelled on community.postgresql's module_utils/postgres.py: a shared argument
spec, one ``connect()``, and a retry helper for statements that take locks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import time

try:
    import psycopg2
    import psycopg2.errors
    import psycopg2.extras
    from psycopg2 import sql  # noqa: F401  (re-exported for modules)
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

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


def connect_or_fail(module, **kwargs):
    """``connect(module.params)``, or ``module.fail_json`` with which database and role could not connect."""
    try:
        return connect(module.params, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any connection error is reported to the operator
        module.fail_json(msg="cannot connect to %s as %s: %s" % (
            module.params["login_db"], module.params["login_user"], str(exc).strip()))


def is_retryable(exc):
    """Lock timeouts, deadlocks, serialization failures and dropped connections."""
    if not HAS_PSYCOPG2:
        return False
    retryable = (
        psycopg2.errors.LockNotAvailable,
        psycopg2.errors.DeadlockDetected,
        psycopg2.errors.SerializationFailure,
        psycopg2.errors.QueryCanceled,
    )
    return isinstance(exc, retryable) or isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


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
