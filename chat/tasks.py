"""Celery tasks of the chat pipeline: thin wrappers that own retries.

Each task takes only the run id (JSON), calls one step of
``chat.pipeline`` and decides what a failure means:

* ``StepFailed(retryable=True)``: retry with exponential backoff (1 s, 2 s,
  4 s … capped at 10 s, with jitter; a server's Retry-After wins), at most
  ``MAX_RETRIES`` times;
* a required step that still fails marks the run failed and tells the user;
* an optional step (analysis, picture) degrades: the turn goes on;
* ``RunEnded`` (cancelled, or failed elsewhere) stops the chain quietly, and so does a
  run whose row was deleted under the step (its account or conversation went);
* ``chat.speak`` (a sentence of a reply, sent while it streams) is never retried either:
  a failure silences the rest of that reply's voice with one note (``chat.voice``);
* an after-step (``steps.AFTER_STEPS``, the memory work ``finish`` sends once the
  reply is done) is never retried and never fails anything: whatever goes wrong is
  logged, and the reply and its run stay as they are;
* anything else is a fault on our side (a bug, a lost database): logged with
  its traceback and treated as a failure of the step, so the user sees the
  error at once instead of a reply that says "writing…" until the stuck-run
  sweep. A lost database connection is retried like a flaky back end first.

Signatures are immutable (``.si``): a step never depends on the previous
step's return value, only on the run row.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import structlog
from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.signals import worker_ready
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, InterfaceError, OperationalError
from django.utils.translation import gettext_noop

from chat import leases, memory_steps, pipeline, steps, summaries, voice
from chat.pipeline import RunEnded, StepFailed
from companionhub import metrics, step_slots

log = structlog.get_logger(__name__)

MAX_RETRIES = 3
IMAGE_CRASHED = gettext_noop("The picture could not be painted because of a problem on our side.")
RETRY_AFTER_CAP = 60.0


def backoff_seconds(retries: int, retry_after: float | None = None) -> float:
    """1, 2, 4 … seconds (capped), plus up to 25 % jitter; a Retry-After header wins."""
    if retry_after:
        return min(float(retry_after), RETRY_AFTER_CAP, settings.CHAT_RETRY_BACKOFF_CAP * 6)
    delay = min(settings.CHAT_RETRY_BACKOFF_CAP, settings.CHAT_RETRY_BACKOFF_BASE * 2**retries)
    return delay + random.uniform(0, delay * 0.25)  # noqa: S311  (jitter, not security)


def _retry_or_raise(task: Task[Any, Any], failure: StepFailed) -> None:
    if failure.retryable and task.request.retries < MAX_RETRIES:
        countdown = backoff_seconds(task.request.retries, failure.retry_after)
        log.info(
            "step_retry", task=task.name, code=failure.code, retries=task.request.retries, countdown=countdown
        )
        raise task.retry(countdown=countdown, exc=failure, max_retries=MAX_RETRIES)


# Stored and sent in English, translated where shown (as pipeline.USER_MESSAGES).
UNEXPECTED_MESSAGES = {
    "internal": gettext_noop("Something went wrong on our side while writing the reply. Please try again."),
    "database": gettext_noop("The database was unavailable while writing the reply. Please try again."),
}


def _unexpected(task: Task[Any, Any], run_id: str, exc: Exception) -> StepFailed:
    """An exception no step expected, as a step failure (logged with its traceback)."""
    code = "database" if isinstance(exc, (OperationalError, InterfaceError)) else "internal"
    log.exception("step_crashed", task=task.name, run_id=str(run_id), code=code, error=type(exc).__name__)
    return StepFailed(code, UNEXPECTED_MESSAGES[code], retryable=code == "database")


def _run_gone(task: Task[Any, Any], run_id: str, exc: Exception) -> bool:
    """A step that failed because its rows were deleted under it (the account went, or the
    conversation): nothing is left to write to or tell, so the chain stops quietly."""
    if not isinstance(exc, (ObjectDoesNotExist, IntegrityError)) or not pipeline.run_gone(run_id):
        return False
    log.info("step_run_gone", task=task.name, run_id=str(run_id), error=type(exc).__name__)
    return True


def _required[T](
    task: Task[Any, Any], step: Callable[[str], T], run_id: str, *, take_lease: bool = False
) -> T:
    """Run a required step: ``take_lease`` for a step that does not claim the run (its claim
    takes the lease otherwise, ``chat.leases``)."""
    try:
        with step_slots.held(), leases.held(run_id, take=take_lease):
            return step(run_id)
    except RunEnded:
        pipeline.ended(run_id)
        raise Ignore() from None
    except StepFailed as failure:
        _retry_or_raise(task, failure)
        pipeline.fail(run_id, failure)
        raise Ignore() from None
    except Exception as exc:
        if _run_gone(task, run_id, exc):
            raise Ignore() from None
        crash = _unexpected(task, run_id, exc)
        _retry_or_raise(task, crash)
        pipeline.fail(run_id, crash)  # if this fails too, the stuck-run sweep ends the run
        raise Ignore() from None


@shared_task(bind=True, name="chat.analyze_context")
def analyze_context(self, run_id: str) -> None:
    _required(self, pipeline.analyze_context, run_id)


@shared_task(bind=True, name="chat.generate_reply")
def generate_reply(self, run_id: str) -> None:
    _required(self, pipeline.generate_reply, run_id)


@shared_task(bind=True, name="chat.reanalyze")
def reanalyze(self, run_id: str) -> None:
    _required(self, pipeline.reanalyze, run_id)


@shared_task(bind=True, name="chat.update_state")
def update_state(self, run_id: str) -> None:
    wants_image = _required(self, pipeline.update_state, run_id)
    # The picture runs on its own queue; a turn without one finishes right here
    # instead of queueing behind someone's minute-long picture.
    if wants_image:
        steps.chain_for(run_id, picture_only=True).apply_async()
    else:
        finish.delay(run_id)


@shared_task(bind=True, name="chat.generate_image")
def generate_image(self, run_id: str) -> None:
    try:
        with leases.held(run_id):
            pipeline.generate_image(run_id)
    except RunEnded:
        pipeline.ended(run_id)
        raise Ignore() from None
    except StepFailed as failure:
        _retry_or_raise(self, failure)
        pipeline.image_failed(run_id, failure)  # optional step: report and go on to finish
    except Exception as exc:
        if _run_gone(self, run_id, exc):
            raise Ignore() from None
        crash = _unexpected(self, run_id, exc)
        _retry_or_raise(self, crash)
        pipeline.image_failed(run_id, StepFailed(crash.code, IMAGE_CRASHED, retryable=False))


@shared_task(bind=True, name="chat.finish")
def finish(self, run_id: str) -> None:
    # A run that ended otherwise stops here (Ignore).
    _required(self, pipeline.finish, run_id, take_lease=True)
    # Completed, charged, and its ``done`` sent: the memory work follows on its own queue.
    for signature in steps.after_turn(run_id):
        try:
            signature.apply_async()
        except Exception as exc:  # a broker hiccup costs a memory, never the reply
            log.warning(
                "after_step_not_sent", task=signature.task, run_id=str(run_id), error=type(exc).__name__
            )


def _after_step(name: str, step: Callable[[str], object], run_id: str) -> None:
    """Run an after-step: every failure is logged, none goes further (the reply is done)."""
    started = time.perf_counter()
    try:
        step(run_id)
    except Exception as exc:
        if not pipeline.run_gone(run_id):
            log.exception("after_step_failed", step=name, run_id=str(run_id), error=type(exc).__name__)
    finally:
        metrics.observe_step_duration(name, (time.perf_counter() - started) * 1000)


@shared_task(name="chat.summarize")
def summarize(run_id: str) -> None:
    _after_step("summarize", summaries.summarize_after_turn, run_id)


@shared_task(name="chat.remember")
def remember(run_id: str) -> None:
    _after_step("remember", memory_steps.remember_after_turn, run_id)


@shared_task(name="chat.speak")
def speak(
    run_id: str | None, message_id: int, index: int, text: str, *, last: bool = False, attempt: int = 0
) -> None:
    """One sentence of a reply, spoken (``steps.SPEAK``, the ``voice`` queue). Never retried and
    never fails the reply: ``chat.voice.speak_sentence`` turns every failure into one note."""
    started = time.perf_counter()
    try:
        voice.speak_sentence(run_id, message_id, index, text, last=last, attempt=attempt)
    except Exception as exc:
        log.exception("speak_crashed", run_id=run_id, message_id=message_id, error=type(exc).__name__)
        with contextlib.suppress(Exception):  # the database may be what failed
            voice.speak_crashed(run_id, message_id)
    finally:
        metrics.observe_step_duration(steps.SPEAK.name, (time.perf_counter() - started) * 1000)


@shared_task(name="chat.reconcile_stuck_runs")
def reconcile_stuck_runs() -> int:
    return pipeline.reconcile_stuck_runs(older_than_seconds=settings.CHAT_STUCK_RUN_SECONDS)


@shared_task(name="chat.reconcile_lost_runs")
def reconcile_lost_runs() -> int:
    return pipeline.reconcile_lost_runs()


@worker_ready.connect
def _sweep_lost_runs_at_start(**kwargs: object) -> None:
    """A worker that starts (often one restarted after its predecessor died) ends the runs
    the dead one held at once, instead of at the next beat."""
    with contextlib.suppress(Exception):  # never stop a worker from starting
        reconcile_lost_runs.delay()
