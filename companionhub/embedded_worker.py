"""A Celery worker running inside the server process (the embedded default).

With no Redis the broker is Celery's in-memory transport, which only exists
inside one process, so the web process hosts the worker itself: a real
worker (threads pool) consuming real queues, so chains run exactly as they do
with a separate worker, just without a service to install.
"""

from __future__ import annotations

import threading

import structlog
from django.conf import settings

from companionhub.celery import app

log = structlog.get_logger(__name__)
_lock = threading.Lock()
_worker = None


def start_embedded_worker() -> bool:
    """Start the in-process worker once; return True if this call started it."""
    global _worker
    with _lock:
        if _worker is not None:
            return False
        recover_orphaned_runs()
        queues = sorted({settings.CELERY_TASK_DEFAULT_QUEUE, *embedded_queues()})
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
    return True


def embedded_queues() -> list[str]:
    """Every queue a task is routed to, so one in-process worker serves them all."""
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    return list(dict.fromkeys(route["queue"] for route in routes.values() if "queue" in route))


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
