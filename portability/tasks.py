"""Celery tasks of account exports: thin, each takes an id (or nothing) and calls a service.

``build_export`` runs on the ``exports`` queue (settings ``CELERY_TASK_ROUTES``): a large
account takes minutes, which must not hold up a chat reply or a picture.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from portability import archive, services


@shared_task(
    name=services.BUILD_TASK,
    time_limit=settings.EXPORT_TIME_LIMIT,
    soft_time_limit=max(settings.EXPORT_TIME_LIMIT - 15, 1),
)
def build_export(export_id: str) -> None:
    archive.export_build(export_id)


@shared_task(name="portability.delete_expired_exports")
def delete_expired_exports() -> int:
    return services.exports_delete_expired()
