"""The circuit breaker: closed -> open after 5 failures -> half-open trial -> closed after 2 successes."""

import pytest

from chat.circuit import CircuitBreaker


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr("chat.circuit.time.time", lambda: now[0])
    return now


@pytest.fixture
def breaker(clock):
    breaker = CircuitBreaker("test-backend", threshold=5, reset_seconds=60, close_after=2)
    breaker.reset()
    yield breaker
    breaker.reset()


def test_it_opens_after_five_straight_failures(breaker):
    for _ in range(4):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.status().state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_count(breaker):
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert breaker.status().state == "closed"


def test_after_the_reset_time_one_trial_goes_through(breaker, clock):
    for _ in range(5):
        breaker.record_failure()
    clock[0] += 59
    assert not breaker.allow()
    clock[0] += 2
    assert breaker.status().state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # only one trial at a time


def test_two_trial_successes_close_it(breaker, clock):
    for _ in range(5):
        breaker.record_failure()
    clock[0] += 61
    assert breaker.allow()
    breaker.record_success()
    assert breaker.status().state == "half_open"
    assert breaker.allow()  # the next trial may go
    breaker.record_success()
    assert breaker.status().state == "closed"
    assert breaker.allow() and breaker.allow()


def test_a_failed_trial_opens_it_again(breaker, clock):
    for _ in range(5):
        breaker.record_failure()
    clock[0] += 61
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.status().state == "open"
    assert not breaker.allow()


def test_breakers_are_independent(breaker):
    other = CircuitBreaker("another-backend")
    other.reset()
    for _ in range(5):
        breaker.record_failure()
    assert other.allow()
