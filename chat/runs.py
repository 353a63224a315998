"""The run state machine: the only code that changes a run's status.

    queued ──claim──> running ──> completed
      │  ^                 └────> failed
      │  └── waiting (a group reply behind another reply of its companion)
      └──────────────> cancelled / failed (from queued, waiting or running)

Every move is a guarded update (``filter(status in expected).update(...)``):
zero rows changed means someone else moved the run first, and the caller
stops. That is what makes task retries, re-deliveries and a user's cancel
safe together. The database backs it with unique partial indexes: at most
one active (queued or running) run per companion and per conversation.

Charging lives here too, because it is part of ending a run: a run is
charged once, in the transaction that completes or fails it, or (cancelled
runs, and runs failed while their stream still went on) by the worker when
the chain stops.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import usage
from accounts.models import UsageTransaction
from chat.admission import RunAdmission
from chat.models import Message, PipelineRun
from companionhub import metrics
from companionhub.json_merge import JSONMerge
from companions.models import Companion
from companions.selectors import LARGE_COLUMNS

log = structlog.get_logger(__name__)

Status = PipelineRun.Status
RunId = UUID | str


def runs_with_companion() -> QuerySet[PipelineRun]:
    """Runs with their speaker (its name, owner, scene), not the companion's large columns."""
    return PipelineRun.objects.select_related("companion").defer(*(f"companion__{c}" for c in LARGE_COLUMNS))


def cancel_key(run_id: RunId) -> str:
    return f"chat:cancel:{run_id}"


def run_create(
    *,
    companion: Companion,
    want_image: bool,
    admission: RunAdmission | None = None,
    follows: PipelineRun | None = None,
    waiting: bool = False,
    **fields: Any,
) -> PipelineRun:
    """Make a run: the one place a run row is made.

    A run the user starts needs an unspent ``admission`` of the companion's
    owner. The next companion of a group turn ``follows`` the run before it
    instead: the turn was admitted, and counted once, when its first run was
    made, and only that first run may paint. Anything else is a programming
    error, not a refusal the user could act on. ``waiting``: the companion is
    busy elsewhere; the run starts when it is free (``run_release_waiting``).
    """
    if admission is not None:
        if admission.spent or admission.user_id != companion.owner_id:
            raise ValueError("a run needs an unspent admission of the companion's owner")
        if want_image and not admission.want_image:
            raise ValueError("a run that paints needs an admission that counted the picture")
        admission.spent = True
    elif follows is not None:
        turn = fields.get("turn")
        if turn is None or follows.turn_id != turn.pk or want_image:
            raise ValueError("only the next companion of the same turn follows a run")
    else:
        raise ValueError("a run needs an admission (run_admit) or the run of its turn it follows")
    status = Status.WAITING if waiting else Status.QUEUED
    return PipelineRun.objects.create(companion=companion, want_image=want_image, status=status, **fields)


def run_claim_step(run_id: RunId, *, step: str, progress: int, lease_until: datetime | None = None) -> bool:
    """Mark the run running at ``step`` (holding a lease until ``lease_until``, ``chat.leases``);
    False if it was cancelled or failed meanwhile."""
    fields: dict[str, Any] = {
        "status": Status.RUNNING,
        "step": step,
        "progress": progress,
        "started_at": Coalesce(F("started_at"), Value(timezone.now())),  # the first step's start stays
    }
    if lease_until is not None:
        fields["lease_expires_at"] = lease_until
    return bool(PipelineRun.objects.filter(pk=run_id, status__in=PipelineRun.ACTIVE).update(**fields))


def run_set_progress(run_id: RunId, *, progress: int, step: str) -> bool:
    return bool(
        PipelineRun.objects.filter(pk=run_id, status=Status.RUNNING).update(progress=progress, step=step)
    )


def run_step_ended(run_id: RunId, *, step: str, milliseconds: float) -> None:
    """A step of the run ended, however it ended: how long it took is kept, and its lease given
    back (the run now waits in the queue, or has ended)."""
    PipelineRun.objects.filter(pk=run_id).update(
        step_durations=JSONMerge("step_durations", {step: round(milliseconds, 1)}), lease_expires_at=None
    )
    metrics.observe_step_duration(step, milliseconds)


def run_add_usage(run_id: RunId, *, prompt_tokens: int, completion_tokens: int, estimated: bool) -> None:
    """Add one LLM call's tokens to the run's usage: every call is paid for upstream, so the run's
    charge is the sum of its analyses, its reply attempts and any broken stream."""
    if not (prompt_tokens or completion_tokens):
        return
    fields: dict[str, Any] = {
        "prompt_tokens": F("prompt_tokens") + prompt_tokens,
        "completion_tokens": F("completion_tokens") + completion_tokens,
    }
    if estimated:
        fields["usage_estimated"] = True
    PipelineRun.objects.filter(pk=run_id).update(**fields)


def run_release_waiting(run_id: RunId) -> bool:
    """A waiting run may start now: waiting -> queued (False if it ended meanwhile)."""
    return bool(PipelineRun.objects.filter(pk=run_id, status=Status.WAITING).update(status=Status.QUEUED))


def run_mark_cancelled(run_id: RunId) -> bool:
    """Cancel a queued, waiting or running run; False if it had already ended."""
    changed = PipelineRun.objects.filter(pk=run_id, status__in=PipelineRun.LIVE).update(
        status=Status.CANCELLED,
        finished_at=timezone.now(),
        error_code="cancelled",
        error_text="Cancelled by you.",
    )
    if changed:
        _flag_cancelled(run_id)  # the streaming loop polls this, not the database
        log.info("run_cancelled", run_id=str(run_id))
    return bool(changed)


def run_mark_failed(run_id: RunId, *, code: str, text: str) -> bool:
    """Fail the run and charge the tokens it recorded before failing, in one transaction."""
    with transaction.atomic():
        changed = PipelineRun.objects.filter(pk=run_id, status__in=PipelineRun.LIVE).update(
            status=Status.FAILED, error_code=code[:40], error_text=text, finished_at=timezone.now()
        )
        if changed:
            run = runs_with_companion().get(pk=run_id)
            if run.reply_id:
                Message.objects.filter(pk=run.reply_id).update(is_complete=False)
            _charge(run, prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens)
    if changed:
        # A run failed from outside (the reconciler) may still be streaming: stop it at its
        # next poll, or a group's next speaker would stream beside it.
        _flag_cancelled(run_id)
        log.warning("run_failed", run_id=str(run_id), code=code, error=text)
    return bool(changed)


def run_mark_completed(run_id: RunId) -> bool:
    """Complete the run and charge its tokens (user usage and companion total), in one transaction.

    The guarded status update makes a second call a no-op, so a retried or
    re-delivered ``finish`` never charges twice.
    """
    with transaction.atomic():
        changed = PipelineRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
            status=Status.COMPLETED, progress=100, step="done", finished_at=timezone.now()
        )
        if changed:
            run = runs_with_companion().get(pk=run_id)
            _charge(run, prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens)
    return bool(changed)


def run_charge_ended(run_id: RunId) -> bool:
    """Charge a run that ended elsewhere, once the worker has stopped working on it.

    A user's cancel ends the run at once, but the reply step learns of it
    only at its next poll, and only then knows how much it had streamed (the
    partial count it stores on the run). So cancelled runs are charged here,
    by the worker, when the chain stops; the same goes for a run failed by
    the reconciler while its stream was still going. A run is charged at
    most once either way.
    """
    with transaction.atomic():
        run = runs_with_companion().filter(pk=run_id).first()
        if run is None or run.status not in (Status.CANCELLED, Status.FAILED):
            return False
        if UsageTransaction.objects.filter(run_id=run.pk).exists():
            return False
        return _charge(run, prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens)


def run_charge_extra(
    run_id: RunId, *, kind: str, prompt_tokens: int, completion_tokens: int, served_by: str = ""
) -> bool:
    """Charge LLM work done for a finished run after it was charged (the memory work after a
    reply) to its companion's owner and the companion's total, without reopening the run:
    the run's own charge and status stay as they are. False when nothing was spent or the run
    is gone."""
    if not (prompt_tokens or completion_tokens):
        return False
    run = runs_with_companion().filter(pk=run_id).first()
    if run is None:
        return False
    charged = usage.usage_record_extra(
        user_id=run.companion.owner_id,
        companion_id=run.companion_id,
        companion_name=run.companion.name,
        kind=kind,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        served_by=served_by or str(run.analysis.get("served_by") or ""),
    )
    return charged is not None


def run_is_cancelled(run_id: RunId) -> bool:
    try:
        return bool(cache.get(cancel_key(run_id)))
    except Exception:  # Redis restarting: ask the database, which a cancel also updates
        return PipelineRun.objects.filter(pk=run_id, status__in=(Status.CANCELLED, Status.FAILED)).exists()


def _flag_cancelled(run_id: RunId) -> None:
    try:
        cache.set(cancel_key(run_id), 1, 3600)
    except Exception as exc:  # Redis down: the stream's own end finds the run ended in the database
        log.warning("cancel_flag_failed", run_id=str(run_id), error=type(exc).__name__)


def _charge(run: PipelineRun, *, prompt_tokens: int, completion_tokens: int) -> bool:
    """Write the run's usage. Failed and cancelled runs count too: tokens a reply streamed
    before it broke were spent upstream all the same. A run that cost nothing (refused
    before any text, cancelled while queued) leaves no row; a completed run always does.
    """
    images = _images_painted(run)
    if run.status != Status.COMPLETED and not (prompt_tokens or completion_tokens or images):
        return False
    charged = usage.usage_record_run(
        run_id=run.pk,
        user_id=run.companion.owner_id,
        companion_id=run.companion_id,
        companion_name=run.companion.name,
        status=run.status,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        image_count=images,
        served_by=str(run.analysis.get("served_by") or ""),
    )
    return charged is not None


def _images_painted(run: PipelineRun) -> int:
    """1 when this run painted the reply's picture (a continued reply may carry an older one)."""
    if not run.reply_id:
        return 0
    painted = Message.objects.filter(
        pk=run.reply_id, image__isnull=False, image__created_at__gte=run.created_at
    )
    return int(painted.exists())
