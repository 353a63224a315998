"""Changing a group conversation after the fact: rewrite or continue the latest reply, flip versions, delete.

The group counterpart of ``chat.editing``, with the same rules: refused while
the group's turn is being answered, the old text kept as a version the user
can flip back to (``chat.versions``), the run started through the same
``start_reply_run`` as any group reply (so through ``run_admit``, the
companion's one-run-at-a-time queue and the same Celery chain), and events
sent only after commit.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction

from chat import events
from chat.models import PipelineRun
from chat.paging import MAX_ID
from chat.services import ChatError, run_admit
from chat.versions import versions_keep, versions_rotate
from groups.models import GroupChat, GroupMessage
from groups.selectors import group_members
from groups.services import (
    TurnStarted,
    latest_user_message,
    lock_group,
    publish_to_group,
    start_reply_run,
    turn_close,
    turn_in_progress,
)

log = structlog.get_logger(__name__)


def _lock_idle(group: GroupChat, user) -> GroupChat:
    """Lock the user's group; refuse while its turn is being answered."""
    if group.creator_id != user.pk:
        raise PermissionError("not the creator")  # callers look groups up by creator; belt and braces
    group = lock_group(group.pk)
    if turn_in_progress(group.pk):
        raise ChatError("busy", "The companions are still answering. Wait a moment or stop the replies.")
    return group


def _group_message(group: GroupChat, message_id: Any, *, replies_only: bool) -> GroupMessage:
    """A message of this group by id; any other id (another group's, garbage) is not found."""
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 1 <= message_id <= MAX_ID:
        raise ChatError("not_found", "No such message.")
    found = GroupMessage.objects.filter(pk=message_id, group=group)
    message = (found.filter(is_bot=True) if replies_only else found).first()
    if message is None:
        raise ChatError("not_found", "No such message.")
    return message


def _group_reply(group: GroupChat, message_id: Any) -> GroupMessage:
    """A companion's reply in this group by id."""
    return _group_message(group, message_id, replies_only=True)


def _latest_reply(group: GroupChat, message_id: Any) -> GroupMessage:
    """The group's last message when it is a companion's reply (and is ``message_id``, when given)."""
    last = GroupMessage.objects.filter(group=group).order_by("-created_at", "-pk").first()
    if message_id is not None and (last is None or last.pk != message_id):
        _group_reply(group, message_id)  # not found, or found but not the latest
        raise ChatError("not_latest", "Only the latest reply can be written again or continued.")
    if last is None or not last.is_bot:
        raise ChatError("nothing_to_regenerate", "There is no reply to write again yet.")
    return last


def _rewrite_latest_reply(user, group: GroupChat, message_id: Any, *, continuing: bool) -> TurnStarted:
    """Start the run that rewrites (or continues) the group's latest reply, by the companion that wrote it.

    The turn that reply belonged to is closed first: nobody else of it answers
    after the rewrite.
    """
    admission = run_admit(user, want_image=False)
    with transaction.atomic():
        group = _lock_idle(group, user)
        reply = _latest_reply(group, message_id)
        if continuing and reply.finish_reason != "length":
            raise ChatError(
                "nothing_to_continue", "Only a reply cut off at the length limit can be continued."
            )
        speaker = {c.pk: c for c in group_members(group)}.get(reply.sender_id)
        if speaker is None:
            raise ChatError("not_a_member", "That companion has left the group.")
        message = latest_user_message(group.pk)
        if message is None:
            raise ChatError("nothing_to_regenerate", "There is no reply to write again yet.")
        if continuing:
            fields = {"mode": PipelineRun.Mode.CONTINUE, "analysis": {"continue_from": len(reply.content)}}
        else:
            kept = versions_keep(reply.alternatives, reply.content)
            fields = {"versions": len(kept) + 1}
            GroupMessage.objects.filter(pk=reply.pk).update(alternatives=kept, image=None)
        turn_close(message)
        run = start_reply_run(
            group,
            message,
            speaker,
            want_image=False,
            admission=admission,
            reply=reply,
            announce="continue" if continuing else "regenerate",
            **fields,
        )
    log.info(
        "group_reply_continue" if continuing else "group_reply_regenerate",
        group_id=group.pk,
        run_id=str(run.pk),
        message_id=reply.pk,
    )
    return TurnStarted(message=message, run=run)


def group_reply_regenerate(*, user, group: GroupChat, message_id: Any = None) -> TurnStarted:
    """The companion that wrote the group's latest reply writes it again; the old text becomes a version.

    ``message_id`` (optional) names the reply the user meant; it must be the
    latest, so a stale page cannot rewrite an older one.
    """
    return _rewrite_latest_reply(user, group, message_id, continuing=False)


def group_reply_continue(*, user, group: GroupChat, message_id: Any = None) -> TurnStarted:
    """The group's latest reply, cut at the length limit, is carried on by the companion that wrote it."""
    return _rewrite_latest_reply(user, group, message_id, continuing=True)


def group_reply_show_alternative(*, user, group: GroupChat, message_id: Any) -> GroupMessage:
    """Show the next version of a regenerated group reply; every open tab gets ``message.updated``."""
    with transaction.atomic():
        group = _lock_idle(group, user)
        reply = _group_reply(group, message_id)
        if not reply.alternatives:
            raise ChatError("no_alternatives", "This reply has only one version.")
        reply.content, reply.alternatives = versions_rotate(reply.content, reply.alternatives)
        GroupMessage.objects.filter(pk=reply.pk).update(
            content=reply.content, alternatives=reply.alternatives
        )
        updated = events.message_updated(reply.pk, reply.content, len(reply.alternatives) + 1)
        transaction.on_commit(lambda: publish_to_group(group.pk, updated))
    return reply


def group_message_delete(*, user, group: GroupChat, message_id: Any) -> int:
    """Delete one message of the group, the user's or a companion's; every open tab gets ``message.deleted``.

    As in a one-to-one chat: refused while the turn is being answered, the
    runs that answered a deleted message of the user go with it, and a
    picture stays in the gallery.
    """
    with transaction.atomic():
        group = _lock_idle(group, user)
        message = _group_message(group, message_id, replies_only=False)
        deleted_id = message.pk
        message.delete()
        deleted = events.message_deleted(deleted_id)
        transaction.on_commit(lambda: publish_to_group(group.pk, deleted))
    log.info("group_message_deleted", group_id=group.pk, message_id=deleted_id)
    return deleted_id
