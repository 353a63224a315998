"""Writes of the chat: sending, cancelling, retrying, and the run's state machine.

A run moves queued -> running -> completed / failed / cancelled only through
guarded updates (``filter(status in expected).update(...)``): zero rows
changed means someone else moved it first, and the caller stops. That is what
makes task retries, re-deliveries and a user's cancel safe together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import usage
from accounts.models import UsageTransaction
from chat import events
from chat.models import Message, PipelineRun
from chat.selectors import runs_with_companion
from companionhub import metrics, pagecache, ratelimits
from companionhub.text import UNSTORABLE_MESSAGE, is_storable
from companions.models import Companion
from companions.selectors import companion_settings

log = structlog.get_logger(__name__)

Status = PipelineRun.Status


class ChatError(Exception):
    """A refusal the user can act on; ``code`` and ``message`` go to the client as is."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def cancel_key(run_id) -> str:
    return f"chat:cancel:{run_id}"


@dataclass(frozen=True)
class Accepted:
    message: Message
    run: PipelineRun


def clean_message_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ChatError("invalid", "The message must be text.")
    if not is_storable(text):  # a form can post a NUL; the database would refuse it
        raise ChatError("invalid", UNSTORABLE_MESSAGE)
    text = text.strip()
    if not text:
        raise ChatError("empty", "Type a message first.")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise ChatError(
            "too_long", f"Messages can be at most {limit:,} characters (this one has {len(text):,})."
        )
    return text


def send_message(*, user, companion: Companion, text: Any, want_image: bool = False) -> Accepted:
    """Store the user's words and a queued run in one transaction; start the chain on commit.

    The message is saved before anything can fail downstream, so it is never
    lost. Only one reply is produced at a time per companion.
    """
    if companion.owner_id != user.pk:
        raise PermissionError("not the owner")  # callers look companions up by owner; belt and braces
    text = clean_message_text(text)
    want_image = bool(want_image) or companion_settings(companion.pk)["image_mode"] == "every_reply"
    admission = run_admit(user, want_image=want_image)
    with transaction.atomic():
        # Lock the companion row so two tabs cannot both start a run.
        ensure_companion_idle(companion.pk, name=companion.name)
        message = Message.objects.create(companion=companion, role=Message.Role.USER, content=text)
        run = run_create(
            companion=companion, user_message=message, want_image=want_image, admission=admission
        )
        start_after_commit(run, "send", message)
        pagecache.user_pages_changed(companion.owner_id)  # "last message" on the companion list
    log.info(
        "chat_message_accepted", companion_id=companion.pk, run_id=str(run.pk), want_image=run.want_image
    )
    return Accepted(message=message, run=run)


def ensure_companion_idle(companion_id: int, *, name: str) -> None:
    """Lock the companion row and refuse while any run of it is active.

    One run at a time per companion, one-to-one or in a group: two would
    both move its outfit, location and action. A group reply is named as
    such, since the one-to-one page has nothing to show or cancel for it.
    """
    # Only the lock is wanted: no columns (the card in ``config`` can be large).
    Companion.objects.select_for_update().filter(pk=companion_id).values_list("pk", flat=True).first()
    active = PipelineRun.objects.filter(companion_id=companion_id, status__in=PipelineRun.ACTIVE)
    if active.filter(group__isnull=False).exists():
        raise ChatError("busy", f"{name} is answering in a group chat. Try again in a moment.")
    if active.exists():
        raise ChatError("busy", f"{name} is still replying. Wait a moment or cancel the reply.")


@dataclass(eq=False)
class RunAdmission:
    """Proof that a run the user starts passed the monthly quota and the rate limits.

    Made only by ``run_admit`` and spent by one ``run_create``; an admission
    without a picture cannot make a run that paints one. That is what keeps
    every way of starting a run (send, edit, regenerate, continue, retry, a
    group turn, the form) behind the same checks: there is no other way to
    make a run row (a test checks both).
    """

    user_id: int
    want_image: bool
    spent: bool = False


def run_admit(user, *, want_image: bool) -> RunAdmission:
    """Check that ``user`` may start a run now: the monthly quota, then the rate limits.

    Every way to start a run asks this before its transaction, so a refusal
    (``ChatError``: ``quota_exceeded`` or ``rate_limited``) stores nothing and
    the refusal's record for moderators is not rolled back with it. A run
    counts once against the chat message limit, and against the picture
    limit when it paints.
    """
    check_quota(user)
    _check_rate_limits(user, want_image=want_image)
    return RunAdmission(user_id=user.pk, want_image=bool(want_image))


def run_create(
    *,
    companion: Companion,
    want_image: bool,
    admission: RunAdmission | None = None,
    follows: PipelineRun | None = None,
    **fields: Any,
) -> PipelineRun:
    """Make a queued run: the one place a run row is made.

    A run the user starts needs an unspent ``admission`` of the companion's
    owner. The next companion of a group turn ``follows`` the run before it
    instead: the turn was admitted, and counted once, when its first run was
    made, and only that first run may paint. Anything else is a programming
    error, not a refusal the user could act on.
    """
    if admission is not None:
        if admission.spent or admission.user_id != companion.owner_id:
            raise ValueError("a run needs an unspent admission of the companion's owner")
        if want_image and not admission.want_image:
            raise ValueError("a run that paints needs an admission that counted the picture")
        admission.spent = True
    elif follows is not None:
        group, message = fields.get("group"), fields.get("group_user_message")
        if (
            follows.group_id is None
            or group is None
            or message is None
            or (follows.group_id, follows.group_user_message_id) != (group.pk, message.pk)
            or want_image
        ):
            raise ValueError("only the next companion of the same group turn follows a run")
    else:
        raise ValueError("a run needs an admission (run_admit) or the group run it follows")
    return PipelineRun.objects.create(companion=companion, want_image=want_image, **fields)


def check_quota(user) -> None:
    """Refuse to start a run once the user's monthly token quota is used up (nothing is stored).

    Checked before the rate limits, so a refused message does not count
    against them. ``run_admit`` calls this first.
    """
    summary = usage.usage_quota_exceeded(user)
    if summary is not None:
        raise ChatError(
            "quota_exceeded",
            f"You have used your {summary.quota:,} tokens for this month "
            f"({summary.tokens_this_period:,} so far). "
            f"The limit resets on {summary.resets_on.day} {summary.resets_on:%B %Y} (UTC).",
        )


def _check_rate_limits(user, *, want_image: bool) -> None:
    """Refuse before anything is stored: a limited message is not saved, and the client is told."""
    if want_image:
        _refuse_over_picture_limit(user)
    key = _limit_key(user)
    messages = ratelimits.hit("chat_message", key, record_label=user.username)
    if messages.limited:
        raise ChatError(
            "rate_limited",
            f"You are sending messages faster than we allow. Wait {_wait(messages.retry_after)}.",
            retry_after=messages.retry_after,
        )
    if want_image:
        ratelimits.hit("image", key, record_label=user.username)


def picture_admit(user) -> None:
    """Count a picture the user asked for in words (the analysis found it) against the picture
    limit, as one asked for with ``image``; ``ChatError('rate_limited')`` when over it."""
    _refuse_over_picture_limit(user)
    ratelimits.hit("image", _limit_key(user), record_label=user.username)


def _refuse_over_picture_limit(user) -> None:
    key = _limit_key(user)
    pictures = ratelimits.peek("image", key)
    if pictures.limited:
        ratelimits.hit("image", key, record_label=user.username)  # recorded for moderators
        raise ChatError(
            "rate_limited",
            "You have asked for many pictures. "
            f"Send without a picture, or wait {_wait(pictures.retry_after)}.",
            retry_after=pictures.retry_after,
        )


def _limit_key(user) -> str:
    return f"user:{user.pk}"


def _wait(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 90 else f"about {round(seconds / 60)} minutes"


def start_after_commit(
    run: PipelineRun,
    kind: str,
    user_message: Message,
    *,
    reply_id: int | None = None,
    versions: int | None = None,
) -> None:
    """After commit: tell every open tab what started (``turn.started``), then start the chain.

    In that order, so another tab, a phone, or a program on an API token
    hears of the run before any of its events and knows where they belong.
    """
    event = events.turn_started(str(run.pk), kind, user_message, reply_id=reply_id, versions=versions)

    def start() -> None:
        publish(run.companion_id, event)
        start_pipeline(run.pk)

    transaction.on_commit(start)


def start_pipeline(run_id) -> None:
    from chat.tasks import pipeline_chain

    run = PipelineRun.objects.only("want_image").get(pk=run_id)
    pipeline_chain(str(run_id), want_image=run.want_image).apply_async()


def run_get_for_user(user, run_id) -> PipelineRun:
    """The one-to-one run if ``user`` owns its companion; ``ChatError('not_found')`` otherwise."""
    run = runs_with_companion().filter(pk=run_id, companion__owner=user, group__isnull=True).first()
    if run is None:
        raise ChatError("not_found", "No such reply.")
    return run


def run_cancel(*, user, run_id) -> PipelineRun:
    run = run_get_for_user(user, run_id)
    if not run_mark_cancelled(run.pk):
        raise ChatError("not_running", "That reply has already finished.")
    if run.assistant_message_id and not run.analysis.get("repaint"):  # a repaint leaves the text whole
        Message.objects.filter(pk=run.assistant_message_id).update(is_complete=False)
    publish_after_commit(run.companion_id, events.error("cancelled", "Reply cancelled.", run_id=str(run.pk)))
    return run


def run_mark_cancelled(run_id) -> bool:
    """Cancel a queued or running run; False if it had already ended."""
    changed = PipelineRun.objects.filter(pk=run_id, status__in=PipelineRun.ACTIVE).update(
        status=Status.CANCELLED,
        finished_at=timezone.now(),
        error_code="cancelled",
        error_text="Cancelled by you.",
    )
    if changed:
        cache.set(cancel_key(run_id), 1, 3600)  # the streaming loop polls this, not the database
        log.info("run_cancelled", run_id=str(run_id))
    return bool(changed)


def run_retry(*, user, run_id) -> PipelineRun:
    """Start a fresh run for the same user message; the failed attempt's partial reply goes."""
    old = run_get_for_user(user, run_id)
    if old.status not in (Status.FAILED, Status.CANCELLED):
        raise ChatError("not_retryable", "Only a failed or cancelled reply can be retried.")
    if old.analysis.get("repaint"):
        # A retry writes the reply afresh (its text goes): for a picture, paint it again instead.
        raise ChatError("not_retryable", "Use Paint again on the picture instead.")
    # A retry is a new run like any other: the same quota, message and picture limits.
    admission = run_admit(user, want_image=old.want_image)
    with transaction.atomic():
        ensure_companion_idle(old.companion_id, name=old.companion.name)
        latest = (
            PipelineRun.objects.filter(companion_id=old.companion_id, group__isnull=True)
            .order_by("-created_at")
            .first()
        )
        if latest is None or latest.pk != old.pk:
            raise ChatError("not_retryable", "Only the latest reply can be retried.")
        if old.assistant_message_id:
            Message.objects.filter(pk=old.assistant_message_id).delete()
            pagecache.user_pages_changed(user.pk)
        run = run_create(
            companion=old.companion,
            user_message_id=old.user_message_id,
            want_image=old.want_image,
            admission=admission,
        )
        start_after_commit(run, "retry", old.user_message)
    log.info("run_retried", old_run_id=str(old.pk), run_id=str(run.pk))
    return run


# --- the state machine, used by the pipeline steps ----------------------------------


def run_claim_step(run_id, *, step: str, progress: int) -> bool:
    """Mark the run running at ``step``; False if it was cancelled or failed meanwhile."""
    now = timezone.now()
    changed = PipelineRun.objects.filter(pk=run_id, status__in=PipelineRun.ACTIVE).update(
        status=Status.RUNNING, step=step, progress=progress
    )
    if changed:
        PipelineRun.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=now)
    return bool(changed)


def run_set_progress(run_id, *, progress: int, step: str) -> bool:
    return bool(
        PipelineRun.objects.filter(pk=run_id, status=Status.RUNNING).update(progress=progress, step=step)
    )


def run_record_duration(run_id, *, step: str, milliseconds: float) -> None:
    run = PipelineRun.objects.only("step_durations").get(pk=run_id)
    durations = {**run.step_durations, step: round(milliseconds, 1)}
    PipelineRun.objects.filter(pk=run_id).update(step_durations=durations)
    metrics.observe_step_duration(step, milliseconds)


def run_mark_failed(run_id, *, code: str, text: str) -> bool:
    """Fail the run and charge the tokens it recorded before failing, in one transaction."""
    with transaction.atomic():
        changed = PipelineRun.objects.filter(pk=run_id, status__in=PipelineRun.ACTIVE).update(
            status=Status.FAILED, error_code=code[:40], error_text=text, finished_at=timezone.now()
        )
        if changed:
            run = PipelineRun.objects.only("assistant_message_id").get(pk=run_id)
            if run.assistant_message_id:
                Message.objects.filter(pk=run.assistant_message_id).update(is_complete=False)
            _charge_ended_run(run_id)
    if changed:
        # A run failed from outside (the reconciler) may still be streaming: stop it at its
        # next poll, or a group's next speaker would stream beside it.
        try:
            cache.set(cancel_key(run_id), 1, 3600)
        except Exception as exc:  # Redis down: the stream's own end will find the run failed
            log.warning("cancel_flag_failed", run_id=str(run_id), error=type(exc).__name__)
        log.warning("run_failed", run_id=str(run_id), code=code, error=text)
    return bool(changed)


def run_mark_completed(run_id, *, prompt_tokens: int, completion_tokens: int) -> bool:
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
            _charge(run, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return bool(changed)


def run_charge_ended(run_id) -> bool:
    """Charge a run that ended elsewhere, once the worker has stopped working on it.

    A user's cancel ends the run at once, but the reply step learns of it
    only at its next poll, and only then knows how much it had streamed (the
    partial count it stores on the run). So cancelled runs are charged here,
    by the worker, when the chain stops. The same goes for a run failed by
    the reconciler while its stream was still going. Completed and failed
    runs are otherwise charged in the transaction that ends them; a run is
    charged at most once either way.
    """
    with transaction.atomic():
        run = runs_with_companion().filter(pk=run_id).first()
        if run is None or run.status not in (Status.CANCELLED, Status.FAILED):
            return False
        if UsageTransaction.objects.filter(run_id=run.pk).exists():
            return False
        return _charge(run, prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens)


def _charge_ended_run(run_id) -> None:
    run = runs_with_companion().get(pk=run_id)
    _charge(run, prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens)


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
    if run.group_reply_id:
        from groups.models import GroupMessage  # groups builds on chat, not the other way round

        replies, reply_id = GroupMessage.objects, run.group_reply_id
    elif run.assistant_message_id:
        replies, reply_id = Message.objects, run.assistant_message_id
    else:
        return 0
    return int(
        replies.filter(pk=reply_id, image__isnull=False, image__created_at__gte=run.created_at).exists()
    )


def run_is_cancelled(run_id) -> bool:
    try:
        return bool(cache.get(cancel_key(run_id)))
    except Exception:  # Redis restarting: ask the database, which a cancel also updates
        return PipelineRun.objects.filter(pk=run_id, status__in=(Status.CANCELLED, Status.FAILED)).exists()


def publish(companion_id: int, event: dict[str, Any]) -> None:
    """Send one event to every socket of the companion's chat, now (best-effort)."""
    from chat.publish import EventPublisher

    with EventPublisher(companion_id) as publisher:
        publisher.send(event)


def publish_after_commit(companion_id: int, event: dict[str, Any]) -> None:
    """Send one event once the current transaction (if any) has committed."""
    transaction.on_commit(lambda: publish(companion_id, event))
