"""Periodic media work (Celery beat)."""

from __future__ import annotations

from celery import shared_task

from media import orphans


@shared_task(name="media.report_orphans")
def report_orphans() -> int:
    """Log how many site files (pictures, spoken clips) no row references; delete nothing
    (``manage.py media_orphans --delete`` does)."""
    return len(orphans.report_orphans(older_than_minutes=orphans.DEFAULT_MIN_AGE_MINUTES).orphans)
