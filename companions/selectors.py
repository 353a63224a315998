"""Reads of companions, always scoped to the owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class CompanionCard:
    """What the companion list shows of one companion: plain values, safe to cache."""

    pk: int
    name: str
    header_url: str | None
    current_action: str
    current_location: str
    last_message_at: datetime | None


def companion_cards_for_user(user) -> list[CompanionCard]:
    """The companion list's data, cached per user (invalidated by every write that changes it)."""
    from companionhub import pagecache

    def build() -> list[CompanionCard]:
        return [
            CompanionCard(
                pk=c.pk,
                name=c.name,
                header_url=c.header_image.url if c.header_image else None,
                current_action=c.current_action,
                current_location=c.current_location,
                last_message_at=c.last_message_at,
            )
            for c in companion_list_for_user(user)
        ]

    return pagecache.user_data("companion_list", user.pk, "all", build)


def companion_header_bytes(companion: Companion) -> bytes | None:
    """The stored header picture's bytes, or None when there is none (or its file is gone)."""
    if companion.header_image is None:
        return None
    try:
        with default_storage.open(companion.header_image.file.name, "rb") as handle:
            return handle.read()
    except OSError:
        return None
