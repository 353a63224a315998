"""What a web or worker process checks about its back ends when it starts.

``backends_startup`` syncs the environment's connection rows (so the admin
shows them from the first page on) and refuses to start without an LLM back
end unless ``ALLOW_DEMO_BACKENDS`` says the demo is meant -- as the original
product did. ``ALLOW_DEMO_BACKENDS`` defaults to ``DEBUG`` as the settings
read it, so development never refuses. Called from ``companionhub/asgi.py``
(production) and from the Celery ``worker_init`` signal.

A database that does not answer at start is not a reason to refuse: the
sync then happens lazily at the first lookup (``chat.backends``), and the
check is skipped with a warning.
"""

from __future__ import annotations

import structlog
from django.conf import settings
from django.db import DatabaseError

from chat.backend_models import Connection
from chat.backends import sync_environment
from companionhub.env_check import demo_backend_problem

log = structlog.get_logger(__name__)


class BackendsMissing(SystemExit):
    """Production without an LLM back end: the process stops with a message naming the variables."""


def backends_startup() -> None:
    environ = {
        "LLM_BASE_URL": settings.LLM_BASE_URL,
        "NOVITA_KEY": settings.NOVITA_KEY,
        "ALLOW_DEMO_BACKENDS": str(settings.ALLOW_DEMO_BACKENDS),
    }
    try:
        sync_environment()
        rows = Connection.objects.filter(kind=Connection.Kind.LLM, enabled=True)
        enabled = rows.exclude(provider="demo").count()
    except DatabaseError as exc:
        log.warning("backends_startup_skipped", error=type(exc).__name__)
        return
    problem = demo_backend_problem(environ, enabled_llm_connections=enabled)
    if problem:
        raise BackendsMissing(f"CompanionHub cannot start in production (DEBUG=False): {problem}")
