"""``manage.py sync_connections``: create or update the back-end connections the environment names.

Idempotent; processes also do it at start (and lazily at the first lookup).
Prints the rows, never their keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chat.backend_models import Connection
from chat.backends import sync_environment


class Command(BaseCommand):
    help = "Create or update the LLM and image connections named by LLM_BASE_URL, SD_API_URL, ..."

    def handle(self, *args: Any, **options: Any) -> None:
        sync_environment()
        rows = Connection.objects.filter(from_env=True)
        if not rows:
            self.stdout.write(
                "The environment names no back end: the demo back ends serve until one is added."
            )
        for row in rows:
            state = "enabled" if row.enabled else "disabled (its variables are gone)"
            default = ", default" if row.is_default else ""
            self.stdout.write(
                f"{row.name}: {row.provider} {row.base_url or '(provider address)'} {state}{default}"
            )
