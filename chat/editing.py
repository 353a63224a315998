"""Changing the conversation after the fact: regenerate, edit, continue, delete, flip versions.

Writes like ``chat.services``: each checks ownership and that no reply is
being written, changes rows in one transaction, and starts a run or sends an
event only after commit. Regenerating keeps the old reply as an alternative
the user can flip back to; nothing the user wrote is lost except by delete.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction

from chat import events
from chat.models import Message, PipelineRun
from chat.services import (
    Accepted,
    ChatError,
    RunAdmission,
    clean_message_text,
    ensure_companion_idle,
    publish_after_commit,
    run_admit,
    run_create,
    start_after_commit,
)
from chat.versions import versions_keep, versions_rotate
from companionhub import pagecache
from companions.models import Companion

log = structlog.get_logger(__name__)


def _lock_idle(companion: Companion) -> None:
    """Lock the companion; refuse while a reply is being written."""
    ensure_companion_idle(companion.pk, name=companion.name)


def _check_meant(reply: Message | None, message_id: int | None) -> None:
    """``message_id`` (optional) names the reply the user meant; refuse unless it is still the last one."""
    if message_id is not None and (reply is None or reply.pk != message_id):
        raise ChatError(
            "not_latest", "That is no longer the last reply (it changed in another tab): nothing was started."
        )


def _last_messages(companion: Companion) -> tuple[Message | None, Message | None]:
    """(last user message, last assistant message after it or None)."""
    last_user = Message.objects.filter(companion=companion, role=Message.Role.USER).order_by(
        "-created_at", "-pk"
    )
    user_message = last_user.first()
    if user_message is None:
        return None, None
    reply = (
        Message.objects.filter(companion=companion, role=Message.Role.ASSISTANT, pk__gt=user_message.pk)
        .order_by("-pk")
        .first()
    )
    return user_message, reply


def _start(
    companion: Companion,
    kind: str,
    user_message: Message,
    reply: Message | None,
    *,
    admission: RunAdmission,
    versions: int | None = None,
    **fields: Any,
) -> PipelineRun:
    run = run_create(
        companion=companion,
        user_message=user_message,
        assistant_message=reply,
        want_image=False,
        admission=admission,
        **fields,
    )
    start_after_commit(run, kind, user_message, reply_id=reply.pk if reply else None, versions=versions)
    # Messages went or changed (last message time, a picture's message link).
    pagecache.user_pages_changed(companion.owner_id)
    return run


def message_regenerate(*, user, companion: Companion, message_id: int | None = None) -> Accepted:
    """Write the last reply again; the current text becomes an alternative.

    ``message_id``, when given, must be that last reply (a stale tab is refused).
    """
    admission = run_admit(user, want_image=False)
    with transaction.atomic():
        _lock_idle(companion)
        user_message, reply = _last_messages(companion)
        if user_message is None or reply is None:
            raise ChatError("nothing_to_regenerate", "There is no reply to write again yet.")
        _check_meant(reply, message_id)
        kept = versions_keep(reply.alternatives, reply.content)
        Message.objects.filter(pk=reply.pk).update(alternatives=kept, image=None)
        run = _start(
            companion, "regenerate", user_message, reply, admission=admission, versions=len(kept) + 1
        )
    log.info("reply_regenerate", companion_id=companion.pk, run_id=str(run.pk), message_id=reply.pk)
    return Accepted(message=user_message, run=run)


def message_edit_last(*, user, companion: Companion, text: Any, message_id: int | None = None) -> Accepted:
    """Change the last thing the user said and answer it afresh (the old answer goes).

    ``message_id``, when given, is the message the user meant: if another tab
    has said something since, the edit is refused rather than overwrite that.
    """
    text = clean_message_text(text)
    admission = run_admit(user, want_image=False)
    with transaction.atomic():
        _lock_idle(companion)
        user_message, _ = _last_messages(companion)
        if user_message is None:
            raise ChatError("nothing_to_edit", "There is no message of yours to edit.")
        if message_id is not None and message_id != user_message.pk:
            raise ChatError(
                "not_latest",
                "That is no longer your last message (it changed in another tab): nothing was saved.",
            )
        Message.objects.filter(pk=user_message.pk).update(content=text)
        user_message.content = text
        Message.objects.filter(companion=companion, pk__gt=user_message.pk).delete()
        run = _start(companion, "edit", user_message, None, admission=admission)
    log.info("message_edited", companion_id=companion.pk, run_id=str(run.pk), message_id=user_message.pk)
    return Accepted(message=user_message, run=run)


def message_continue(*, user, companion: Companion, message_id: int | None = None) -> Accepted:
    """Carry on a reply that stopped at the length limit (``message_id``: as for regenerate)."""
    admission = run_admit(user, want_image=False)
    with transaction.atomic():
        _lock_idle(companion)
        user_message, reply = _last_messages(companion)
        _check_meant(reply, message_id)
        if reply is None or reply.finish_reason != "length":
            raise ChatError(
                "nothing_to_continue", "Only a reply cut off at the length limit can be continued."
            )
        run = _start(
            companion,
            "continue",
            user_message,
            reply,
            admission=admission,
            mode=PipelineRun.Mode.CONTINUE,
            analysis={"continue_from": len(reply.content)},
        )
    log.info("reply_continue", companion_id=companion.pk, run_id=str(run.pk), message_id=reply.pk)
    return Accepted(message=user_message, run=run)


def _own_message(user, companion: Companion, message_id: Any) -> Message:
    try:
        message_id = int(message_id)
    except (TypeError, ValueError):
        raise ChatError("not_found", "No such message.") from None
    message = Message.objects.filter(pk=message_id, companion=companion, companion__owner=user).first()
    if message is None:
        raise ChatError("not_found", "No such message.")
    return message


def message_delete(*, user, companion: Companion, message_id: Any) -> int:
    """Delete one message (its picture row stays in the gallery)."""
    with transaction.atomic():
        _lock_idle(companion)
        message = _own_message(user, companion, message_id)
        deleted_id = message.pk
        message.delete()
        pagecache.user_pages_changed(companion.owner_id)
        publish_after_commit(companion.pk, events.message_deleted(deleted_id))
    log.info("message_deleted", companion_id=companion.pk, message_id=deleted_id)
    return deleted_id


def message_show_alternative(*, user, companion: Companion, message_id: Any) -> Message:
    """Show the next version of a regenerated reply (they rotate; none is lost)."""
    with transaction.atomic():
        _lock_idle(companion)
        message = _own_message(user, companion, message_id)
        if not message.alternatives:
            raise ChatError("no_alternatives", "This reply has only one version.")
        message.content, message.alternatives = versions_rotate(message.content, message.alternatives)
        Message.objects.filter(pk=message.pk).update(
            content=message.content, alternatives=message.alternatives
        )
        publish_after_commit(
            companion.pk, events.message_updated(message.pk, message.content, len(message.alternatives) + 1)
        )
    return message
