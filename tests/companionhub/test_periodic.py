"""Celery beat: every scheduled task exists and does its work."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from companionhub.celery import app


@pytest.mark.django_db  # Celery's Django fix-up closes stale connections while it imports tasks
def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
        assert entry["schedule"] > 0


def test_the_schedule_covers_stuck_runs_rate_limits_orphan_images_and_expired_exports():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks >= {
        "chat.reconcile_stuck_runs",
        "chat.reconcile_lost_runs",
        "accounts.delete_expired_rate_limits",
        "media.report_orphans",
        "portability.delete_expired_exports",
    }


@pytest.mark.django_db
def test_expired_rate_limit_records_are_deleted():
    from accounts.models import RateLimitRecord
    from accounts.tasks import delete_expired_rate_limits

    now = timezone.now()
    RateLimitRecord.objects.create(scope="login", key="a", hits=6, reset_at=now - timedelta(minutes=1))
    live = RateLimitRecord.objects.create(scope="login", key="b", hits=6, reset_at=now + timedelta(minutes=5))
    assert delete_expired_rate_limits.apply().get() == 1
    assert list(RateLimitRecord.objects.all()) == [live]


@pytest.mark.django_db
def test_the_stuck_run_task_uses_the_configured_limit(user, settings):
    from chat.models import PipelineRun
    from chat.tasks import reconcile_stuck_runs
    from tests.companions.factories import make_companion, make_run

    run = make_run(make_companion(user), said="lost")
    PipelineRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    settings.CHAT_STUCK_RUN_SECONDS = 600
    assert reconcile_stuck_runs.apply().get() == 0
    settings.CHAT_STUCK_RUN_SECONDS = 60
    assert reconcile_stuck_runs.apply().get() == 1
    run.refresh_from_db()
    assert run.status == "failed" and run.error_code == "timed_out"
    assert "took too long" in run.error_text


@pytest.fixture
def fast_schedule():
    """Every scheduled task, due every 0.2 s, for one test."""
    saved = app.conf.beat_schedule
    app.conf.beat_schedule = {
        name: {**entry, "schedule": 0.2} for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    }
    yield
    app.conf.beat_schedule = saved


def test_the_embedded_default_runs_beat_too(chat_worker, transactional_db, fast_schedule, tmp_path):
    """With no services, the periodic work still happens: beat runs in a thread of the web process."""
    import time

    from accounts.models import RateLimitRecord
    from companionhub.embedded_worker import start_embedded_beat, stop_embedded_beat

    RateLimitRecord.objects.create(
        scope="login", key="a", hits=6, reset_at=timezone.now() - timedelta(minutes=1)
    )
    beat = start_embedded_beat(str(tmp_path / "schedule"))
    try:
        assert beat is not None and start_embedded_beat() is None  # once per process
        deadline = time.monotonic() + 20
        while RateLimitRecord.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop_embedded_beat()
    assert not RateLimitRecord.objects.exists()  # the sweep ran without a beat process
