"""A cancel that lands after the reply was written (during the later analysis, state or picture
steps) leaves the reply whole, and one during the reply's scene analysis abandons that LLM call."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection

from chat import pipeline, runs, services
from chat.admission import run_admit
from chat.models import Message, PipelineRun
from chat.replies import ReplyWriter
from tests.chat.factories import add_user_message, make_chat

Status = PipelineRun.Status
MARKER = "Lighthouse-7"


def running_reply(companion, *, text: str, finished: bool) -> PipelineRun:
    """A run whose reply step wrote ``text``: finished (the run now in ``reanalyze``) or not."""
    conversation = make_chat(companion)
    run = runs.run_create(
        companion=companion,
        want_image=False,
        admission=run_admit(conversation.owner, want_image=False),
        follows=None,
        waiting=False,
        conversation=conversation,
        turn=add_user_message(conversation, "Where are you?").turn,
    )
    assert runs.run_claim_step(run.pk, step="generate_reply", progress=30)
    writer = ReplyWriter(pipeline._load(run.pk))
    writer.open_reply()
    if finished:
        writer.save_reply(text, finish_reason="stop", prompt_tokens=5, completion_tokens=5)
        assert runs.run_claim_step(run.pk, step="reanalyze", progress=80)
    else:
        writer.checkpoint(text, complete=False)
    return PipelineRun.objects.get(pk=run.pk)


def is_complete(run: PipelineRun) -> bool:
    return Message.objects.values_list("is_complete", flat=True).get(pk=run.reply_id)


@pytest.mark.django_db
def test_a_cancel_after_the_reply_finished_leaves_it_complete(user, companion):
    run = running_reply(companion, text="All written.", finished=True)
    assert services.run_cancel(user=user, conversation=run.conversation, run_id=run.pk) == 1
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert is_complete(run)
    assert Message.objects.get(pk=run.reply_id).content == "All written."


@pytest.mark.django_db
def test_a_cancel_while_the_reply_is_written_leaves_it_incomplete(user, companion):
    run = running_reply(companion, text="Half wri", finished=False)
    assert services.run_cancel(user=user, conversation=run.conversation, run_id=run.pk) == 1
    assert not is_complete(run)


def _analysis_asked(fake) -> bool:
    return any(MARKER in json.dumps(request.get("json")) for request in list(fake.requests))


@pytest.mark.django_db(transaction=True)
def test_a_cancel_during_the_reply_analysis_abandons_its_llm_call(use_fake_llm, user, companion):
    # The analysis would be answered only after a minute: the step must not wait for it.
    use_fake_llm.answer_when(MARKER, '{"outfit": "coat", "location": "pier", "action": "waving"}', delay=60)
    run = running_reply(companion, text=f"I am at the {MARKER}.", finished=True)

    def cancel_once_asked() -> None:
        try:
            deadline = time.monotonic() + 10
            while not _analysis_asked(use_fake_llm) and time.monotonic() < deadline:
                time.sleep(0.02)
            services.run_cancel(user=user, conversation=run.conversation, run_id=run.pk)
        finally:
            connection.close()

    canceller = threading.Thread(target=cancel_once_asked)
    canceller.start()
    with pytest.raises(pipeline.RunEnded):
        pipeline.reanalyze(run.pk)  # under the fake's minute: the call was abandoned
    canceller.join(10)
    assert _analysis_asked(use_fake_llm)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert "reply" not in run.analysis  # the abandoned answer is never applied
    assert is_complete(run)


@pytest.mark.django_db
def test_an_analysis_of_a_cancelled_run_is_never_asked(use_fake_llm, user, companion):
    run = running_reply(companion, text=f"I am at the {MARKER}.", finished=True)
    runs.run_mark_cancelled(run.pk)
    with pytest.raises(pipeline.RunEnded):
        pipeline._analyze(run.pk, run.companion, text=f"at the {MARKER}", speaker="Mika")
    assert not _analysis_asked(use_fake_llm)
