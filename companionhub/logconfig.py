"""Logging: structlog on top of the standard library, through django-structlog.

Console lines for people in development, one JSON object per line when
``DEBUG`` is off (or ``LOG_FORMAT=json``), so a log shipper can index
``request_id`` / ``task_id`` without parsing.

Each request's lines carry ``ip``: the address the rate limits use
(``ratelimits.request_ip``: X-Forwarded-For only as far as
``TRUSTED_PROXY_HOPS`` reach), bound by ``bind_client_ip``. django-structlog's
own lookup is off (``DJANGO_STRUCTLOG_IP_LOGGING_ENABLED``): it believes the
leftmost X-Forwarded-For entry, which the client writes.
"""

from __future__ import annotations

from typing import Any

import structlog

SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def build_logging(*, fmt: str, level: str) -> dict[str, Any]:
    """Return a ``LOGGING`` dict for Django and configure structlog to match."""
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        exception_processors: list[Any] = [structlog.processors.dict_tracebacks]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        exception_processors = []

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *exception_processors,
                    renderer,
                ],
                # Lines from plain `logging` users (Django, Celery) get the same fields.
                "foreign_pre_chain": SHARED_PROCESSORS,
            },
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "structured"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's own defaults (applied before this) give "django" a plain console
            # handler of its own: every line under it, Daphne's access line
            # ("django.channels.server") among them, was written twice, once plain and once
            # here. An empty list takes that handler off; the lines reach the root's once.
            # (Its other default, mail_admins, sends nothing: ADMINS is not set.)
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.server": {"handlers": [], "level": "INFO", "propagate": True},
            "django.db.backends": {"level": "INFO"},
            "daphne": {"level": "WARNING"},
            "celery": {"level": "INFO"},
            "kombu": {"level": "WARNING"},
        },
    }


def bind_client_ip(request: Any, **kwargs: Any) -> None:
    """django-structlog's ``bind_extra_request_metadata`` receiver (connected in apps.py)."""
    from companionhub.ratelimits import request_ip  # needs Django set up; settings import this module

    structlog.contextvars.bind_contextvars(ip=request_ip(request))
