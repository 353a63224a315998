"""Reads of companions, always scoped to the owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from companionhub import pagecache
from companions.config import DEFAULTS, effective_config
from companions.models import Companion
from lorebooks.models import LoreEntry
from media.services import image_read

# Columns that can be large: ``config`` holds an imported card (its lorebook,
# extensions and unknown fields, up to CARD_EXTRAS_MAX_BYTES), and
# ``header_image_legacy`` an old base64 picture. Pages, sockets and pipeline
# steps that do not use them leave them out of their queries; reading a
# deferred one later costs one more query, never a wrong answer.
LARGE_COLUMNS = ("config", "header_image_legacy")


def companions_without_large_columns() -> QuerySet[Companion]:
    """Companions with ``LARGE_COLUMNS`` deferred: for everything but the prompt, settings and export."""
    return Companion.objects.defer(*LARGE_COLUMNS)


def companion_get_for_user(user: User, companion_id: int, *, with_config: bool = False) -> Companion:
    """The user's own companion, or 404 (never 403: another user's id reveals nothing).

    ``with_config`` loads the settings and the imported card too (the
    settings page, card export); other pages do not read them.
    """
    companions = Companion.objects if with_config else companions_without_large_columns()
    return get_object_or_404(companions.select_related("header_image"), pk=companion_id, owner=user)


def companions_exist_for_user(user: User) -> bool:
    """Whether the user has made or imported any companion yet (else they are shown how to)."""
    return Companion.objects.filter(owner=user).exists()


def companion_list_for_user(user: User) -> QuerySet[Companion]:
    return (
        companions_without_large_columns()
        .filter(owner=user)
        .select_related("header_image")
        .annotate(last_message_at=Max("conversations__updated_at"))
        .order_by("-created_at")
    )


def companion_settings(companion_id: int) -> dict[str, Any]:
    """The companion's advanced settings (``effective_config``), read key by key.

    The same column holds the imported card; sending a message needs only
    the picture setting, so the card is not read for it.
    """
    names = sorted(DEFAULTS)
    row = (
        Companion.objects.filter(pk=companion_id).values_list(*(f"config__{name}" for name in names)).first()
    )
    stored = {name: value for name, value in zip(names, row or (), strict=False) if value is not None}
    return effective_config(stored)


@dataclass(frozen=True, slots=True)
class CompanionCard:
    """What the companion list shows of one companion: plain values, safe to cache."""

    pk: int
    name: str
    header_url: str | None
    current_action: str
    current_location: str
    last_message_at: datetime | None


def companion_cards_for_user(user: User) -> list[CompanionCard]:
    """The companion list's data, cached per user (invalidated by every write that changes it)."""

    def build() -> list[CompanionCard]:
        return [
            CompanionCard(
                pk=c.pk,
                name=c.name,
                header_url=c.header_image.url if c.header_image else None,
                current_action=c.current_action,
                current_location=c.current_location,
                # An annotation over the messages relation: moved out by the one-conversation refactor.
                last_message_at=c.last_message_at,  # type: ignore[attr-defined]
            )
            for c in companion_list_for_user(user)
        ]

    return pagecache.user_data("companion_list", user.pk, "all", build)


def companion_header_bytes(companion: Companion) -> bytes | None:
    """The stored header picture's bytes, or None when there is none (or its file is gone)."""
    if companion.header_image is None:
        return None
    try:
        return image_read(companion.header_image)
    except FileNotFoundError:
        return None


def companions_for_card_export(user: User) -> QuerySet[Companion]:
    """The user's companions with their cards (``config``) and pictures, oldest first: an export's order."""
    return Companion.objects.filter(owner=user).select_related("header_image").order_by("created_at", "pk")


def companion_card_book_entries(companion: Companion) -> list[LoreEntry]:
    """The entries of the companion's own lorebook (its card's ``character_book``), if it has one."""
    if companion.card_book_id is None:
        return []
    return list(
        LoreEntry.objects.filter(lorebook_id=companion.card_book_id, lorebook__owner=companion.owner_id)
    )
