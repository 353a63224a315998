"""Sending a message, retrying a failed reply, stopping a turn: the writes of a live chat.

Each checks ownership, changes rows in one transaction and starts runs or
sends events only after commit. One path for every conversation: a
one-to-one chat is a conversation whose turns are owed one reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from accounts.models import User
from chat import turns
from chat.admission import run_admit
from chat.language import translated
from chat.models import Conversation, Message, PipelineRun, Turn
from chat.runs import RunId, runs_with_companion
from chat.selectors import conversation_members
from companionhub import pagecache
from companionhub.errors import AppError
from companionhub.text import UNSTORABLE_MESSAGE, is_storable
from companions.selectors import companion_settings

log = structlog.get_logger(__name__)

Status = PipelineRun.Status


@dataclass(frozen=True)
class Accepted:
    message: Message  # the user's message being answered
    run: PipelineRun


def clean_message_text(text: Any) -> str:
    if not isinstance(text, str):
        raise AppError("invalid", _("The message must be text."))
    if not is_storable(text):  # a form can post a NUL; the database would refuse it
        raise AppError("invalid", translated(UNSTORABLE_MESSAGE))
    text = text.strip()
    if not text:
        raise AppError("empty", _("Type a message first."))
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise AppError(
            "too_long",
            _("Messages can be at most %(limit)s characters (this one has %(length)s).")
            % {
                "limit": number_format(limit, force_grouping=True),
                "length": number_format(len(text), force_grouping=True),
            },
        )
    return text


def conversation_touch(conversation_id: int, *, owner_id: int) -> None:
    """The conversation was active now: lists sort by it and show its last message."""
    Conversation.objects.filter(pk=conversation_id).update(updated_at=timezone.now())
    pagecache.user_pages_changed(owner_id)


def message_send(*, user: User, conversation: Conversation, text: Any, want_image: bool = False) -> Accepted:
    """Store the user's words and their turn, and start its first reply after commit.

    The message is saved before anything can fail downstream, so it is never
    lost. Refused while the conversation's last turn is being answered, and
    by the quota and rate limits (one message counts once, however many
    companions answer it).
    """
    if conversation.owner_id != user.pk:
        raise PermissionError("not the owner")  # callers look conversations up by owner
    text = clean_message_text(text)
    members = conversation_members(conversation)
    if not members:
        raise AppError("no_companions", _("This conversation has no companions left. Add some first."))
    if len(members) == 1 and companion_settings(members[0].pk)["image_mode"] == "every_reply":
        want_image = True
    admission = run_admit(user, want_image=bool(want_image))
    with transaction.atomic():
        conversation = turns.lock_conversation(conversation.pk)
        turns.refuse_while_answering(conversation)
        order = turns.plan_turn(
            [(c.pk, c.name) for c in members],
            text=text,
            turn_index=Turn.objects.filter(conversation=conversation).count(),
            replies_per_turn=conversation.replies_per_turn,
        )
        message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=text)
        turn = Turn.objects.create(conversation=conversation, message=message, order=order)
        first = next(c for c in members if c.pk == order[0])
        run = turns.start_reply_run(
            conversation, turn, first, want_image=bool(want_image), admission=admission, announce="send"
        )
        conversation_touch(conversation.pk, owner_id=user.pk)
    log.info("message_accepted", conversation_id=conversation.pk, run_id=str(run.pk), order=order)
    return Accepted(message=message, run=run)


def run_get_for_user(user: User, conversation: Conversation, run_id: RunId) -> PipelineRun:
    """A run of this conversation of ``user``'s; ``AppError('not_found')`` for any other id."""
    run = (
        runs_with_companion()
        .select_related("turn__message")
        .filter(pk=run_id, conversation=conversation, conversation__owner=user)
        .first()
    )
    if run is None:
        raise AppError("not_found", _("No such reply."))
    return run


def run_cancel(*, user: User, conversation: Conversation, run_id: RunId | None = None) -> int:
    """Stop the reply being written and the companions still to answer (the stop button)."""
    return turns.turn_cancel(user=user, conversation=conversation, run_id=run_id)


def run_retry(*, user: User, conversation: Conversation, run_id: RunId) -> PipelineRun:
    """Start a fresh run for the same turn and companion; the failed attempt's partial reply goes."""
    old = run_get_for_user(user, conversation, run_id)
    if old.status not in (Status.FAILED, Status.CANCELLED):
        raise AppError("not_retryable", _("Only a failed or cancelled reply can be retried."))
    if old.analysis.get("repaint"):
        # A retry writes the reply afresh (its text goes): for a picture, paint it again instead.
        raise AppError("not_retryable", _("Use Paint again on the picture instead."))
    # A retry is a new run like any other: the same quota, message and picture limits.
    admission = run_admit(user, want_image=old.want_image)
    with transaction.atomic():
        conversation = turns.lock_conversation(conversation.pk)
        turns.refuse_while_answering(conversation)
        latest = PipelineRun.objects.filter(conversation=conversation).order_by("-created_at").first()
        if latest is None or latest.pk != old.pk:
            raise AppError("not_retryable", _("Only the latest reply can be retried."))
        if old.reply_id:
            Message.objects.filter(pk=old.reply_id).delete()
        turn = old.turn
        turns.turn_reopen(turn)
        run = turns.start_reply_run(
            conversation,
            turn,
            old.companion,
            want_image=old.want_image,
            admission=admission,
            announce="retry",
        )
        conversation_touch(conversation.pk, owner_id=user.pk)
    log.info("run_retried", old_run_id=str(old.pk), run_id=str(run.pk))
    return run
