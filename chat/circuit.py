"""A circuit breaker per back end, shared by every process through the cache.

closed     calls go through; consecutive failures are counted.
open       after ``threshold`` consecutive failures: calls fail fast for ``reset_seconds``.
half_open  after that, one trial call at a time is let through; ``close_after``
           successes close the breaker, a failure opens it again.

With Redis as the cache every web and worker process sees the same state;
in the embedded default the locmem cache is shared by the one process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from django.core.cache import cache

log = structlog.get_logger(__name__)

KEY_PREFIX = "circuit"


@dataclass(frozen=True, slots=True)
class BreakerState:
    name: str
    state: str  # closed | open | half_open
    failures: int
    opened_at: float | None
    retry_in: float


class CircuitBreaker:
    def __init__(
        self, name: str, *, threshold: int = 5, reset_seconds: float = 60.0, close_after: int = 2
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.close_after = close_after

    def _key(self, part: str) -> str:
        return f"{KEY_PREFIX}:{self.name}:{part}"

    @property
    def _ttl(self) -> int:
        # Long enough to outlive the open period; short enough to forget a quiet back end.
        return int(self.reset_seconds * 10) + 60

    def _incr(self, part: str) -> int:
        key = self._key(part)
        cache.add(key, 0, timeout=self._ttl)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=self._ttl)
            return 1

    def _opened_at(self) -> float | None:
        value = cache.get(self._key("opened_at"))
        return float(value) if value is not None else None

    def status(self) -> BreakerState:
        opened_at = self._opened_at()
        failures = cache.get(self._key("failures")) or 0
        if opened_at is None:
            return BreakerState(self.name, "closed", failures, None, 0.0)
        remaining = opened_at + self.reset_seconds - time.time()
        if remaining > 0:
            return BreakerState(self.name, "open", failures, opened_at, round(remaining, 1))
        return BreakerState(self.name, "half_open", failures, opened_at, 0.0)

    def allow(self) -> bool:
        """May a call go through now? In half-open, only one caller at a time gets True."""
        state = self.status().state
        if state == "closed":
            return True
        if state == "open":
            return False
        # One trial at a time; the trial slot expires in case its caller dies.
        return cache.add(self._key("trial"), 1, timeout=max(int(self.reset_seconds), 1))

    def record_success(self) -> None:
        if self.status().state == "half_open":
            cache.delete(self._key("trial"))
            if self._incr("successes") >= self.close_after:
                self.reset()
                log.info("circuit_closed", backend=self.name)
            return
        if cache.get(self._key("failures")):
            cache.set(self._key("failures"), 0, timeout=self._ttl)

    def record_failure(self) -> None:
        state = self.status().state
        if state == "half_open":
            self._open()
            return
        if self._incr("failures") >= self.threshold and state == "closed":
            self._open()

    def _open(self) -> None:
        cache.set(self._key("opened_at"), time.time(), timeout=self._ttl)
        cache.delete_many([self._key("trial"), self._key("successes")])
        log.warning("circuit_opened", backend=self.name, reset_seconds=self.reset_seconds)

    def reset(self) -> None:
        cache.delete_many([self._key(p) for p in ("failures", "opened_at", "trial", "successes")])
