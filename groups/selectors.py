"""Reads of group chats, always scoped to the creator."""

from __future__ import annotations

from django.db.models import Count, Max, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from chat import events
from chat.paging import Page, page_before
from companions.models import Companion
from companions.selectors import LARGE_COLUMNS, companions_without_large_columns
from groups.models import GroupChat, GroupMessage

HISTORY_PAGE = 100


def _members() -> Prefetch:
    # Pages and turns show names, pictures and scenes; the speaker's prompt loads its own row.
    members = companions_without_large_columns().select_related("header_image").order_by("pk")
    return Prefetch("companions", queryset=members)


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
    return list(group.companions.defer(*LARGE_COLUMNS).select_related("header_image").order_by("pk"))


def group_history(group: GroupChat, *, before_id: int | None = None, limit: int = HISTORY_PAGE) -> Page:
    """Up to ``limit`` messages older than ``before_id``, oldest first (the (group, created_at) index)."""
    messages = (
        GroupMessage.objects.filter(group=group)
        .select_related("sender", "sender__header_image", "image")
        .defer(*(f"sender__{column}" for column in LARGE_COLUMNS))  # joined once per message
    )
    return page_before(messages, before_id=before_id, size=limit)


def group_llm_history(
    group_id: int, *, exclude_id: int | None, limit: int
) -> list[tuple[int | None, str, str]]:
    """(sender id, sender name or "", content) of the last ``limit`` finished messages, oldest first.

    The reply being written (``exclude_id``) and interrupted replies are left
    out; earlier replies of the same turn are in, so each speaker hears the
    ones before.
    """
    rows = (
        GroupMessage.objects.filter(group_id=group_id, is_complete=True)
        .exclude(content="")
        .exclude(pk=exclude_id)
        .order_by("-created_at", "-id")
        .values_list("sender_id", "sender__name", "content")[:limit]
    )
    return [(sender_id, name or "", content) for sender_id, name, content in reversed(list(rows))]


def group_active_run(group: GroupChat):
    from chat.models import PipelineRun
    from chat.selectors import runs_with_companion

    return (
        runs_with_companion()
        .filter(group=group, status__in=PipelineRun.ACTIVE)
        .order_by("-created_at")
        .first()
    )


def group_snapshot(group: GroupChat) -> events.GroupSnapshotEvent:
    """What a (re)connecting client needs: everyone's state, and the reply being written."""
    from chat.selectors import run_snapshot

    run = group_active_run(group)
    info = run_snapshot(run)
    speaking: events.Speaker | None = None
    if run is not None and info is not None:
        speaking = {"companion_id": run.companion_id, "sender": run.companion.name}
        info.update(speaking)
    companions = [{"id": c.pk, "name": c.name, "state": c.state} for c in group_members(group)]
    return events.group_snapshot(
        {"id": group.pk, "title": group.title, "companions": companions}, info, speaking
    )
