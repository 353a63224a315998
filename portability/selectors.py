"""Reads of exports, always scoped to the owner."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import User
from portability.models import AccountExport

RECENT = 5  # exports the profile page lists


def export_get_for_user(user: User, export_id: uuid.UUID) -> AccountExport:
    """The user's own export, or 404 (another user's id reveals nothing)."""
    return get_object_or_404(AccountExport, pk=export_id, owner=user)


def export_list_for_user(user: User) -> QuerySet[AccountExport]:
    return AccountExport.objects.filter(owner=user).order_by("-created_at")[:RECENT]


def export_is_downloadable(export: AccountExport) -> bool:
    return (
        export.status == AccountExport.Status.READY
        and export.expires_at is not None
        and export.expires_at > timezone.now()
    )


def export_status(export: AccountExport) -> dict[str, object]:
    """What the profile page's poll reads."""
    downloadable = export_is_downloadable(export)
    return {
        "id": str(export.pk),
        "status": "expired"
        if export.status == AccountExport.Status.READY and not downloadable
        else export.status,
        "progress": export.progress,
        "expires_at": export.expires_at.isoformat() if export.expires_at else None,
        "error": export.error_text,
    }
