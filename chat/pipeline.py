"""The steps of one chat turn, as plain functions of a run id.

Celery tasks (``chat.tasks``) call these and own retries; everything the
steps decide lives here so it can be tested directly. Each step claims the
run with a guarded update first: a cancelled or failed run makes the step
raise ``RunEnded`` and the chain stops.

Progress: each step's band is declared in ``chat.steps``; the step reports
its start when it claims the run and its end when it is done; ``finish``
reports ``steps.DONE_PROGRESS`` (100).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from typing import Any, NoReturn, cast

import structlog
from django.conf import settings
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.language import user_language
from accounts.models import User
from chat import events, leases, painting, prompts, reply_stream, runs, steps, tokens, turns, voice
from chat.admission import picture_admit
from chat.backends import BackendUnavailable, LLMChoice, image_for_companion, image_request, llm_for_companion
from chat.budget import PromptTooLarge
from chat.cancellable import Cancelled
from chat.errors import RunError
from chat.images import ImageBackendError
from chat.llm import Completion, LLMError, estimate_tokens, strip_template_debris
from chat.models import PipelineRun
from chat.publish import EventPublisher, TokenBatcher, forget_live_reply, live_reply
from chat.replies import ReplyWriter
from chat.runs import RunId
from chat.scene_analysis import current_scene, scene_analyze
from companionhub import pagecache
from companionhub.errors import AppError
from companionhub.json_merge import JSONMerge
from companions.config import effective_config
from companions.models import Companion
from companions.selectors import LARGE_COLUMNS
from media.imaging import ImageRejected
from media.services import store_image

log = structlog.get_logger(__name__)

# An answer with nothing to show is tried this many times before the run fails.
EMPTY_REPLY_TRIES = 2


class RunEnded(Exception):
    """The run was cancelled or failed elsewhere: stop quietly."""


class StepFailed(Exception):
    """A step could not do its work. ``retryable`` failures are retried by the task."""

    def __init__(self, code: str, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


# What a failed run tells the user, per code. Stored and sent in English (a worker has no
# user's language); marked so the consumer and the page translate them where they are shown.
USER_MESSAGES = {
    "auth": gettext_noop(
        "The AI service refused our credentials. An administrator needs to check the LLM settings."
    ),
    "bad_request": gettext_noop(
        "The AI service refused the request. An administrator needs to check the LLM settings."
    ),
    "rate_limited": gettext_noop("The AI service is busy right now. Please try again in a moment."),
    "timeout": gettext_noop("The AI service took too long to answer. Please try again."),
    "server": gettext_noop("The AI service had a problem. Please try again."),
    "connection": gettext_noop("The AI service could not be reached. Please try again."),
    "bad_response": gettext_noop("The AI service sent a reply we could not read. Please try again."),
    "incomplete": gettext_noop("The reply was cut off before it finished. Please try again."),
    "circuit_open": gettext_noop("The AI service is unavailable right now. Please try again in a minute."),
    "empty_reply": gettext_noop("The AI answered with nothing to show, twice. Please try again or rephrase."),
    "gave_up": gettext_noop("The reply failed several times. Please try again."),
    "unavailable": gettext_noop(
        "No AI service is set up for this companion. An administrator needs to add one."
    ),
    "timed_out": gettext_noop("The reply took too long and was stopped. Please try again."),
    "interrupted": gettext_noop(
        "The reply was interrupted because a server process stopped. Press Retry to write it again."
    ),
    "prompt_too_large": gettext_noop(
        "The character's text is too long for this AI model's context. Shorten the character's"
        " description or choose a model with a longer context."
    ),
}


# A picture step's failure, as the user hears it: the kind of failure (``kind``: its code),
# not what the picture service said (that goes to the log).
PICTURE_FAILED = gettext_noop("The picture could not be painted (%(kind)s).")


def _load(run_id: RunId) -> PipelineRun:
    """The run with its companion, owner and user message, but not the companion's large
    columns: only ``generate_reply`` needs the card, and it loads the row itself."""
    return (
        PipelineRun.objects.select_related("companion", "companion__owner", "turn__message", "conversation")
        .defer(*(f"companion__{column}" for column in LARGE_COLUMNS))
        .get(pk=run_id)
    )


def _claim(run_id: RunId, *, step: str, publisher: EventPublisher) -> None:
    progress = steps.get(step).start
    if not runs.run_claim_step(run_id, step=step, progress=progress, lease_until=leases.lease_until()):
        raise RunEnded
    publisher.send(events.progress(str(run_id), progress, step))


def _step_done(run_id: RunId, *, step: str, publisher: EventPublisher) -> None:
    progress = steps.get(step).end
    runs.run_set_progress(run_id, progress=progress, step=step)
    publisher.send(events.progress(str(run_id), progress, step))


@contextmanager
def _timed(run_id: RunId, step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        runs.run_step_ended(run_id, step=step, milliseconds=(time.perf_counter() - started) * 1000)


def _from_llm_error(exc: LLMError) -> StepFailed:
    return StepFailed(
        exc.code,
        USER_MESSAGES.get(exc.code, exc.message),
        retryable=exc.retryable,
        retry_after=exc.retry_after,
    )


def _analyze(run_id: RunId, companion: Companion, *, text: str, speaker: str) -> prompts.SceneState:
    """The scene after ``text`` (``chat.scene_analysis``); what the call cost is added to the
    run's usage. A cancel meanwhile abandons the call and ends the step (RunEnded)."""
    try:
        analysis = scene_analyze(companion, text=text, speaker=speaker, run_id=str(run_id))
    except Cancelled:
        raise RunEnded from None
    if (completion := analysis.completion) is not None:
        runs.run_add_usage(
            run_id,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            estimated=completion.usage_estimated,
        )
    return analysis.scene


def _paint_on_request(run_id: RunId, user: User, publisher: EventPublisher) -> None:
    """The user asked for a picture in words: paint one if the picture limit allows, as for a
    picture asked for with the frame's ``image``; otherwise say so, and the reply goes on."""
    try:
        with translation.override(user_language(user)):  # the refusal is for the user to read
            picture_admit(user)
    except AppError as refused:
        publisher.send(events.error("image_failed", refused.message, run_id=str(run_id)))
        return
    PipelineRun.objects.filter(pk=run_id).update(want_image=True)


def _save_analysis(run_id: RunId, key: str, scene: prompts.SceneState) -> None:
    PipelineRun.objects.filter(pk=run_id).update(analysis=JSONMerge("analysis", {key: asdict(scene)}))


# --- steps ---------------------------------------------------------------------


def analyze_context(run_id: RunId) -> None:
    run = _load(run_id)
    conversation = ReplyWriter(run)
    with conversation.publisher() as publisher, _timed(run_id, "analyze_context"):
        _claim(run_id, step="analyze_context", publisher=publisher)
        companion = run.companion
        scene = _analyze(
            run_id, companion, text=conversation.user_text(), speaker=companion.owner.name_for_companions
        )
        _save_analysis(run_id, "context", scene)
        if scene.wants_image and not run.want_image and conversation.may_paint_on_request():
            _paint_on_request(run_id, companion.owner, publisher)
        # The reply is written in the scene the user's message implies.
        Companion.objects.filter(pk=companion.pk).update(
            current_outfit=scene.outfit, current_location=scene.location, current_action=scene.action
        )
        pagecache.user_pages_changed(companion.owner_id)  # the list shows the scene
        _step_done(run_id, step="analyze_context", publisher=publisher)


def generate_reply(run_id: RunId) -> None:
    run = _load(run_id)
    conversation = ReplyWriter(run)
    with conversation.publisher() as publisher, _timed(run_id, "generate_reply"):
        _claim(run_id, step="generate_reply", publisher=publisher)
        attempts = _count_attempt(run_id)
        if attempts > settings.CHAT_MAX_RUN_ATTEMPTS:
            log.warning("run_gave_up", run_id=str(run_id), failures=attempts - 1)
            raise StepFailed("gave_up", USER_MESSAGES["gave_up"], retryable=False)
        # The prompt needs the whole card (personality, lorebook, ...) and the settings: the one
        # step that reads the config column.
        companion = (
            Companion.objects.select_related("owner").defer("header_image_legacy").get(pk=run.companion_id)
        )
        continuing = run.mode == PipelineRun.Mode.CONTINUE
        prefix = conversation.open_reply(keep_chars=(run.continue_from or 0) if continuing else 0)
        config = effective_config(companion.config)
        try:  # the companion's connection, model and preset (or the defaults)
            llm = llm_for_companion(companion.pk)
        except BackendUnavailable as exc:
            log.warning("llm_unavailable", run_id=str(run_id), error=str(exc))
            raise StepFailed("unavailable", USER_MESSAGES["unavailable"], retryable=False) from exc
        chat_messages = _assemble_prompt(
            run_id, conversation, companion, llm, config, continuing=prefix if continuing else None
        )
        _record_served_by(run_id, llm)
        breaker = llm.breaker
        if not breaker.allow():
            raise StepFailed("circuit_open", USER_MESSAGES["circuit_open"], retryable=False)
        batcher = TokenBatcher(publisher, str(run_id))
        batcher.start(prefix)
        run.attempts = attempts
        # Each sentence is spoken as soon as it is written (its own queue), when voice is on.
        speaker = voice.reply_voice(run, companion, continuing=continuing)
        avoid = () if continuing else tuple(conversation.earlier_versions())
        max_tokens = llm.max_tokens(int(config["max_reply_tokens"]))
        job = reply_stream.StreamJob(
            run_id=str(run_id),
            llm=llm,
            messages=chat_messages,
            # A preset's temperature and reply length win over the companion's own settings.
            max_tokens=max_tokens,
            temperature=llm.temperature(float(config["temperature"])),
            batcher=batcher,
            progress=lambda pieces: steps.get("generate_reply").within(pieces / max(max_tokens, 1)),
            save=lambda text, progress: _save_progress(run_id, conversation, text, progress),
            speaker=speaker,
            avoid=avoid,
        )
        try:
            result = reply_stream.stream_reply(job)
        except reply_stream.Stopped:
            conversation.checkpoint(batcher.text, complete=False)
            _record_partial_usage(run_id, chat_messages, streamed=batcher.text[len(prefix) :])
            raise RunEnded from None
        except LLMError as exc:
            breaker.record_failure()
            conversation.checkpoint(batcher.text, complete=False)
            _record_partial_usage(run_id, chat_messages, streamed=batcher.text[len(prefix) :])
            raise _from_llm_error(llm.scrub(exc)) from exc
        except RunEnded:
            _record_partial_usage(run_id, chat_messages, streamed=batcher.text[len(prefix) :])
            raise
        breaker.record_success()
        if not result.usage_estimated:  # the server's count teaches the estimate for this model
            tokens.learn_from_usage(
                llm.connection, llm.model, messages=chat_messages, prompt_tokens=result.prompt_tokens
            )
        continuation = strip_template_debris(result.text)
        text = (prefix + continuation).rstrip() if continuing else continuation.strip()
        text = conversation.clean_reply(text)
        if not (continuation if continuing else text).strip():
            _empty_reply(run_id, result)
        batcher.finish(text)  # every socket ends with exactly this text
        if batcher.refused:  # cancelled while the last words came
            conversation.checkpoint(text, complete=False)
            raise RunEnded
        if speaker is not None:  # the rest of the reply, tidied as the reply was
            speaker.finish(clean=lambda rest: strip_template_debris(rest).rstrip())
        conversation.save_reply(
            text,
            reasoning=result.reasoning,
            finish_reason=result.finish_reason or "",
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )
        runs.run_add_usage(  # added to what earlier, broken attempts and the analysis spent
            run_id,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            estimated=result.usage_estimated,
        )
        _step_done(run_id, step="generate_reply", publisher=publisher)
        log.info(
            "reply_generated",
            run_id=str(run_id),
            chars=len(text),
            batches=batcher.batches,
            completion_tokens=result.completion_tokens,
            finish_reason=result.finish_reason,
        )


def _context_length(llm: LLMChoice) -> int:
    if llm.connection is None:
        return int(settings.CHAT_DEFAULT_CONTEXT_TOKENS)
    return int(llm.connection.context_length or settings.CHAT_DEFAULT_CONTEXT_TOKENS)


def _assemble_prompt(
    run_id: RunId,
    conversation: ReplyWriter,
    companion: Companion,
    llm: LLMChoice,
    config: dict[str, Any],
    *,
    continuing: str | None,
) -> list[dict[str, str]]:
    """The messages for the LLM within the context's budget, kept as the run's prompt
    record; what the memory query's embedding cost is charged to the run."""
    counter = tokens.counter_for(llm.connection, llm.model)
    try:
        assembled = conversation.prompt(
            companion,
            user_name=companion.owner.name_for_companions,
            counter=counter,
            context_length=_context_length(llm),
            reserve=llm.max_tokens(int(config["max_reply_tokens"])),
            continuing=continuing,
        )
    except PromptTooLarge as exc:
        log.warning(
            "prompt_too_large", run_id=str(run_id), part=exc.part, needed=exc.needed, available=exc.available
        )
        raise StepFailed(
            RunError.PROMPT_TOO_LARGE, USER_MESSAGES[RunError.PROMPT_TOO_LARGE], retryable=False
        ) from exc
    if assembled.embedding_tokens:
        runs.run_add_usage(
            run_id, prompt_tokens=assembled.embedding_tokens, completion_tokens=0, estimated=False
        )
    conversation.record_prompt(assembled.record)
    log.info(
        "prompt_assembled",
        run_id=str(run_id),
        tokens=assembled.tokens,
        counter=assembled.record["counter"],
        dropped_upto_id=assembled.dropped_upto_id,
    )
    return assembled.messages


def _empty_reply(run_id: RunId, result: Completion) -> NoReturn:
    """An answer with nothing to show (empty, template debris only, or only reasoning) is not
    a reply, though the server called it finished: the step is tried once more, then the run
    fails. What the attempt cost is charged, as it was paid for upstream."""
    runs.run_add_usage(
        run_id,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        estimated=result.usage_estimated,
    )
    analysis = PipelineRun.objects.only("analysis").get(pk=run_id).analysis
    seen = int(analysis.get("empty_replies", 0)) + 1
    PipelineRun.objects.filter(pk=run_id).update(analysis={**analysis, "empty_replies": seen})
    log.warning("empty_reply", run_id=str(run_id), seen=seen, reasoning_chars=len(result.reasoning))
    raise StepFailed(
        RunError.EMPTY_REPLY, USER_MESSAGES[RunError.EMPTY_REPLY], retryable=seen < EMPTY_REPLY_TRIES
    )


def _record_partial_usage(run_id: RunId, chat_messages: list[dict], *, streamed: str) -> None:
    """Add an estimate of what a broken or cancelled stream cost to the run's usage.

    The server reports usage only at the end of a stream, so a reply cut
    short has none: estimate it from the prompt and the text that arrived.
    It is added, not set: a retried reply is charged every attempt that
    streamed. A request refused before any text (401, 429, a dead server)
    cost nothing upstream and leaves the run's counts as they are.
    """
    if not streamed:
        return
    prompt_chars = "".join(str(m.get("content") or "") for m in chat_messages)
    runs.run_add_usage(
        run_id,
        prompt_tokens=estimate_tokens(prompt_chars),
        completion_tokens=estimate_tokens(streamed),
        estimated=True,
    )


def _count_attempt(run_id: RunId) -> int:
    PipelineRun.objects.filter(pk=run_id).update(attempts=F("attempts") + 1)
    return PipelineRun.objects.values_list("attempts", flat=True).get(pk=run_id)


def _record_served_by(run_id: RunId, llm: LLMChoice) -> None:
    """Which connection and model write the reply: the usage row names them."""
    PipelineRun.objects.filter(pk=run_id).update(analysis=JSONMerge("analysis", {"served_by": llm.served_by}))


def _save_progress(run_id: RunId, conversation: ReplyWriter, text: str, progress: int) -> None:
    """The reply so far and the run's progress, to the database (every few seconds)."""
    conversation.checkpoint(text)
    runs.run_set_progress(run_id, progress=progress, step="generate_reply")


def reanalyze(run_id: RunId) -> None:
    run = _load(run_id)
    conversation = ReplyWriter(run)
    with conversation.publisher() as publisher, _timed(run_id, "reanalyze"):
        _claim(run_id, step="reanalyze", publisher=publisher)
        scene = _analyze(run_id, run.companion, text=conversation.reply_content(), speaker=run.companion.name)
        _save_analysis(run_id, "reply", scene)
        _step_done(run_id, step="reanalyze", publisher=publisher)


def update_state(run_id: RunId) -> bool:
    """Apply the final scene; return whether a picture should follow."""
    run = _load(run_id)
    with ReplyWriter(run).publisher() as publisher, _timed(run_id, "update_state"):
        _claim(run_id, step="update_state", publisher=publisher)
        scene = (
            run.analysis.get("reply") or run.analysis.get("context") or asdict(current_scene(run.companion))
        )
        Companion.objects.filter(pk=run.companion_id).update(
            current_outfit=scene["outfit"], current_location=scene["location"], current_action=scene["action"]
        )
        pagecache.user_pages_changed(run.companion.owner_id)
        publisher.send(events.state(str(run_id), scene["outfit"], scene["location"], scene["action"]))
        _step_done(run_id, step="update_state", publisher=publisher)
    return PipelineRun.objects.values_list("want_image", flat=True).get(pk=run_id)


def generate_image(run_id: RunId) -> None:
    """Paint the scene. Optional: a failure is reported and the turn still completes."""
    run = _load(run_id)
    conversation = ReplyWriter(run)
    with conversation.publisher() as publisher, _timed(run_id, "generate_image"):
        _claim(run_id, step="generate_image", publisher=publisher)
        reply = conversation.reply_image()
        if reply is None:
            return
        reply_id, existing = reply
        repaint = painting.repaint_of(run.analysis)  # "paint again": a new picture of the same scene
        if existing is not None and not (repaint and str(existing.pk) == repaint.get("image_id")):
            # A re-delivered task: the picture exists already (a repaint's is the one after the old).
            publisher.send(events.image(str(run_id), reply_id, existing.url))
            return
        companion = (
            Companion.objects.select_related("owner", "header_image")
            .defer(*LARGE_COLUMNS)
            .get(pk=run.companion_id)
        )
        prompt, negative = prompts.build_image_prompt(
            companion, user_appearance=companion.owner.appearance, scene_text=conversation.user_text()
        )
        if repaint and repaint.get("prompt"):
            prompt = repaint["prompt"]  # the scene of the picture painted again, not today's
        # The companion's seed and header reference keep its pictures alike; progress goes to the page.
        request = painting.request_for(companion, image_request(prompt, negative), repaint=repaint)
        on_progress = painting.ProgressReporter(conversation, str(run_id))
        painter = image_for_companion(companion.pk)  # the companion's image connection, or the default
        breaker = painter.breaker
        if not breaker.allow():
            raise StepFailed(
                "circuit_open", gettext_noop("The picture service is unavailable right now."), retryable=False
            )
        try:
            data = painter.client.generate(request, on_progress=on_progress)
        except ImageBackendError as exc:
            breaker.record_failure()
            # What the server said stays in the log (its key taken out); the user hears the kind of failure.
            log.warning(
                "image_backend_error", run_id=str(run_id), code=exc.code, detail=painter.scrub(exc).message
            )
            raise StepFailed(exc.code, PICTURE_FAILED, retryable=exc.retryable) from exc
        except BackendUnavailable as exc:
            breaker.record_failure()
            log.warning("image_unavailable", run_id=str(run_id), error=str(exc))
            raise StepFailed("unavailable", PICTURE_FAILED, retryable=True) from exc
        try:
            image = store_image(data, companion, "generated", prompt=prompt)
        except ImageRejected as exc:
            breaker.record_failure()
            log.warning("image_unusable", run_id=str(run_id), error=exc.message)
            raise StepFailed("bad_image", PICTURE_FAILED, retryable=True) from exc
        breaker.record_success()
        conversation.set_reply_image(image)
        pagecache.user_pages_changed(companion.owner_id)  # the gallery links the picture to it
        publisher.send(events.image(str(run_id), reply_id, image.url))


def image_failed(run_id: RunId, failure: StepFailed) -> None:
    """Tell the client the picture failed; the turn goes on to finish."""
    run = _load(run_id)
    log.warning("image_failed", run_id=str(run_id), code=failure.code, error=failure.message)
    # Sent, not stored: written in the owner's language, the kind of failure (its code) named.
    with translation.override(user_language(run.companion.owner)):
        text = _(failure.message)
        message = text % {"kind": failure.code} if "%(kind)s" in text else text
    with ReplyWriter(run).publisher() as publisher:
        publisher.send(events.error("image_failed", message, run_id=str(run_id)))


def finish(run_id: RunId) -> None:
    run = _load(run_id)
    conversation = ReplyWriter(run)
    with conversation.publisher() as publisher:
        if not runs.run_mark_completed(run_id):
            raise RunEnded
        run.refresh_from_db(fields=["prompt_tokens", "completion_tokens", "usage_estimated"])
        forget_live_reply(str(run_id))
        usage: events.Usage = {
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "estimated": run.usage_estimated,
        }
        length, reasoning, finish_reason = conversation.finished_reply()
        publisher.send(events.progress(str(run_id), steps.DONE_PROGRESS, steps.DONE))
        publisher.send(
            events.done(
                str(run_id),
                # The reply row exists by now: generate_reply made it, a repaint's run came with it.
                cast(int, conversation.reply_id),
                usage,
                finish_reason,
                reasoning=reasoning,
                length=length,
            )
        )
    log.info("run_completed", run_id=str(run_id), durations=run.step_durations, usage=usage)
    conversation.ended()  # the turn goes on with the next companion; a waiting reply may start


def ended(run_id: RunId) -> None:
    """The chain stopped because the run ended elsewhere (a cancel, the reconciler, or a
    re-delivered step of a run already finished): charge it, and let a group turn go on.

    A worker killed between completing a group reply and starting the next speaker
    leaves only this path to start it; starting the next speaker is safe to repeat.
    """
    runs.run_charge_ended(run_id)
    run = runs.runs_with_companion().filter(pk=run_id).first()
    if run is None:
        return
    if run.status != PipelineRun.Status.CANCELLED:
        turns.turn_continue(run_id=run.pk)  # a cancel stopped the whole turn
    turns.start_waiting_run(run.companion_id)


def run_gone(run_id: RunId) -> bool:
    """Is the run's row gone (its account or conversation deleted while a step ran)?"""
    return not PipelineRun.objects.filter(pk=run_id).exists()


def fail(run_id: RunId, failure: StepFailed) -> None:
    """A required step gave up: the run fails with a message the user can act on. The reply
    keeps the text its sockets were shown (the live reply in the relay), which a worker that
    died, or a stream that broke, may not have saved."""
    run = _load(run_id)
    conversation = ReplyWriter(run)
    if runs.run_mark_failed(run_id, code=failure.code, text=failure.message):
        shown = live_reply(str(run_id)) or ""
        if len(shown) > len(conversation.reply_content()):
            conversation.checkpoint(shown, complete=False)
        conversation.mark_reply_incomplete()
        forget_live_reply(str(run_id))
        with conversation.publisher() as publisher:  # nothing of the run goes out after it
            publisher.end_run(str(run_id), events.error(failure.code, failure.message, run_id=str(run_id)))
        conversation.ended()  # one companion's failure does not stop the others


def reconcile_stuck_runs(*, older_than_seconds: int) -> int:
    """Fail runs that have made no progress for too long (a lost task, a dead worker, or a reply
    that waited for its companion longer than any reply takes)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = PipelineRun.objects.filter(status__in=PipelineRun.LIVE, created_at__lt=cutoff).values_list(
        "pk", flat=True
    )
    count = 0
    for run_id in list(stuck):
        failure = StepFailed("timed_out", USER_MESSAGES["timed_out"], retryable=False)
        fail(run_id, failure)
        count += 1
    return count


def reconcile_lost_runs() -> int:
    """Fail the runs whose worker died mid-step (their lease ran out, ``chat.leases``), keeping
    the text their sockets had already shown; the user gets an error and *Retry*."""
    count = 0
    for run_id in leases.lost_runs():
        if not leases.claim_lost(run_id):  # another sweep is ending it
            continue
        log.warning("run_lost", run_id=run_id)
        fail(run_id, StepFailed(RunError.INTERRUPTED, USER_MESSAGES[RunError.INTERRUPTED], retryable=False))
        count += 1
    return count
