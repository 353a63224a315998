"""Which database errors answer 503 "unavailable for a moment", and which stay a 500 (a bug)."""

import json
import sqlite3

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from django.http import HttpResponse
from django.test import RequestFactory
from psycopg import errors as pg
from psycopg_pool import PoolTimeout

from companionhub.dbunavailable import DatabaseUnavailableMiddleware, is_outage


def wrapped(django_class, cause: BaseException) -> Exception:
    """The error as Django raises it: its own class, the driver's error as the cause."""
    try:
        raise django_class(*cause.args) from cause
    except django_class as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        wrapped(OperationalError, psycopg.OperationalError("connection refused")),
        wrapped(OperationalError, psycopg.OperationalError("server closed the connection unexpectedly")),
        wrapped(OperationalError, PoolTimeout("couldn't get a connection after 5.00 sec")),
        wrapped(OperationalError, pg.AdminShutdown("terminating connection due to administrator command")),
        wrapped(OperationalError, pg.CannotConnectNow("the database system is starting up")),
        wrapped(OperationalError, pg.TooManyConnections("sorry, too many clients already")),
        wrapped(OperationalError, pg.DeadlockDetected("deadlock detected")),
        wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
        wrapped(InterfaceError, psycopg.InterfaceError("the connection is closed")),
    ],
    ids=lambda e: type(e.__cause__).__name__ + ": " + str(e)[:30],
)
def test_a_database_that_is_down_or_busy_is_an_outage(error):
    assert is_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(OperationalError, sqlite3.OperationalError("no such table: chat_message")),
        wrapped(OperationalError, sqlite3.OperationalError("no such column: x")),
        wrapped(ProgrammingError, pg.UndefinedTable('relation "chat_message" does not exist')),
        wrapped(IntegrityError, pg.UniqueViolation("duplicate key value")),
        wrapped(DatabaseError, pg.DataCorrupted("invalid page in block")),
        ValueError("not a database error"),
    ],
    ids=lambda e: type(e).__name__ + ": " + str(e)[:30],
)
def test_a_bug_or_a_missed_migration_is_not_an_outage(error):
    assert not is_outage(error)


def middleware_answer(error: Exception, *, accept: str = "text/html"):
    """What the middleware makes of ``error`` raised by a view (None: left to Django's 500)."""
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/companions/", HTTP_ACCEPT=accept)
    return middleware.process_exception(request, error)


def test_an_outage_answers_503_with_retry_after():
    response = middleware_answer(wrapped(OperationalError, psycopg.OperationalError("connection refused")))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"Nothing was lost" in response.content


def test_an_outage_answers_json_to_api_clients():
    response = middleware_answer(
        wrapped(OperationalError, PoolTimeout("no connection")), accept="application/json"
    )
    assert response.status_code == 503
    assert json.loads(response.content)["error"] == "database_unavailable"


def test_a_missing_table_is_left_to_the_500_handler():
    assert middleware_answer(wrapped(OperationalError, sqlite3.OperationalError("no such table: x"))) is None


def test_a_missing_table_while_loading_the_user_is_raised_not_hidden(db, monkeypatch):
    from django.contrib.auth.models import AnonymousUser

    broken = wrapped(OperationalError, sqlite3.OperationalError("no such table: accounts_user"))

    class BrokenUser(AnonymousUser):
        @property
        def pk(self):
            raise broken

    request = RequestFactory().get("/")
    request.user = BrokenUser()
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())
    with pytest.raises(OperationalError):
        middleware(request)
