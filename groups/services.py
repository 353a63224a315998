"""Writes of group chats: create, edit and delete a group.

Membership is checked here as well as in the form: only the creator's own
companions can join, between ``MIN_COMPANIONS`` and ``MAX_COMPANIONS`` of
them, so a crafted POST or another caller cannot add someone else's companion.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from chat import events
from chat.models import PipelineRun
from chat.selectors import runs_with_companion
from chat.services import (
    ChatError,
    RunAdmission,
    clean_message_text,
    run_admit,
    run_create,
    run_mark_cancelled,
    start_pipeline,
)
from companionhub.text import validate_storable_text
from companions.models import Companion
from companions.selectors import companions_without_large_columns
from groups.models import MAX_COMPANIONS, MIN_COMPANIONS, GroupChat, GroupMessage
from groups.selectors import group_members
from groups.turns import plan_turn

log = structlog.get_logger(__name__)


def _members(user, companions: Iterable[Companion | int]) -> list[Companion]:
    ids = {c.pk if isinstance(c, Companion) else int(c) for c in companions}
    members = list(companions_without_large_columns().filter(owner=user, pk__in=ids).order_by("pk"))
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
    validate_storable_text(title)  # the form refuses a NUL too; other callers meet the same rule
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


@transaction.atomic
def group_delete(*, group: GroupChat) -> None:
    """Delete the group and its messages (the companions and their own chats stay).

    Refused while the companions are answering: deleting live runs would lose
    their usage charge. Stop the replies first.
    """
    group_id = group.pk
    lock_group(group_id)
    if turn_in_progress(group_id):
        raise ChatError(
            "busy", "The companions are still answering. Stop the replies, then delete the group."
        )
    group.delete()
    log.info("group_deleted", group_id=group_id)


# --- a turn: the user speaks, the chosen companions answer one after another -----------

# A turn whose last reply ended this recently, with companions still to answer, is
# still going (the next run is being created); after that it is treated as over, so a
# turn cut short by a crash never blocks the group.
TURN_GAP_SECONDS = 30


@dataclass(frozen=True)
class TurnStarted:
    message: GroupMessage
    run: PipelineRun


def lock_group(group_id: int) -> GroupChat:
    """Lock the group row: sending, the next speaker and cancelling take turns."""
    return GroupChat.objects.select_for_update().get(pk=group_id)


def latest_user_message(group_id: int) -> GroupMessage | None:
    return GroupMessage.objects.filter(group_id=group_id, is_bot=False).order_by("-created_at", "-pk").first()


def turn_in_progress(group_id: int) -> bool:
    if PipelineRun.objects.filter(group_id=group_id, status__in=PipelineRun.ACTIVE).exists():
        return True
    latest = latest_user_message(group_id)
    if latest is None:
        return False
    runs = PipelineRun.objects.filter(group_user_message=latest)
    if runs.count() >= len(latest.reply_order):
        return False
    last_end = runs.order_by("-finished_at").values_list("finished_at", flat=True).first()
    return last_end is not None and timezone.now() - last_end < timedelta(seconds=TURN_GAP_SECONDS)


def turn_close(message: GroupMessage) -> bool:
    """Nobody else answers ``message``: cut its order to the companions that have; True if it was cut."""
    made = list(PipelineRun.objects.filter(group_user_message=message).values_list("companion_id", flat=True))
    if len(made) >= len(message.reply_order):
        return False
    GroupMessage.objects.filter(pk=message.pk).update(reply_order=made)
    return True


# ``step`` of a group reply queued behind another reply of the same companion.
WAITING_STEP = "waiting"


def _companion_is_busy(companion_id: int) -> bool:
    """Lock the companion row; True while a reply of it is being written (one-to-one or another group).

    One run at a time per companion: two would both move its outfit,
    location and action. The lock orders this check against the end of that
    run (``start_waiting_run`` takes the same lock).
    """
    # Only the lock is wanted: no columns (the card in ``config`` can be large).
    Companion.objects.select_for_update().filter(pk=companion_id).values_list("pk", flat=True).first()
    active = PipelineRun.objects.filter(companion_id=companion_id, status__in=PipelineRun.ACTIVE)
    return active.exclude(status=PipelineRun.Status.QUEUED, step=WAITING_STEP).exists()


def start_reply_run(
    group: GroupChat,
    message: GroupMessage,
    companion: Companion,
    *,
    want_image: bool,
    admission: RunAdmission | None = None,
    follows: PipelineRun | None = None,
    reply: GroupMessage | None = None,
    announce: str = "",
    versions: int | None = None,
    **run_fields: Any,
) -> PipelineRun:
    """Create the companion's reply; start it after commit, or queue it while the companion is busy.

    The run that begins a turn (or a rewrite) needs the user's ``admission``
    (``run_admit``); each next companion of the turn ``follows`` the run
    before it (see ``chat.services.run_create``).
    ``reply``, when given, is an existing reply of the companion that the run
    writes again or continues (``run_fields`` set the mode) instead of a new one.
    ``announce`` (a turn kind: "send", "regenerate", "continue") is set on the
    run that begins a turn: every open tab gets ``turn.started`` first
    (with ``versions`` for a rewrite).
    """
    waiting = _companion_is_busy(companion.pk)
    run = run_create(
        companion=companion,
        want_image=want_image,
        admission=admission,
        follows=follows,
        group=group,
        group_user_message=message,
        group_reply=reply,
        step=WAITING_STEP if waiting else "",
        **run_fields,
    )
    speaker = events.turn_speaker(
        str(run.pk), companion.pk, companion.name, message_id=reply.pk if reply else None
    )

    # The clients learn what the turn is, then name the speaker, before the first words.
    announced = [speaker]
    if announce:
        reply_id = reply.pk if reply else None
        started = events.turn_started(str(run.pk), announce, message, reply_id=reply_id, versions=versions)
        announced.insert(0, started)

    def start() -> None:
        publish_to_group(group.pk, *announced)
        if not waiting:
            start_pipeline(run.pk)

    transaction.on_commit(start)
    if waiting:
        log.info("group_reply_waiting", run_id=str(run.pk), companion_id=companion.pk)
    return run


def start_waiting_run(companion_id: int) -> PipelineRun | None:
    """A reply of this companion ended: start the oldest group reply that waited for it, if any.

    Called by the pipeline whenever a run ends for good (completed, failed,
    cancelled, reconciled), one-to-one or group. A waiting reply whose turn
    was stopped meanwhile was cancelled with it and is not started.
    """
    with transaction.atomic():
        if _companion_is_busy(companion_id):
            return None
        run = (
            PipelineRun.objects.filter(
                companion_id=companion_id, status=PipelineRun.Status.QUEUED, step=WAITING_STEP
            )
            .order_by("created_at", "pk")
            .first()
        )
        if run is None:
            return None
        PipelineRun.objects.filter(pk=run.pk).update(step="")
        transaction.on_commit(lambda: start_pipeline(run.pk))
    log.info("group_reply_started_after_wait", run_id=str(run.pk), companion_id=companion_id)
    return run


def group_message_send(*, user, group: GroupChat, text: Any, want_image: bool = False) -> TurnStarted:
    """Store the user's words, pick who answers, and start the first of them after commit.

    Refused while the group's last turn is still being answered, with the same
    text limits and rate limits as a one-to-one chat (one message counts once,
    however many companions answer it).
    """
    if group.creator_id != user.pk:
        raise PermissionError("not the creator")  # callers look groups up by creator; belt and braces
    text = clean_message_text(text)
    admission = run_admit(user, want_image=bool(want_image))
    with transaction.atomic():
        group = lock_group(group.pk)
        if turn_in_progress(group.pk):
            raise ChatError("busy", "The companions are still answering. Wait a moment or stop the replies.")
        members = group_members(group)
        if not members:
            raise ChatError("no_companions", "This group has no companions left. Add some first.")
        turn_index = GroupMessage.objects.filter(group=group, is_bot=False).count()
        order = plan_turn(
            [(c.pk, c.name) for c in members],
            text=text,
            turn_index=turn_index,
            replies_per_turn=group.replies_per_turn,
        )
        message = GroupMessage.objects.create(group=group, content=text, reply_order=order)
        first = next(c for c in members if c.pk == order[0])
        run = start_reply_run(
            group, message, first, want_image=bool(want_image), admission=admission, announce="send"
        )
    log.info("group_message_accepted", group_id=group.pk, run_id=str(run.pk), order=order)
    return TurnStarted(message=message, run=run)


def group_turn_continue(*, run_id) -> PipelineRun | None:
    """After a reply ended (completed or failed), start the next companion of its turn.

    Called by the pipeline's ``finish``/``fail``. Does nothing when another
    run of the group is active, when the turn was cancelled (its order was
    cut), or when a newer message started another turn; tells the clients
    the turn is over when nobody is left.
    """
    with transaction.atomic():
        run = PipelineRun.objects.only("group_id", "group_user_message_id").get(pk=run_id)
        if run.group_id is None:
            return None
        group = lock_group(run.group_id)
        message = GroupMessage.objects.get(pk=run.group_user_message_id)
        if PipelineRun.objects.filter(group=group, status__in=PipelineRun.ACTIVE).exists():
            return None
        latest = latest_user_message(group.pk)
        if latest is None or latest.pk != message.pk:
            return None
        answered = set(
            PipelineRun.objects.filter(group_user_message=message).values_list("companion_id", flat=True)
        )
        members = {c.pk: c for c in group_members(group)}
        upcoming = [cid for cid in message.reply_order if cid not in answered and cid in members]
        if not upcoming:
            transaction.on_commit(lambda: publish_to_group(group.pk, events.turn_done(message.pk)))
            return None
        return start_reply_run(group, message, members[upcoming[0]], want_image=False, follows=run)


def group_turn_cancel(*, user, group: GroupChat, run_id=None) -> int:
    """Stop the turn: cancel the reply being written and drop the companions still to answer.

    ``run_id``, when given, must be one of this group's runs (any other id is
    "not found"); the whole turn stops either way, which is what the stop
    button means.
    """
    if group.creator_id != user.pk:
        raise PermissionError("not the creator")
    with transaction.atomic():
        group = lock_group(group.pk)
        if run_id is not None and not PipelineRun.objects.filter(pk=run_id, group=group).exists():
            raise ChatError("not_found", "No such reply.")
        active = list(runs_with_companion().filter(group=group, status__in=PipelineRun.ACTIVE))
        cancelled = [r for r in active if run_mark_cancelled(r.pk)]
        latest = latest_user_message(group.pk)
        cut = latest is not None and turn_close(latest)
        if not cancelled and not cut:
            raise ChatError("not_running", "The replies have already finished.")
        reply_ids = [r.group_reply_id for r in cancelled if r.group_reply_id]
        GroupMessage.objects.filter(pk__in=reply_ids).update(is_complete=False)
        for run in cancelled:
            error = {
                **events.error("cancelled", "Replies stopped.", run_id=str(run.pk)),
                "companion_id": run.companion_id,
                "sender": run.companion.name,
            }
            transaction.on_commit(lambda error=error: publish_to_group(group.pk, error))
        if latest is not None:
            transaction.on_commit(lambda: publish_to_group(group.pk, events.turn_done(latest.pk)))
    log.info("group_turn_cancelled", group_id=group.pk, runs=[str(r.pk) for r in cancelled])
    return len(cancelled)


def publish_to_group(group_id: int, *to_send: dict[str, Any]) -> None:
    """Send events, in order, to every socket of the group chat (best-effort)."""
    from chat.publish import EventPublisher

    with EventPublisher(group=events.group_chat_name(group_id)) as publisher:
        for event in to_send:
            publisher.send(event)
