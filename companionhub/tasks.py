"""Project-level tasks."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="companionhub.ping", ignore_result=False)
def ping() -> str:
    """Answer ``pong``: proves a worker is consuming the broker (health, tests)."""
    return "pong"
