"""Which database errors are retried (issue 15): not authentication, name resolution, pg_hba or a missing database."""

import psycopg2
import pytest
from ansible_collections.carbot.migration.plugins.module_utils import db

PERMANENT = [
    'connection to server at "10.0.0.5", port 5432 failed: FATAL:  password authentication failed for user "carbot"',
    'could not translate host name "db.example" to address: Name or service not known',
    'could not translate host name "db" to address: Temporary failure in name resolution',
    'connection to server at "10.0.0.5", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.9"',
    'connection to server at "10.0.0.5", port 5432 failed: FATAL:  database "carbott" does not exist',
    'connection to server at "10.0.0.5", port 5432 failed: fe_sendauth: no password supplied',
]
TRANSIENT = [
    'connection to server at "10.0.0.5", port 5432 failed: Connection refused',
    "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
    'connection to server at "10.0.0.5", port 5432 failed: FATAL:  the database system is starting up',
]


@pytest.mark.parametrize("text", PERMANENT)
def test_permanent_connection_errors_are_not_retried_and_say_the_fix(text):
    exc = psycopg2.OperationalError(text)
    assert not db.is_retryable(exc)
    assert "(fix: " in db.describe_error(exc)


@pytest.mark.parametrize("text", TRANSIENT)
def test_transient_connection_errors_are_retried(text):
    assert db.is_retryable(psycopg2.OperationalError(text))


def test_a_real_name_resolution_failure_is_tried_once():
    calls = []

    def attempt():
        calls.append(1)
        return psycopg2.connect(host="no-such-host.invalid", dbname="x", user="x", connect_timeout=3)

    with pytest.raises(psycopg2.OperationalError):
        db.with_retries(attempt, attempts=9, sleep=lambda _s: None)
    assert len(calls) == 1
