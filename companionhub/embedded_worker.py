"""A Celery worker running inside the server process (the embedded default).

With no Redis the broker is Celery's in-memory transport, which only exists
inside one process, so the web process hosts the worker itself: a real
worker (threads pool) consuming real queues, so chains run exactly as they do
with a separate worker, just without a service to install. Celery beat runs
beside it in a thread (``EMBEDDED_BEAT``), sending the periodic tasks to the
same in-memory queues.
"""

from __future__ import annotations

import threading
from typing import Protocol

import structlog
from django.conf import settings

from companionhub.celery import app

log = structlog.get_logger(__name__)
_lock = threading.Lock()


class BeatService(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


_worker = None
_beat: BeatService | None = None


def start_embedded_worker() -> bool:
    """Start the in-process worker once; return True if this call started it."""
    global _worker
    with _lock:
        if _worker is not None:
            return False
        recover_orphaned_runs()
        recover_orphaned_exports()
        queues = embedded_queues()
        _worker = app.WorkController(
            pool="threads",
            concurrency=settings.EMBEDDED_WORKER_CONCURRENCY,
            queues=queues,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel=settings.LOG_LEVEL,
        )
        threading.Thread(target=_worker.start, name="celery-embedded", daemon=True).start()
    log.info("embedded_worker_started", queues=queues, broker=settings.CELERY_BROKER_URL)
    if settings.EMBEDDED_BEAT:
        start_embedded_beat()
    return True


def start_embedded_beat(schedule_filename: str | None = None) -> BeatService | None:
    """Start Celery beat in a thread of this process once; return it (None if already running).

    Its schedule file (when each task last ran) lives under ``VAR_DIR``, so a
    restart does not send every task again at once.
    """
    from celery.beat import EmbeddedService

    global _beat
    with _lock:
        if _beat is not None:
            return None
        filename = schedule_filename or str(settings.VAR_DIR / "celerybeat-schedule")
        beat = EmbeddedService(app, thread=True, schedule_filename=filename)
        if not isinstance(beat, threading.Thread):  # thread=True makes the threaded kind
            raise TypeError(f"Celery beat was made as a {type(beat).__name__}, not a thread")
        beat.start()
        _beat = beat
    log.info("embedded_beat_started", tasks=sorted(app.conf.beat_schedule), schedule_filename=filename)
    return _beat


def stop_embedded_beat() -> None:
    global _beat
    with _lock:
        beat, _beat = _beat, None
    if beat is not None:
        beat.stop()


def embedded_queues() -> list[str]:
    """Every queue a task is sent to, so one in-process worker serves them all.

    The routers decide (``CELERY_TASK_ROUTES``), so each task of every app is
    routed as if it were sent; a task with no route goes to the default queue.
    """
    app.loader.import_default_modules()  # every app's tasks, as a worker imports them
    routed = {app.amqp.router.route({}, name)["queue"].name for name in app.tasks}
    return sorted({app.conf.task_default_queue, *routed})


def recover_orphaned_runs() -> int:
    """Fail the replies the previous process was writing.

    The in-memory broker died with that process, so their tasks are gone and
    nothing else would ever end them: the chat would say "still replying"
    forever. Failing them shows the user Retry instead.
    """
    from django.db import DatabaseError

    from chat.pipeline import reconcile_stuck_runs

    try:
        count = reconcile_stuck_runs(older_than_seconds=0)
    except DatabaseError as exc:  # not migrated yet: nothing to recover
        log.warning("orphaned_runs_not_checked", error=str(exc)[:200])
        return 0
    if count:
        log.info("orphaned_runs_failed", count=count)
    return count


def recover_orphaned_exports() -> int:
    """Fail the account exports the previous process was building or had queued.

    Their tasks died with the in-memory broker; left alone, the profile page
    would say "preparing" until the hourly sweep, and refuse a new export.
    """
    from django.db import DatabaseError

    from portability.services import exports_fail_unfinished

    try:
        count = exports_fail_unfinished()
    except DatabaseError as exc:  # not migrated yet: nothing to recover
        log.warning("orphaned_exports_not_checked", error=str(exc)[:200])
        return 0
    if count:
        log.info("orphaned_exports_failed", count=count)
    return count
