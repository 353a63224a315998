"""Reads of group chats, always scoped to the creator."""

from __future__ import annotations

from django.db.models import Count, Max, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from companions.models import Companion
from groups.models import GroupChat, GroupMessage

HISTORY_PAGE = 100


def _members() -> Prefetch:
    return Prefetch("companions", queryset=Companion.objects.select_related("header_image").order_by("pk"))


def group_get_for_user(user, group_id: int) -> GroupChat:
    """The user's own group, or 404 (another user's id reveals nothing)."""
    return get_object_or_404(GroupChat.objects.prefetch_related(_members()), pk=group_id, creator=user)


def group_list_for_user(user) -> QuerySet[GroupChat]:
    return (
        GroupChat.objects.filter(creator=user)
        .prefetch_related(_members())
        .annotate(message_count=Count("messages", distinct=True), last_message_at=Max("messages__created_at"))
        .order_by("-created_at")
    )


def group_members(group: GroupChat) -> list[Companion]:
    """The group's companions in their standing order (by id): the round-robin order."""
    return list(group.companions.select_related("header_image").order_by("pk"))


def group_history(group: GroupChat, *, limit: int = HISTORY_PAGE) -> list[GroupMessage]:
    """The last ``limit`` messages, oldest first (uses the (group, created_at) index)."""
    page = list(
        GroupMessage.objects.filter(group=group)
        .select_related("sender", "sender__header_image", "image")
        .order_by("-created_at", "-id")[:limit]
    )
    page.reverse()
    return page
