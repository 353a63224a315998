"""Shared fixtures: users, service checks."""

from __future__ import annotations

import contextlib
import itertools
import random
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from companionhub.celery import app
from companionhub.embedded_worker import embedded_queues
from tests.fakes.services import ServiceUnavailable, private_redis

pytest_plugins = ["tests.fakes.fixtures"]

# Importing the ASGI app must not start the in-process Celery worker: tests
# that need a worker use the ``chat_worker`` fixture below.
settings.EMBEDDED_WORKER = False
# The in-process test worker must never end the test run by exiting; the watchdog is
# tested in a worker process of its own (tests/companionhub/test_worker_watchdog.py).
settings.WORKER_WATCHDOG_SECONDS = 0

PASSWORD = "correct-horse-battery-staple"
_counter = itertools.count(1)


def require_service(name: str, reason: str) -> None:
    """Skip when a service is missing, or fail when REQUIRE_SERVICES is set (CI)."""
    message = f"{name} is not available: {reason}"
    if settings.REQUIRE_SERVICES:
        pytest.fail(message + " (REQUIRE_SERVICES=1 turns this into a failure)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _rate_limits_off(settings):
    """Counters live in the shared cache and outlast a test; tests that check limits
    turn them on with the ``rate_limits`` fixture (tests/ratelimits)."""
    settings.RATELIMIT_ENABLE = False


@pytest.fixture(autouse=True)
def _memory_work_off(settings):
    """The memory work after each reply makes LLM calls of its own, charged to the user: tests
    that count requests or tokens would count them too. Tests of it turn it on
    (the ``memory_work`` fixture, tests/chat/conftest.py)."""
    settings.MEMORY_SUMMARY_ENABLED = False
    settings.MEMORY_EXTRACTION_ENABLED = False


@pytest.fixture(autouse=True)
def _fresh_page_cache():
    """Cached pages are keyed by user id, and ids are reused from test to test."""
    from companionhub import pagecache

    with contextlib.suppress(Exception):  # a test about a broken cache sets one up itself
        pagecache.invalidate_all()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, dropped cleanly at the end.

    Threads that served the session (the Celery worker's pool, the executor
    behind ``database_sync_to_async``) may still hold connections when the
    run ends; PostgreSQL refuses to drop a database in use, which would leave
    it behind for the next run. End those sessions first.
    """
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor != "postgresql":
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(scope="session")
def chat_worker(django_db_setup, django_db_blocker):
    """One worker thread for the session, serving every queue a task is routed to."""
    # Asking the router for the queues makes Celery check the models, and so does the worker
    # as it starts: both need the database.
    with django_db_blocker.unblock():
        queues = embedded_queues()
    with (
        django_db_blocker.unblock(),
        start_worker(
            app,
            pool="threads",
            concurrency=4,
            queues=queues,
            perform_ping_check=False,
            shutdown_timeout=30,
            loglevel="WARNING",
        ) as worker,
    ):
        yield worker


@pytest.fixture(scope="session")
def _own_redis() -> Iterator[str]:
    """A Redis of this run's own, on a free port, gone when the run ends."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(private_redis())
        except ServiceUnavailable as exc:
            require_service("Redis", f"none is named (TEST_REDIS_URL, REDIS_URL) and {exc}")
        yield server.url


@pytest.fixture
def redis_url(request) -> str:
    """The Redis named for the tests (``TEST_REDIS_URL``, or ``REDIS_URL`` as CI sets it), else one
    the tests start themselves: never whatever happens to answer on the default port, which may be
    a developer's with data of its own. Tests keep to key prefixes of their own all the same."""
    if not settings.REDIS_URL:
        return request.getfixturevalue("_own_redis")
    url = settings.REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{url}: {exc}")
    return url


@pytest.fixture
def make_user(db):
    from accounts.models import User

    def make(**fields) -> User:
        n = next(_counter)
        fields.setdefault("username", f"user{n}")
        fields.setdefault("email", f"user{n}@example.com")
        password = fields.pop("password", PASSWORD)
        return User.objects.create_user(password=password, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user(username="alice", email="Alice@Example.com", display_name="Alice")


@pytest.fixture
def other_user(make_user):
    return make_user(username="mallory", email="mallory@example.com")


@pytest.fixture
def staff_user(make_user):
    return make_user(username="moderator", email="mod@example.com", is_staff=True)


SMALL = {
    "login": "3/15m",
    "login_account": "4/1h",
    "register": "2/24h",
    "chat_message": "2/1m",
    "image": "1/1h",
    "companion_create": "1/1h",
    "settings_change": "2/1h",
    "token_create": "2/1h",
    "account_export": "1/1h",
    "transcribe": "2/1h",
}


class RateLimitClock:
    """django-ratelimit's clock, held still: a test's hits all fall in one window.

    Windows are fixed, so on the real clock a test that spends an allowance
    just before a window ends would find it renewed by its next request.
    Tests that need a window to pass move the clock with ``advance``.
    """

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def rate_limit_clock(monkeypatch) -> RateLimitClock:
    clock = RateLimitClock()
    monkeypatch.setattr("django_ratelimit.core.time", clock)
    return clock


@pytest.fixture
def rate_limits(settings, user, rate_limit_clock):
    """Small limits, switched on, with this test's counters starting at zero.

    Counters live in the shared cache (Redis in CI) and outlive a run: a fixed
    address or name used by a test would lock up after a few runs in one
    window. A key prefix of this test's own gives it a clean slate, and a
    clock held still keeps its hits in one window.
    """
    settings.RATELIMIT_ENABLE = True
    settings.RATE_LIMITS = dict(SMALL)
    settings.RATELIMIT_CACHE_PREFIX = f"rl:test-{uuid.uuid4().hex[:12]}:"
    return settings.RATE_LIMITS


@pytest.fixture
def ip():
    """A client address of this test's own, so counters never collide."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.fixture
def redis_server():
    """A Redis of the test's own, which fault drills may stop and restart."""
    from tests.fakes.services import ServiceUnavailable, private_redis

    try:
        with private_redis() as server:
            yield server
    except ServiceUnavailable as exc:
        require_service("Redis server", str(exc))
