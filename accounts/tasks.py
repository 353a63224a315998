"""Periodic account work (Celery beat)."""

from __future__ import annotations

from celery import shared_task

from accounts import services


@shared_task(name="accounts.delete_expired_rate_limits")
def delete_expired_rate_limits() -> int:
    return services.rate_limits_delete_expired()
