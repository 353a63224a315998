"""Reads of companions, always scoped to the owner."""

from __future__ import annotations

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
