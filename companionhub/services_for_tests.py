"""Which PostgreSQL and Redis a test run may use: only ones named for it, or its own.

Tests write, flush and consume queues in the database and Redis they are given.
A developer's ``.env`` names the site's own services (and the Redis keeps the
site's cache, sessions and Celery queues), so a test run must not read it: under
pytest ``ENV_FILE`` defaults to the empty ``os.devnull`` instead (inherited by
the servers and workers the tests start, so they do not read it either), and
``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` take the place of ``DATABASE_URL`` /
``REDIS_URL`` when set. ``DATABASE_URL`` / ``REDIS_URL`` exported in the
environment (as CI does) are named explicitly and still count. With no Redis
named, the tests that need one start their own (tests/conftest.py,
``redis_url``); pytest-django creates and drops its own ``test_*`` database.

The overrides apply in the pytest process only: the servers and workers it
starts run ordinary settings with the environment each test gives them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

TEST_OVERRIDES = {"TEST_DATABASE_URL": "DATABASE_URL", "TEST_REDIS_URL": "REDIS_URL"}


def running_under_pytest() -> bool:
    """True in the test runner's own process (the servers it starts do not import pytest)."""
    return "pytest" in sys.modules


def point_at_test_services(environ: MutableMapping[str, str]) -> None:
    """No ``.env`` unless ``ENV_FILE`` names one; ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` in
    place of ``DATABASE_URL`` / ``REDIS_URL``."""
    if not environ.get("ENV_FILE"):
        environ["ENV_FILE"] = os.devnull
    for test_name, name in TEST_OVERRIDES.items():
        value = environ.get(test_name, "").strip()
        if value:
            environ[name] = value
