"""The Celery app. Configuration lives in settings under the ``CELERY_`` prefix."""

from __future__ import annotations

import logging.config
import os
import sys

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_ready
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companionhub.settings")

app = Celery("companionhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.steps["worker"].add(DjangoStructLogInitStep)
app.steps["worker"].add("companionhub.worker_watchdog:BrokerWatchdog")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(**kwargs: object) -> None:
    """Workers log through the same structlog configuration as the web process."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_init.connect
def _check_backends(**kwargs: object) -> None:
    """A worker syncs the environment's connection rows at start and, in production, refuses to
    start without an LLM back end (``chat.startup``), as the web process does."""
    from chat.startup import backends_startup  # apps are loaded only once the worker starts

    backends_startup()


@worker_init.connect
def _shorten_gil_switches(**kwargs: object) -> None:
    """Tokens a reply streams wait for the GIL behind the steps' threads after each socket call
    of the streaming loop; a shorter interval bounds that wait (companionhub/step_slots.py)."""
    from django.conf import settings

    sys.setswitchinterval(settings.WORKER_SWITCH_INTERVAL_MS / 1000)


@worker_ready.connect
def _settle_heap(**kwargs: object) -> None:
    """Everything is imported by now: freeze it, so a full collection never stalls the replies
    this worker streams for walking it (companionhub/gc_tuning.py)."""
    from companionhub.gc_tuning import settle_heap

    settle_heap()
