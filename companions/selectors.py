"""Reads of companions, always scoped to the owner."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.db.models import Max, QuerySet
from django.shortcuts import get_object_or_404

from companions.models import Companion


def companion_get_for_user(user, companion_id: int) -> Companion:
    """The user's own companion, or 404 (never 403: another user's id reveals nothing)."""
    return get_object_or_404(Companion.objects.select_related("header_image"), pk=companion_id, owner=user)


def companion_list_for_user(user) -> QuerySet[Companion]:
    return (
        Companion.objects.filter(owner=user)
        .select_related("header_image")
        .annotate(last_message_at=Max("messages__created_at"))
        .order_by("-created_at")
    )


def companion_header_bytes(companion: Companion) -> bytes | None:
    """The stored header picture's bytes, or None when there is none (or its file is gone)."""
    if companion.header_image is None:
        return None
    try:
        with default_storage.open(companion.header_image.file.name, "rb") as handle:
            return handle.read()
    except OSError:
        return None
