"""A running step's lease (chat/leases.py) and the lost-run sweep (pipeline.reconcile_lost_runs)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from chat import leases, pipeline, runs
from chat.models import Message, PipelineRun
from chat.publish import EventPublisher, TokenBatcher, live_reply
from chat.tasks import reconcile_lost_runs
from companionhub.relay import relay_log
from tests.chat.factories import add_user_message, make_chat
from tests.companions.factories import make_companion, make_run

pytestmark = pytest.mark.django_db


def _running(user, **fields) -> PipelineRun:
    return make_run(make_companion(user), said="tell me", step="generate_reply", **fields)


def test_a_steps_claim_takes_the_lease_and_its_end_gives_it_back(user, settings):
    settings.CHAT_RUN_LEASE_SECONDS = 30
    run = _running(user)
    with leases.held(str(run.pk)):
        assert runs.run_claim_step(run.pk, step="reanalyze", progress=70, lease_until=leases.lease_until())
        run.refresh_from_db()
        assert run.lease_expires_at > timezone.now() + timedelta(seconds=20)
        assert leases.renew([str(run.pk)]) == 1
        runs.run_step_ended(run.pk, step="reanalyze", milliseconds=12.0)
        assert leases.renew([str(run.pk)]) == 0  # given back: the keeper cannot take it again
    run.refresh_from_db()
    assert run.lease_expires_at is None  # waiting in the queue between steps: no lease to lapse
    assert leases.lost_runs() == []


def test_every_step_of_a_turn_ends_with_its_lease_given_back(user):
    run = make_run(make_companion(user), said="tell me", step="analyze_context")
    PipelineRun.objects.filter(pk=run.pk).update(status="queued", lease_expires_at=None)
    steps = (pipeline.analyze_context, pipeline.generate_reply, pipeline.reanalyze, pipeline.update_state)
    for step in steps:
        with leases.held(str(run.pk)):
            step(run.pk)
        run.refresh_from_db()
        assert (run.status, run.lease_expires_at) == ("running", None), step.__name__
    assert set(run.step_durations) == {"analyze_context", "generate_reply", "reanalyze", "update_state"}


def test_finish_takes_its_own_lease_and_gives_it_back_if_it_fails(user, settings):
    settings.CHAT_RUN_LEASE_SECONDS = 30
    run = _running(user)
    with pytest.raises(RuntimeError), leases.held(str(run.pk), take=True):
        assert PipelineRun.objects.get(pk=run.pk).lease_expires_at > timezone.now()
        raise RuntimeError("the database went away")  # the step is retried later
    assert PipelineRun.objects.get(pk=run.pk).lease_expires_at is None


def test_a_lapsed_lease_fails_the_run_keeping_the_text_the_user_saw(user):
    run = make_run(make_companion(user), said="tell me", answer="Once upon", step="generate_reply")
    reply = Message.objects.get(pk=run.reply_id)
    PipelineRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    batcher = TokenBatcher(EventPublisher(run.conversation_id), str(run.pk))
    batcher.add("Once upon a time, far away")  # streamed and shown, not yet saved when the worker died
    batcher.flush()
    assert reconcile_lost_runs.apply().get() == 1
    run.refresh_from_db()
    reply.refresh_from_db()
    assert run.status == PipelineRun.Status.FAILED and run.error_code == "interrupted"
    assert "Retry" in run.error_text
    assert reply.content == "Once upon a time, far away" and not reply.is_complete
    assert live_reply(str(run.pk)) is None
    assert pipeline.reconcile_lost_runs() == 0  # a second sweep does nothing


def test_the_interrupted_run_tells_every_socket_and_nothing_of_it_follows(user):
    run = _running(user)
    topic = f"conversation.{run.conversation_id}"
    PipelineRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    before = relay_log().last_seq(topic)
    pipeline.reconcile_lost_runs()
    batcher = TokenBatcher(EventPublisher(run.conversation_id), str(run.pk))
    batcher.add("late words")  # a worker that was only slow, not dead
    batcher.flush()
    assert batcher.refused
    sent = [entry.event for entry in asyncio.run(relay_log().arange(topic, before))]
    assert [(event["type"], event.get("code")) for event in sent] == [("error", "interrupted")]


def test_a_run_still_holding_its_lease_is_left_alone(user, settings):
    settings.CHAT_RUN_LEASE_SECONDS = 30
    run = _running(user)
    with leases.held(str(run.pk)):
        assert pipeline.reconcile_lost_runs() == 0
    run.refresh_from_db()
    assert run.status == PipelineRun.Status.RUNNING


def running(owner, *, lease_ago: float | None) -> PipelineRun:
    companion = make_companion(owner)  # one live run per companion
    conversation = make_chat(companion)
    said = add_user_message(conversation, "Still answering?")
    expires = None if lease_ago is None else timezone.now() - timedelta(seconds=lease_ago)
    return PipelineRun.objects.create(
        conversation=conversation, turn=said.turn, companion=companion, status="running",
        lease_expires_at=expires,
    )  # fmt: skip


def test_a_run_whose_lease_ran_out_is_lost_and_one_held_or_waiting_is_not(user):
    lost = running(user, lease_ago=1)
    running(user, lease_ago=-10)  # held: its lease lies ahead
    running(user, lease_ago=None)  # between two steps, in the queue
    assert leases.lost_runs() == [str(lost.pk)]


def test_only_one_of_two_sweeps_claims_a_lost_run_and_its_claim_is_a_new_lease(user, settings):
    settings.CHAT_RUN_LEASE_SECONDS = 3
    lost = running(user, lease_ago=1)
    assert leases.claim_lost(str(lost.pk)) is True
    assert leases.claim_lost(str(lost.pk)) is False  # the other sweep, at the same time
    lost.refresh_from_db()
    assert lost.lease_expires_at > timezone.now()  # a sweep that died now leaves it to the next
    assert leases.lost_runs() == []
