"""CompanionHub project package: settings, URLs, ASGI, Celery, logging, health."""

from companionhub.celery import app as celery_app

__all__ = ("celery_app",)
