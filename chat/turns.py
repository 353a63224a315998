"""Turns: the user speaks, the chosen companions answer one after another.

A turn is a user's message and the companions it is owed, in order (one for
a one-to-one chat). Its first run starts when the message is stored; when a
run ends, ``turn_continue`` starts the next companion. A companion busy in
another conversation makes the run wait (``waiting``) until it is free:
one reply at a time per companion, because a reply moves its outfit,
location and action.

Who answers in a group: round-robin (turn ``n`` starts with member
``n % len(members)``), a companion named in the message first, at most
``replies_per_turn`` of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.models import User
from chat import events, steps
from chat.admission import RunAdmission
from chat.models import Conversation, Message, PipelineRun, Turn
from chat.publish import publish, publish_after_commit, publish_run_end_after_commit
from chat.runs import RunId, run_create, run_mark_cancelled, run_release_waiting, runs_with_companion
from chat.selectors import conversation_members
from companionhub.errors import AppError
from companions.models import Companion

log = structlog.get_logger(__name__)

# A turn whose last reply ended this recently, with companions still to answer, is still
# going (the next run is being made); after that it is treated as over, so a turn cut short
# by a crash never blocks the conversation.
TURN_GAP_SECONDS = 30


def start_pipeline(run_id: RunId, *, repaint: bool = False) -> None:
    """Send the run's chain of steps to the workers (call after commit): a reply's, or a
    picture painted again (the picture steps and ``finish``)."""
    steps.chain_for(str(run_id), picture_only=repaint).apply_async()


def named_first(text: str, names: Sequence[tuple[int, str]]) -> int | None:
    """The companion named earliest in ``text`` (whole word, any case), or None."""
    found: list[tuple[int, int]] = []
    for companion_id, name in names:
        match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags=re.IGNORECASE)
        if match:
            found.append((match.start(), companion_id))
    return min(found)[1] if found else None


def plan_turn(
    members: Sequence[tuple[int, str]], *, text: str, turn_index: int, replies_per_turn: int | None
) -> list[int]:
    """The companion ids that answer, in order (see the module docstring)."""
    if not members:
        return []
    start = turn_index % len(members)
    order = [companion_id for companion_id, _ in [*members[start:], *members[:start]]]
    named = named_first(text, members)
    if named is not None:
        order = [named, *(c for c in order if c != named)]
    count = len(members) if replies_per_turn is None else max(1, min(replies_per_turn, len(members)))
    return order[:count]


def lock_conversation(conversation_id: int) -> Conversation:
    """Lock the conversation row: sending, the next speaker, editing and cancelling take turns."""
    return Conversation.objects.select_for_update().get(pk=conversation_id)


def latest_turn(conversation_id: int) -> Turn | None:
    return Turn.objects.filter(conversation_id=conversation_id).order_by("-created_at", "-pk").first()


def turn_in_progress(conversation_id: int) -> bool:
    """A reply of the conversation is queued, waiting or being written, or its latest turn is
    between two speakers."""
    if PipelineRun.objects.filter(conversation_id=conversation_id, status__in=PipelineRun.LIVE).exists():
        return True
    turn = latest_turn(conversation_id)
    if turn is None or turn.status == Turn.Status.DONE:
        return False
    runs = PipelineRun.objects.filter(turn=turn)
    if runs.count() >= len(turn.order):
        return False
    last_end = runs.order_by("-finished_at").values_list("finished_at", flat=True).first()
    return last_end is not None and timezone.now() - last_end < timedelta(seconds=TURN_GAP_SECONDS)


def refuse_while_answering(conversation: Conversation) -> None:
    if turn_in_progress(conversation.pk):
        if conversation.is_group:
            raise AppError("busy", _("The companions are still answering. Wait a moment or stop the reply."))
        raise AppError("busy", _("Your companion is still answering. Wait a moment or stop the reply."))


def turn_close(turn: Turn) -> bool:
    """Nobody else answers ``turn``: cut its order to the companions that have; True if it was cut."""
    made = list(PipelineRun.objects.filter(turn=turn).values_list("companion_id", flat=True))
    if len(made) >= len(turn.order):
        return False
    Turn.objects.filter(pk=turn.pk).update(order=made)
    turn.order = made
    return True


def companion_is_busy(companion_id: int) -> bool:
    """Lock the companion row; True while a reply of it is queued or being written anywhere.

    The lock orders this check against the end of that run (``start_waiting_run`` takes it too).
    """
    # Only the lock is wanted: no columns (the card in ``config`` can be large).
    Companion.objects.select_for_update().filter(pk=companion_id).values_list("pk", flat=True).first()
    return PipelineRun.objects.filter(companion_id=companion_id, status__in=PipelineRun.ACTIVE).exists()


def start_reply_run(
    conversation: Conversation,
    turn: Turn,
    companion: Companion,
    *,
    want_image: bool,
    admission: RunAdmission | None = None,
    follows: PipelineRun | None = None,
    reply: Message | None = None,
    announce: str = "",
    versions: int | None = None,
    **run_fields: Any,
) -> PipelineRun:
    """Make the companion's run for ``turn``; start it after commit, or let it wait while the
    companion is busy elsewhere.

    The run that begins a turn (or a rewrite) needs the user's ``admission``;
    each next companion of the turn ``follows`` the run before it (see
    ``chat.runs.run_create``). ``reply``: an existing reply the run writes
    again or continues. ``announce`` (a turn kind) sends ``turn.started``
    first; every run sends ``turn.speaker``, so clients learn what the turn
    is and who speaks before the first words.
    """
    waiting = companion_is_busy(companion.pk)
    run = run_create(
        companion=companion,
        want_image=want_image,
        admission=admission,
        follows=follows,
        waiting=waiting,
        conversation=conversation,
        turn=turn,
        reply=reply,
        **run_fields,
    )
    reply_id = reply.pk if reply else None
    announced: list[Mapping[str, Any]] = []
    if announce:
        announced.append(
            events.turn_started(str(run.pk), announce, turn.message, reply_id=reply_id, versions=versions)
        )
    announced.append(events.turn_speaker(str(run.pk), companion.pk, companion.name, message_id=reply_id))

    def start() -> None:
        publish(conversation.pk, *announced)
        if not waiting:
            start_pipeline(run.pk, repaint=bool(run.analysis.get("repaint")))

    transaction.on_commit(start)
    if waiting:
        log.info("reply_waiting", run_id=str(run.pk), companion_id=companion.pk)
    return run


def start_waiting_run(companion_id: int) -> PipelineRun | None:
    """A reply of this companion ended: start the oldest reply that waited for it, if any.

    Called whenever a run ends for good (completed, failed, cancelled,
    reconciled). A waiting reply whose turn was stopped meanwhile was
    cancelled with it and is not started.
    """
    with transaction.atomic():
        if companion_is_busy(companion_id):
            return None
        run = (
            PipelineRun.objects.filter(companion_id=companion_id, status=PipelineRun.Status.WAITING)
            .order_by("created_at", "pk")
            .first()
        )
        if run is None or not run_release_waiting(run.pk):
            return None
        repaint = bool(run.analysis.get("repaint"))
        transaction.on_commit(lambda: start_pipeline(run.pk, repaint=repaint))
    log.info("reply_started_after_wait", run_id=str(run.pk), companion_id=companion_id)
    return run


def turn_continue(*, run_id: RunId) -> PipelineRun | None:
    """After a reply ended (completed or failed), start the next companion of its turn.

    Does nothing when another run of the conversation is live; marks the
    turn done and tells the clients (``turn.done``) when nobody is left, or
    when a newer message has started another turn since.
    """
    with transaction.atomic():
        run = PipelineRun.objects.only("conversation_id", "turn_id").get(pk=run_id)
        conversation = lock_conversation(run.conversation_id)
        if PipelineRun.objects.filter(conversation=conversation, status__in=PipelineRun.LIVE).exists():
            return None
        turn = latest_turn(conversation.pk)
        if turn is None or turn.pk != run.turn_id:
            # An older turn (a picture painted again): nobody else answers it; it is done.
            turn_finish(conversation.pk, Turn.objects.get(pk=run.turn_id))
            return None
        answered = set(PipelineRun.objects.filter(turn=turn).values_list("companion_id", flat=True))
        members = {c.pk: c for c in conversation_members(conversation)}
        upcoming = [cid for cid in turn.order if cid not in answered and cid in members]
        if upcoming:
            return start_reply_run(conversation, turn, members[upcoming[0]], want_image=False, follows=run)
        turn_finish(conversation.pk, turn)
        return None


def turn_finish(conversation_id: int, turn: Turn) -> None:
    """Mark the turn answered; every open tab gets ``turn.done`` once."""
    if Turn.objects.filter(pk=turn.pk).exclude(status=Turn.Status.DONE).update(status=Turn.Status.DONE):
        publish_after_commit(conversation_id, events.turn_done(turn.message_id))


def turn_reopen(turn: Turn) -> None:
    """A reply of ``turn`` is being written again: the turn is being answered until it ends."""
    Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.OPEN)
    turn.status = Turn.Status.OPEN


def turn_cancel(*, user: User, conversation: Conversation, run_id: RunId | None = None) -> int:
    """Stop the turn: cancel the reply being written (or waiting) and drop the companions still
    to answer. ``run_id``, when given, must be a run of this conversation (any other id is
    "not found"); the whole turn stops either way, which is what the stop button means.
    """
    if conversation.owner_id != user.pk:
        raise PermissionError("not the owner")
    with transaction.atomic():
        conversation = lock_conversation(conversation.pk)
        if (
            run_id is not None
            and not PipelineRun.objects.filter(pk=run_id, conversation=conversation).exists()
        ):
            raise AppError("not_found", _("No such reply."))
        live = list(runs_with_companion().filter(conversation=conversation, status__in=PipelineRun.LIVE))
        cancelled = [run for run in live if run_mark_cancelled(run.pk)]
        turn = latest_turn(conversation.pk)
        cut = turn is not None and turn_close(turn)
        if not cancelled and not cut:
            raise AppError("not_running", _("That reply has already finished."))
        # Replies keep their is_complete: one still being written was opened incomplete
        # (ReplyWriter.open_reply) and its step stops at its next token batch; one that finished
        # (a cancel during the later analysis, state or picture steps), or whose step has not
        # reopened it yet (regenerate, continue, a picture painted again), is whole.
        for run in cancelled:  # nothing of a cancelled run reaches a socket after this
            stopped = {
                **events.error("cancelled", gettext_noop("Reply cancelled."), run_id=str(run.pk)),
                "companion_id": run.companion_id,
                "sender": run.companion.name,
            }
            publish_run_end_after_commit(conversation.pk, str(run.pk), stopped)
        if turn is not None:
            turn_finish(conversation.pk, turn)
    log.info("turn_cancelled", conversation_id=conversation.pk, runs=[str(r.pk) for r in cancelled])
    return len(cancelled)
