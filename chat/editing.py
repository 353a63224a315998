"""Changing a conversation after the fact: regenerate, continue, edit, delete, flip versions.

One module for every conversation. Each write checks ownership, refuses while
the conversation's turn is being answered, changes rows in one transaction,
and starts a run or sends an event only after commit. Regenerating keeps the
old reply as a version the user can flip back to (``chat.versions``); an
edit corrects a message in place, or, for the user's last message, answers
it afresh; nothing the user wrote is lost except by delete. Whatever changes
a reply's text drops its spoken clips (their files go after commit): they
say the old words. Continuing keeps them, as the text they spoke stays.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat import events, turns
from chat.admission import run_admit
from chat.models import Conversation, Message, PipelineRun, Turn
from chat.paging import MAX_ID
from chat.publish import publish_after_commit
from chat.selectors import conversation_members
from chat.services import Accepted, clean_message_text, conversation_touch
from chat.versions import versions_keep, versions_rotate
from chat.voice import message_clips_drop
from companionhub.errors import AppError

log = structlog.get_logger(__name__)


def _lock_idle(user: User, conversation: Conversation) -> Conversation:
    """Lock the user's conversation; refuse while its turn is being answered."""
    if conversation.owner_id != user.pk:
        raise PermissionError("not the owner")  # callers look conversations up by owner
    conversation = turns.lock_conversation(conversation.pk)
    turns.refuse_while_answering(conversation)
    return conversation


def _message(conversation: Conversation, message_id: Any) -> Message:
    """A message of this conversation by id; any other id (another chat's, garbage) is not found."""
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 1 <= message_id <= MAX_ID:
        raise AppError("not_found", _("No such message."))
    message = Message.objects.filter(pk=message_id, conversation=conversation).first()
    if message is None:
        raise AppError("not_found", _("No such message."))
    return message


def _latest_reply(conversation: Conversation, message_id: Any) -> tuple[Message, Turn]:
    """The conversation's last message when it is a reply to a message of the user (and is
    ``message_id``, when given: a stale tab is refused), with that message's turn."""
    last = Message.objects.filter(conversation=conversation).order_by("-created_at", "-pk").first()
    if message_id is not None and (last is None or last.pk != message_id):
        _message(conversation, message_id)  # not found, or found but not the latest
        raise AppError(
            "not_latest",
            _("That is no longer the last reply (it changed in another tab): nothing was started."),
        )
    turn = turns.latest_turn(conversation.pk)
    if last is None or last.role != Message.Role.ASSISTANT or turn is None or turn.message_id > last.pk:
        raise AppError("nothing_to_regenerate", _("There is no reply to write again yet."))
    return last, turn


def _rewrite_latest_reply(
    user: User, conversation: Conversation, message_id: Any, *, continuing: bool
) -> Accepted:
    """Start the run that rewrites (or continues) the latest reply, by the companion that wrote it.

    Nobody else of that reply's turn answers after the rewrite.
    """
    admission = run_admit(user, want_image=False)
    with transaction.atomic():
        conversation = _lock_idle(user, conversation)
        reply, turn = _latest_reply(conversation, message_id)
        if continuing and reply.finish_reason != "length":
            raise AppError(
                "nothing_to_continue", _("Only a reply cut off at the length limit can be continued.")
            )
        members = {c.pk: c for c in conversation_members(conversation)}
        speaker = members.get(reply.sender_id) if reply.sender_id is not None else None
        if speaker is None:
            raise AppError("not_a_member", _("That companion has left the conversation."))
        fields: dict[str, Any]
        if continuing:
            fields = {"mode": PipelineRun.Mode.CONTINUE, "continue_from": len(reply.content)}
        else:
            kept = versions_keep(reply.alternatives, reply.content)
            fields = {"versions": len(kept) + 1}
            Message.objects.filter(pk=reply.pk).update(alternatives=kept, image=None)
        turns.turn_close(turn)
        turns.turn_reopen(turn)
        run = turns.start_reply_run(
            conversation,
            turn,
            speaker,
            want_image=False,
            admission=admission,
            reply=reply,
            announce="continue" if continuing else "regenerate",
            **fields,
        )
        conversation_touch(conversation.pk, owner_id=user.pk)  # a picture may have left the gallery link
    log.info(
        "reply_continue" if continuing else "reply_regenerate",
        conversation_id=conversation.pk,
        run_id=str(run.pk),
        message_id=reply.pk,
    )
    return Accepted(message=turn.message, run=run)


def message_regenerate(*, user: User, conversation: Conversation, message_id: Any = None) -> Accepted:
    """The companion that wrote the latest reply writes it again; the old text becomes a version.

    ``message_id`` (optional) names the reply the user meant; it must be the
    latest, so a stale page cannot rewrite an older one.
    """
    return _rewrite_latest_reply(user, conversation, message_id, continuing=False)


def message_continue(*, user: User, conversation: Conversation, message_id: Any = None) -> Accepted:
    """The latest reply, cut at the length limit, is carried on by the companion that wrote it."""
    return _rewrite_latest_reply(user, conversation, message_id, continuing=True)


def message_edit(
    *, user: User, conversation: Conversation, text: Any, message_id: Any = None, resend: bool | None = None
) -> Accepted | Message:
    """Correct a message, yours or a companion's, or change your last message and answer it afresh.

    ``message_id`` absent means your last message. ``resend`` defaults to
    True for your last message (what older clients' "edit" meant) and False
    for any other message, which is corrected in place: nothing is re-run, and
    every open tab gets ``message.updated``. Resending replaces the replies to
    that message (they go) with a new turn of the same companions.

    Returns ``Accepted`` when a run started, else the corrected message.
    """
    text = clean_message_text(text)
    last_mine = _last_user_message_id(conversation)
    target_id = last_mine if message_id is None else message_id
    if target_id is None:
        raise AppError("nothing_to_edit", _("There is no message of yours to edit."))
    if resend is None:
        resend = target_id == last_mine
    if resend:
        if message_id is not None and message_id != last_mine:
            raise AppError(
                "not_latest",
                _("That is no longer your last message (it changed in another tab): nothing was saved."),
            )
        return _edit_and_resend(user, conversation, text, target_id)
    with transaction.atomic():
        conversation = _lock_idle(user, conversation)
        message = _message(conversation, target_id)
        message.content, message.edited_at = text, timezone.now()
        Message.objects.filter(pk=message.pk).update(content=text, edited_at=message.edited_at)
        message_clips_drop(message.pk)  # its spoken clips say the old text
        publish_after_commit(
            conversation.pk, events.message_updated(message.pk, text, message.versions, edited=True)
        )
    log.info("message_corrected", conversation_id=conversation.pk, message_id=message.pk)
    return message


def _last_user_message_id(conversation: Conversation) -> int | None:
    return (
        Message.objects.filter(conversation=conversation, role=Message.Role.USER)
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )


def _edit_and_resend(user: User, conversation: Conversation, text: str, message_id: int) -> Accepted:
    admission = run_admit(user, want_image=False)
    with transaction.atomic():
        conversation = _lock_idle(user, conversation)
        message = _message(conversation, message_id)
        if message.pk != _last_user_message_id(conversation):
            raise AppError(
                "not_latest",
                _("That is no longer your last message (it changed in another tab): nothing was saved."),
            )
        members = conversation_members(conversation)
        if not members:
            raise AppError("no_companions", _("This conversation has no companions left. Add some first."))
        Message.objects.filter(pk=message.pk).update(content=text, edited_at=timezone.now())
        message.content = text
        # The replies to the old words go, and the runs that wrote them (their charges stay in
        # the usage ledger); the turn is answered again, named companions first.
        Message.objects.filter(conversation=conversation, created_at__gte=message.created_at).exclude(
            pk=message.pk
        ).delete()
        turn, _created = Turn.objects.get_or_create(conversation=conversation, message=message)
        turn_index = Turn.objects.filter(conversation=conversation, created_at__lt=turn.created_at).count()
        PipelineRun.objects.filter(turn=turn).delete()
        turn.order = turns.plan_turn(
            [(c.pk, c.name) for c in members],
            text=text,
            turn_index=turn_index,
            replies_per_turn=conversation.replies_per_turn,
        )
        turn.status = Turn.Status.OPEN
        turn.save(update_fields=["order", "status"])
        first = next(c for c in members if c.pk == turn.order[0])
        run = turns.start_reply_run(
            conversation, turn, first, want_image=False, admission=admission, announce="edit"
        )
        conversation_touch(conversation.pk, owner_id=user.pk)
    log.info("message_edited", conversation_id=conversation.pk, run_id=str(run.pk), message_id=message.pk)
    return Accepted(message=message, run=run)


def message_delete(*, user: User, conversation: Conversation, message_id: Any) -> int:
    """Delete one message, the user's or a companion's; every open tab gets ``message.deleted``.

    The runs that answered a deleted message of the user go with it (its
    turn); a picture stays in the gallery.
    """
    with transaction.atomic():
        conversation = _lock_idle(user, conversation)
        message = _message(conversation, message_id)
        deleted_id = message.pk
        message.delete()
        conversation_touch(conversation.pk, owner_id=user.pk)
        publish_after_commit(conversation.pk, events.message_deleted(deleted_id))
    log.info("message_deleted", conversation_id=conversation.pk, message_id=deleted_id)
    return deleted_id


def message_show_alternative(*, user: User, conversation: Conversation, message_id: Any) -> Message:
    """Show the next version of a reply or of the greeting (they rotate; none is lost)."""
    with transaction.atomic():
        conversation = _lock_idle(user, conversation)
        message = _message(conversation, message_id)
        if not message.alternatives:
            raise AppError("no_alternatives", _("This message has only one version."))
        message.content, message.alternatives = versions_rotate(message.content, message.alternatives)
        Message.objects.filter(pk=message.pk).update(
            content=message.content, alternatives=message.alternatives
        )
        message_clips_drop(message.pk)  # they spoke the version now hidden
        publish_after_commit(
            conversation.pk, events.message_updated(message.pk, message.content, message.versions)
        )
    return message
