"""The counter itself, for every scope in the table: limit, key separation, window end, races."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from companionhub import ratelimits
from tests.conftest import SMALL


def limit_of(scope: str) -> int:
    return int(settings.RATE_LIMITS[scope].split("/")[0])


@pytest.mark.parametrize("scope", sorted(SMALL))
def test_each_scope_limits_separates_keys_and_forgets(rate_limits, scope, rate_limit_clock):
    key, other = f"k-{uuid.uuid4().hex}", f"k-{uuid.uuid4().hex}"
    for _ in range(limit_of(scope)):
        assert not ratelimits.hit(scope, key).limited
    over = ratelimits.hit(scope, key)
    assert over.limited and over.retry_after > 0
    assert ratelimits.peek(scope, key).limited
    assert not ratelimits.hit(scope, other).limited
    rate_limit_clock.advance(25 * 3600)  # past every window in the table
    assert not ratelimits.hit(scope, key).limited


def test_every_scope_has_a_valid_rate():
    from django_ratelimit.core import _split_rate

    for scope, rate in settings.RATE_LIMITS.items():
        count, period = _split_rate(rate)
        assert count > 0 and period > 0, scope


def test_parallel_attempts_let_exactly_the_limit_through(rate_limits, transactional_db):
    key = f"race-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=16) as pool:
        verdicts = list(pool.map(lambda _: ratelimits.hit("login", key), range(50)))
    assert sum(not v.limited for v in verdicts) == limit_of("login")
