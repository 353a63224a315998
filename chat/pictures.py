"""What the user can do with one picture in a conversation: paint it again, make it the header, delete it.

Writes like ``chat.services``: each takes the user and the conversation the
caller already checked, finds the message among the conversation's own (a
message of anyone else's is "not found", whatever its id), and sends events
only after commit. Both the websocket and the plain HTTP views call these,
so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import User
from chat import events, turns
from chat.admission import change_admit, run_admit
from chat.models import Conversation, Message, PipelineRun, Turn
from chat.paging import MAX_ID
from chat.publish import publish_after_commit
from companionhub import pagecache
from companionhub.errors import AppError
from companions.models import Companion, new_image_seed
from companions.selectors import LARGE_COLUMNS
from companions.services import companion_set_header
from media.models import StoredImage
from media.services import ImageRejected, delete_image, image_read

log = structlog.get_logger(__name__)


def picture_message_get(*, user: User, conversation: Conversation, message_id: Any) -> Message:
    """The conversation's message ``message_id`` that shows a picture.

    ``not_found`` for an id that is no message of this conversation of this
    user (another user's looks the same), ``not_a_picture`` for one without a picture.
    """
    try:
        message_id = int(message_id)
    except (TypeError, ValueError):
        raise AppError("not_found", _("No such message.")) from None
    if not 0 < message_id <= MAX_ID:
        raise AppError("not_found", _("No such message."))
    message = (
        Message.objects.select_related("image", "sender")
        .defer(*(f"sender__{c}" for c in LARGE_COLUMNS))
        .filter(pk=message_id, conversation=conversation, conversation__owner=user)
        .first()
    )
    if message is None:
        raise AppError("not_found", _("No such message."))
    if message.image is None:
        raise AppError("not_a_picture", _("That message has no picture."))
    return message


def picture_paint_again(*, user: User, conversation: Conversation, message_id: Any) -> PipelineRun:
    """Paint the picture of one reply again: the same scene (its stored prompt), a new seed.

    A picture like any other: the same quota, message and picture limits
    (``run_admit``), refused while a reply is being written, painted by the
    pipeline's image step by the companion that wrote the reply. The old
    picture stays in the gallery.
    """
    picture_message_get(user=user, conversation=conversation, message_id=message_id)  # before counting
    admission = run_admit(user, want_image=True)
    with transaction.atomic():
        conversation = turns.lock_conversation(conversation.pk)
        turns.refuse_while_answering(conversation)
        message = picture_message_get(user=user, conversation=conversation, message_id=message_id)
        turn = (
            Turn.objects.select_related("message")
            .filter(
                conversation=conversation,
                message__created_at__lte=message.created_at,
                message__pk__lt=message.pk,
            )
            .order_by("-message__created_at", "-message__pk")
            .first()
        )
        if turn is None or message.sender is None:
            raise AppError("not_a_picture", _("Only a picture in a reply can be painted again."))
        assert message.image is not None  # picture_message_get refuses a message without one
        turns.turn_reopen(turn)  # done again (turn.done) once the picture is painted
        order = {"seed": new_image_seed(), "image_id": str(message.image_id), "prompt": message.image.prompt}
        run = turns.start_reply_run(
            conversation,
            turn,
            message.sender,
            want_image=True,
            admission=admission,
            reply=message,
            announce="repaint",
            analysis={"repaint": order},
        )
    log.info(
        "picture_paint_again", conversation_id=conversation.pk, run_id=str(run.pk), message_id=message.pk
    )
    return run


def picture_use_as_header(*, user: User, conversation: Conversation, message_id: Any) -> StoredImage:
    """Make a reply's picture its companion's header picture (a copy: deleting one keeps the other)."""
    message = picture_message_get(user=user, conversation=conversation, message_id=message_id)
    if message.sender_id is None:
        raise AppError("not_a_picture", _("Only a companion's picture can be its header."))
    change_admit(user)
    assert message.image is not None  # picture_message_get refuses a message without one
    try:
        data = image_read(message.image)
    except FileNotFoundError:
        raise AppError("not_a_picture", _("That picture's file is gone.")) from None
    with transaction.atomic():
        # Lock only the companion row (Postgres refuses FOR UPDATE across the outer join).
        locked = (
            Companion.objects.select_for_update(of=("self",))
            .select_related("header_image")
            .defer(*LARGE_COLUMNS)
            .get(pk=message.sender_id)
        )
        try:
            header = companion_set_header(companion=locked, data=data)
        except ImageRejected as exc:
            raise AppError("not_a_picture", exc.message) from exc
        publish_after_commit(conversation.pk, events.companion_header(header.url, locked.pk))
    log.info("picture_use_as_header", companion_id=message.sender_id, message_id=message.pk)
    return header


def picture_delete(*, user: User, conversation: Conversation, message_id: Any) -> int:
    """Delete a reply's picture: the row now, the file after commit; the message stays, without it."""
    message = picture_message_get(user=user, conversation=conversation, message_id=message_id)
    change_admit(user)
    assert message.image_id is not None  # picture_message_get refuses a message without one
    with transaction.atomic():
        image = StoredImage.objects.select_for_update().filter(pk=message.image_id).first()
        if image is not None:
            delete_image(image)  # messages showing it lose it (SET_NULL); the file goes on commit
        pagecache.user_pages_changed(user.pk)
        publish_after_commit(conversation.pk, events.picture_removed(message.pk))
    log.info("picture_deleted", conversation_id=conversation.pk, message_id=message.pk)
    return message.pk
