"""A database outage answers 503 with Retry-After, not a traceback or a hang.

While PostgreSQL restarts, the pool waits ``DATABASE_POOL_TIMEOUT`` for a
connection and then raises ``PoolTimeout``; a connection the restart broke
raises ``OperationalError`` / ``InterfaceError``. Django wraps all of them
as ``django.db.OperationalError`` / ``InterfaceError``. This middleware turns
them into a clear 503 (JSON for API clients), and the pool's ``check``
callback makes the next request after the outage work on a fresh connection,
with no process restart.

The page is rendered without the request: context processors would read the
session and the user, which needs the very database that is down.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext, gettext_noop

logger = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5
# Marked here, translated per request (the answer is made in the visitor's language).
MESSAGE = gettext_noop(
    "The database is unavailable for a moment. Nothing was lost; try again in a few seconds."
)


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    if "application/json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse(
            {
                "error": "database_unavailable",
                "message": gettext(MESSAGE),
                "retry_after": RETRY_AFTER_SECONDS,
            },
            status=503,
        )
    else:
        response = HttpResponse(render_to_string("503.html", {"message": gettext(MESSAGE)}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


# SQLSTATE classes of a database that is down, restarting or overloaded, where a retry in
# a few seconds will work: connection exception, insufficient resources, operator
# intervention (shutdown, restart, "cannot connect now"), and transaction rollback
# (serialization failure, deadlock).
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "40"})
# SQLite's words for a file that is busy or unreachable (not "no such table", which is a bug).
SQLITE_OUTAGE_WORDS = ("database is locked", "unable to open database file", "disk i/o error")


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means "unavailable for a moment" rather than a bug.

    Django re-raises the driver's error as its own class with the original as
    ``__cause__``. A psycopg error without a SQLSTATE never reached the server
    (refused, reset, closed, a pool timeout); one with a SQLSTATE is judged by
    its class. A missing table, a bad column or a broken constraint is a fault
    in the code or a missed migration: it stays a 500 with its traceback.
    """
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc
    sqlstate = getattr(cause, "sqlstate", "absent")
    if sqlstate != "absent":  # psycopg
        return sqlstate is None or sqlstate[:2] in OUTAGE_SQLSTATE_CLASSES
    return any(words in str(cause).lower() for words in SQLITE_OUTAGE_WORDS)


class DatabaseUnavailableMiddleware:
    """Map a lost or overloaded database to a 503; other errors (bugs) are left alone.

    Sits right after ``AuthenticationMiddleware``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Later middleware (request logging, rate limits) read ``request.user``
        # in their own ``__call__``, where ``process_exception`` never sees an
        # error. Loading the session and user here, first, lets an outage
        # answer 503 before any of them touches the database.
        try:
            _ = request.user.pk
        except (OperationalError, InterfaceError) as exc:
            response = self.process_exception(request, exc)
            if response is None:  # not an outage
                raise
            return response
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_outage(exception):
            logger.warning("database_unavailable", path=request.path, error=str(exception)[:200])
            return database_unavailable_response(request)
        return None
