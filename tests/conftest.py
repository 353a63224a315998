"""Shared fixtures: users, service checks."""

from __future__ import annotations

import itertools

import pytest
import redis
from django.conf import settings

pytest_plugins = ["tests.fakes.fixtures"]

# Importing the ASGI app must not start the in-process Celery worker: tests
# that need a worker start one themselves (see tests/chat/conftest.py).
settings.EMBEDDED_WORKER = False

PASSWORD = "correct-horse-battery-staple"
_counter = itertools.count(1)


def require_service(name: str, reason: str) -> None:
    """Skip when a service is missing, or fail when REQUIRE_SERVICES is set (CI)."""
    message = f"{name} is not available: {reason}"
    if settings.REQUIRE_SERVICES:
        pytest.fail(message + " (REQUIRE_SERVICES=1 turns this into a failure)")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis: the configured one, else a local default."""
    url = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
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
