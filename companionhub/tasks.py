"""Project-level tasks."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="companionhub.ping", ignore_result=False)
def ping() -> str:
    """Answer ``pong``: proves a worker is consuming the broker (health, tests)."""
    return "pong"


@shared_task(name="companionhub.clock", ignore_result=False)
def clock(_previous: float | None = None) -> float:
    """Return the wall-clock time the task started: the benchmark's probe of queueing delay."""
    import time

    return time.time()
