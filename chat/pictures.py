"""What the user can do with one picture in the chat: paint it again, make it the header, delete it.

Writes like ``chat.services``: each takes the user and the companion the
caller already checked, finds the message among the companion's own (a
message of anyone else's companion is "not found", whatever its id), and
sends events only after commit. Both the websocket and the plain HTTP
views call these, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction

from chat import events
from chat.models import Message, PipelineRun
from chat.services import (
    ChatError,
    ensure_companion_idle,
    publish,
    publish_after_commit,
    run_admit,
    run_create,
)
from companionhub import pagecache, ratelimits
from companions.models import Companion, new_image_seed
from companions.selectors import LARGE_COLUMNS
from media.models import StoredImage

log = structlog.get_logger(__name__)


def picture_message_get(*, user, companion: Companion, message_id: Any) -> Message:
    """The companion's message ``message_id`` that shows a picture.

    ``not_found`` for an id that is no message of this companion of this user
    (another user's looks the same), ``not_a_picture`` for one without a picture.
    """
    try:
        message_id = int(message_id)
    except (TypeError, ValueError):
        raise ChatError("not_found", "No such message.") from None
    if not 0 < message_id < 2**63:
        raise ChatError("not_found", "No such message.")
    message = (
        Message.objects.select_related("image")
        .filter(pk=message_id, companion=companion, companion__owner=user)
        .first()
    )
    if message is None:
        raise ChatError("not_found", "No such message.")
    if message.image is None:
        raise ChatError("not_a_picture", "That message has no picture.")
    return message


def picture_paint_again(*, user, companion: Companion, message_id: Any) -> PipelineRun:
    """Paint the picture of one reply again: the same scene (its stored prompt), a new seed.

    A picture like any other: the same quota, message and picture limits
    (``run_admit``), refused while a reply is being written, and painted by
    the pipeline's image step. The old picture stays in the gallery.
    """
    picture_message_get(user=user, companion=companion, message_id=message_id)  # before counting
    admission = run_admit(user, want_image=True)
    with transaction.atomic():
        ensure_companion_idle(companion.pk, name=companion.name)
        message = picture_message_get(user=user, companion=companion, message_id=message_id)
        answered = (
            Message.objects.filter(companion=companion, role=Message.Role.USER, pk__lt=message.pk)
            .order_by("-pk")
            .first()
        )
        if answered is None:
            raise ChatError("not_a_picture", "Only a picture in a reply can be painted again.")
        order = {"seed": new_image_seed(), "image_id": str(message.image_id), "prompt": message.image.prompt}
        run = run_create(
            companion=companion,
            user_message=answered,
            assistant_message=message,
            want_image=True,
            admission=admission,
            analysis={"repaint": order},
        )
        event = events.turn_started(str(run.pk), "repaint", answered, reply_id=message.pk)
        transaction.on_commit(lambda: _start(companion.pk, run.pk, event))
    log.info("picture_paint_again", companion_id=companion.pk, run_id=str(run.pk), message_id=message.pk)
    return run


def _start(companion_id: int, run_id, event: dict) -> None:
    from chat import tasks

    publish(companion_id, event)
    # Only the picture and the finish: the reply and the scene stay as they are.
    tasks.picture_chain(str(run_id)).apply_async()


def picture_use_as_header(*, user, companion: Companion, message_id: Any) -> StoredImage:
    """Make a reply's picture the companion's header picture (a copy: deleting one keeps the other)."""
    from companions.services import companion_set_header
    from media.services import ImageRejected, image_read

    message = picture_message_get(user=user, companion=companion, message_id=message_id)
    _count_change(user)
    try:
        data = image_read(message.image)
    except FileNotFoundError:
        raise ChatError("not_a_picture", "That picture's file is gone.") from None
    with transaction.atomic():
        # Lock only the companion row (Postgres refuses FOR UPDATE across the outer join).
        locked = (
            Companion.objects.select_for_update(of=("self",))
            .select_related("header_image")
            .defer(*LARGE_COLUMNS)
            .get(pk=companion.pk)
        )
        try:
            header = companion_set_header(companion=locked, data=data)
        except ImageRejected as exc:
            raise ChatError("not_a_picture", exc.message) from exc
        publish_after_commit(companion.pk, events.companion_header(header.url))
    log.info("picture_use_as_header", companion_id=companion.pk, message_id=message.pk)
    return header


def picture_delete(*, user, companion: Companion, message_id: Any) -> int:
    """Delete a reply's picture: the row now, the file after commit; the message stays, without it."""
    from media.services import delete_image

    message = picture_message_get(user=user, companion=companion, message_id=message_id)
    _count_change(user)
    with transaction.atomic():
        image = StoredImage.objects.select_for_update().filter(pk=message.image_id).first()
        if image is not None:
            delete_image(image)  # messages showing it lose it (SET_NULL); the file goes on commit
        pagecache.user_pages_changed(companion.owner_id)
        publish_after_commit(companion.pk, events.picture_removed(message.pk))
    log.info("picture_deleted", companion_id=companion.pk, message_id=message.pk)
    return message.pk


def _count_change(user) -> None:
    """Header and delete count against the settings limit (painting has its own, in ``run_admit``)."""
    verdict = ratelimits.hit("settings_change", f"user:{user.pk}", record_label=user.username)
    if verdict.limited:
        raise ChatError(
            "rate_limited",
            f"Too many changes. Wait {verdict.retry_after} seconds.",
            retry_after=verdict.retry_after,
        )
