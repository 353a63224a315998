"""A real Celery worker (never eager mode) runs the ping task."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from companionhub.celery import app
from companionhub.tasks import ping
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_is_configured_for_safe_delivery():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit and conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_always_eager is False


@pytest.mark.django_db(transaction=True)
def test_a_worker_thread_runs_ping_on_the_configured_broker(chat_worker):
    """The embedded default's worker: in process, on the configured broker (memory:// or Redis).

    It is the session's one in-process worker: Celery keeps shutdown state per
    process, so a second worker thread started beside it may not stop cleanly.
    """
    assert ping.delay().get(timeout=20) == "pong"


def test_a_separate_worker_process_runs_ping_over_redis():
    if not settings.REDIS_URL:
        require_service("Redis broker", "REDIS_URL is not set, so this run uses the in-memory broker")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "companionhub.settings"}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "companionhub",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            f"--queues={queue}",
            f"--hostname={queue}@localhost",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        result = ping.apply_async(queue=queue)
        assert result.get(timeout=60) == "pong"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.mark.django_db
def test_the_embedded_worker_serves_every_routed_queue(monkeypatch):
    from chat import steps
    from companionhub.embedded_worker import embedded_queues

    assert embedded_queues() == sorted({app.conf.task_default_queue, "images", "exports", "memory", "voice"})
    # A task of any app that a router sends elsewhere adds its queue.
    monkeypatch.setitem(steps._BY_TASK, "media.report_orphans", steps.Route("media.report_orphans", "slow"))
    assert "slow" in embedded_queues()


@pytest.mark.django_db
def test_replies_left_running_by_a_dead_embedded_process_are_failed(user):
    """The in-memory broker dies with its process: on start, its unfinished runs are failed, not left busy."""
    from companionhub.embedded_worker import recover_orphaned_runs
    from tests.companions.factories import make_companion, make_run

    run = make_run(make_companion(user), said="hello?")
    assert recover_orphaned_runs() == 1
    run.refresh_from_db()
    assert run.status == "failed" and run.error_text
    assert recover_orphaned_runs() == 0


@pytest.mark.django_db
def test_exports_left_unfinished_by_a_dead_embedded_process_are_failed(user):
    """Their tasks died with the in-memory broker: failed at start, so a new export can begin."""
    from companionhub.embedded_worker import recover_orphaned_exports
    from portability.models import AccountExport

    export = AccountExport.objects.create(owner=user, status="running", progress=30)
    assert recover_orphaned_exports() == 1
    export.refresh_from_db()
    assert export.status == "failed" and "restarted" in export.error_text
    assert recover_orphaned_exports() == 0
