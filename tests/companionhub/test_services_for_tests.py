"""A test run touches only services named for it or started by it (companionhub/services_for_tests.py).

It once emptied database 6 of whatever Redis answered on the default port: a
developer's, with data of its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from companionhub.services_for_tests import point_at_test_services, running_under_pytest

TESTS = Path(__file__).resolve().parents[1]
# Spelled in pieces, so this file does not match itself.
WHOLE_DATABASE = re.compile(r"\b(flush" + r"db|flush" + r"all)\b", re.IGNORECASE)


def test_the_test_names_take_the_place_of_the_sites():
    environ = {
        "DATABASE_URL": "postgres://localhost/site",
        "REDIS_URL": "redis://localhost:6379/0",
        "TEST_DATABASE_URL": "postgres://localhost/for_tests",
        "TEST_REDIS_URL": "redis://localhost:6380/2",
    }
    point_at_test_services(environ)
    assert environ["DATABASE_URL"] == "postgres://localhost/for_tests"
    assert environ["REDIS_URL"] == "redis://localhost:6380/2"


def test_exported_names_count_when_no_test_name_is_given():
    """As CI does: DATABASE_URL and REDIS_URL in the environment are named on purpose."""
    environ = {
        "DATABASE_URL": "postgres://ci/companionhub",
        "REDIS_URL": "redis://ci:6379/0",
        "TEST_REDIS_URL": " ",
    }
    point_at_test_services(environ)
    assert environ["DATABASE_URL"] == "postgres://ci/companionhub"
    assert environ["REDIS_URL"] == "redis://ci:6379/0"


def test_the_sites_env_file_is_not_read_unless_named():
    environ: dict[str, str] = {}
    point_at_test_services(environ)
    assert environ["ENV_FILE"] == os.devnull  # and the servers the tests start inherit it
    named = {"ENV_FILE": "/somewhere/test.env"}
    point_at_test_services(named)
    assert named["ENV_FILE"] == "/somewhere/test.env"


def test_this_run_is_recognised_and_reads_no_env_file_by_default():
    assert running_under_pytest()
    assert os.environ.get("ENV_FILE")  # set by settings before the .env default could apply


def test_without_a_named_redis_the_tests_start_their_own(redis_url):
    if settings.REDIS_URL:
        assert redis_url == settings.REDIS_URL
    else:
        assert urlsplit(redis_url).port != 6379  # not whatever answers on the default port


def test_no_test_empties_a_whole_redis_database():
    """Tests delete the keys they wrote (a prefix of their own), never a database's every key."""
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in TESTS.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if WHOLE_DATABASE.search(line)
    ]
    assert not offenders, offenders
