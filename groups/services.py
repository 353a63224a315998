"""Writes of group chats: create, edit and delete a group.

Membership is checked here as well as in the form: only the creator's own
companions can join, between ``MIN_COMPANIONS`` and ``MAX_COMPANIONS`` of
them, so a crafted POST or another caller cannot add someone else's companion.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from django.core.exceptions import ValidationError
from django.db import transaction

from companions.models import Companion
from groups.models import MAX_COMPANIONS, MIN_COMPANIONS, GroupChat

log = structlog.get_logger(__name__)


def _members(user, companions: Iterable[Companion | int]) -> list[Companion]:
    ids = {c.pk if isinstance(c, Companion) else int(c) for c in companions}
    members = list(Companion.objects.filter(owner=user, pk__in=ids).order_by("pk"))
    if len(members) != len(ids):
        # Someone else's companion, or one that does not exist: the same answer.
        raise ValidationError("Choose only your own companions.", code="not_yours")
    if not MIN_COMPANIONS <= len(members) <= MAX_COMPANIONS:
        raise ValidationError(
            f"A group has {MIN_COMPANIONS} to {MAX_COMPANIONS} companions.", code="member_count"
        )
    return members


def _replies(replies_per_turn: int | None, members: list[Companion]) -> int | None:
    if replies_per_turn is None:
        return None
    if not 1 <= replies_per_turn <= len(members):
        raise ValidationError(
            f"Replies per turn must be between 1 and {len(members)} (the number of companions).",
            code="replies_per_turn",
        )
    return replies_per_turn


def _title(title: str) -> str:
    title = (title or "").strip()
    if not title or len(title) > 100:
        raise ValidationError("Give the group a title of at most 100 characters.", code="title")
    return title


def group_create(
    *, user, title: str, companions: Iterable[Companion | int], replies_per_turn: int | None = None
) -> GroupChat:
    members = _members(user, companions)
    with transaction.atomic():
        group = GroupChat.objects.create(
            creator=user, title=_title(title), replies_per_turn=_replies(replies_per_turn, members)
        )
        group.companions.set(members)
    log.info("group_created", group_id=group.pk, companions=[c.pk for c in members])
    return group


def group_update(
    *, group: GroupChat, title: str, companions: Iterable[Companion | int], replies_per_turn: int | None
) -> GroupChat:
    members = _members(group.creator, companions)
    with transaction.atomic():
        group.title = _title(title)
        group.replies_per_turn = _replies(replies_per_turn, members)
        group.save(update_fields=["title", "replies_per_turn"])
        group.companions.set(members)
    log.info("group_updated", group_id=group.pk, companions=[c.pk for c in members])
    return group


def group_delete(*, group: GroupChat) -> None:
    """Delete the group and its messages (the companions and their own chats stay)."""
    group_id = group.pk
    group.delete()
    log.info("group_deleted", group_id=group_id)
