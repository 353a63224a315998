"""Fault drill: PostgreSQL restarts under a running site.

The real site (Daphne as a child process) runs on a private PostgreSQL
cluster started for this test. While the database is down, requests that
need it get a clean 503 (HTML for pages, JSON for API clients) within the
pool timeout -- not a hang, not a traceback. Once it is back, requests
succeed again without restarting Daphne: the pool's ``check`` callback
throws away the connections the restart broke.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
import requests

from tests.conftest import require_service
from tests.fakes.services import ServiceUnavailable, private_postgres
from tests.fakes.site import run_site, site_env

pytestmark = pytest.mark.fault


@pytest.fixture
def postgres():
    try:
        with private_postgres() as server:
            yield server
    except ServiceUnavailable as exc:
        require_service("PostgreSQL server binaries", str(exc))


def get(site, path: str, **kwargs) -> requests.Response:
    # A session cookie makes the page read the session table: a real database query.
    return requests.get(
        f"{site.base_url}{path}", cookies={"sessionid": "x" * 32}, timeout=30, allow_redirects=False, **kwargs
    )


def wait_for_idle_connections(postgres, database: str, count: int) -> None:
    """Wait until the site's pool holds ``count`` connections (it refills with a backoff after an outage)."""
    deadline = time.monotonic() + 60
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        while True:
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            row = admin.execute(query, [database]).fetchone()
            if row and row[0] >= count:
                return
            assert time.monotonic() < deadline, f"the pool holds {row} connections, not {count}"
            time.sleep(0.2)


def test_requests_fail_cleanly_while_postgres_is_down_and_recover_after(postgres, tmp_path):
    database = f"companionhub_fault_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    env = site_env(
        # Eight idle connections: the pool's own check would sleep 0, 1, 2 ...
        # seconds between broken ones and run out of its 2 seconds by the fourth.
        {"DATABASE_URL": postgres.url(database), "DATABASE_POOL_TIMEOUT": "2", "DATABASE_POOL_MIN_SIZE": "8"},
        var_dir=tmp_path,
    )
    with run_site(env, var_dir=tmp_path) as site:
        assert get(site, "/").status_code == 200

        postgres.stop()
        page = get(site, "/")
        assert page.status_code == 503, page.text[:500]
        assert "Traceback" not in page.text and "database" in page.text.lower()
        assert page.headers["Retry-After"]
        api = get(site, "/", headers={"Accept": "application/json"})
        assert api.status_code == 503
        assert api.json()["error"] == "database_unavailable"

        postgres.start()
        deadline = time.monotonic() + 30
        while (status := get(site, "/").status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
        assert site.server.poll() is None  # the same Daphne process
        assert all(get(site, "/").status_code == 200 for _ in range(5))  # no broken pooled connection left

        # A quick restart between two requests: every idle pooled connection is
        # now dead, and the very next request must still succeed -- the first
        # broken one makes the check clear out all the others and open fresh ones.
        wait_for_idle_connections(postgres, database, 8)
        postgres.restart()
        assert get(site, "/").status_code == 200
