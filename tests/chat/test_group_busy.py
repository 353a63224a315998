"""One run at a time per companion, one-to-one or in a group; a live run is never deleted.

A reply asked of a companion busy elsewhere waits (status "waiting") and
starts when the companion is free; the socket side is in test_group_turn_e2e.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import pipeline, runs, services, turns
from chat.conversations import companion_wipe_memory, conversation_delete
from chat.models import Conversation, Message, PipelineRun
from chat.selectors import conversation_members
from companionhub.errors import AppError
from tests.chat.factories import add_user_message, make_chat, make_group

pytestmark = pytest.mark.django_db


def group_run(group: Conversation, *, status: str = "running") -> PipelineRun:
    """The first member's run for a new message that every member is to answer."""
    members = conversation_members(group)
    said = add_user_message(group, "Hello", order=[c.pk for c in members])
    return PipelineRun.objects.create(conversation=group, turn=said.turn, companion=members[0], status=status)


def test_a_one_to_one_message_waits_while_the_companion_answers_in_a_group(
    user, django_capture_on_commit_callbacks, monkeypatch
):
    started = []
    monkeypatch.setattr(turns, "start_pipeline", lambda run_id, **_: started.append(run_id))
    group = make_group(user, "Mika", "Rin")
    busy = group_run(group)
    chat = make_chat(busy.companion)
    with django_capture_on_commit_callbacks(execute=True):
        accepted = services.message_send(user=user, conversation=chat, text="Are you there?")
    run = accepted.run
    assert (run.status, run.companion_id, run.conversation_id) == ("waiting", busy.companion_id, chat.pk)
    assert Message.objects.filter(conversation=chat, content="Are you there?").exists()  # stored at once
    assert started == []  # not started while the group reply is written

    # The group reply ends: the waiting reply is let go.
    PipelineRun.objects.filter(pk=busy.pk).update(status="completed", finished_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert turns.start_waiting_run(busy.companion_id).pk == run.pk
    run.refresh_from_db()
    assert run.status == "queued" and started == [run.pk]


def test_a_second_one_to_one_message_waits_for_the_waiting_reply(user):
    """A waiting reply is the chat's turn in progress: nothing else starts behind it."""
    group = make_group(user, "Mika", "Rin")
    busy = group_run(group)
    chat = make_chat(busy.companion)
    services.message_send(user=user, conversation=chat, text="Are you there?")
    with pytest.raises(AppError) as refused:
        services.message_send(user=user, conversation=chat, text="Hello?")
    assert refused.value.code == "busy"
    assert not Message.objects.filter(content="Hello?").exists()


def test_wiping_memory_is_refused_while_a_reply_is_written_and_keeps_group_runs(user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    with pytest.raises(AppError) as refused:
        companion_wipe_memory(companion=run.companion)
    assert refused.value.code == "busy"
    assert PipelineRun.objects.filter(pk=run.pk).exists()

    PipelineRun.objects.filter(pk=run.pk).update(status="completed")
    companion_wipe_memory(companion=run.companion)
    assert PipelineRun.objects.filter(pk=run.pk).exists()  # the group's history is the group's
    assert Conversation.objects.filter(pk=group.pk).exists()


def test_wiping_memory_from_the_page_during_a_reply_says_why(client, user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    client.force_login(user)
    response = client.post(f"/chat/{run.companion.pk}/wipe/", follow=True)
    assert "Mika is still replying" in response.content.decode()
    assert PipelineRun.objects.filter(pk=run.pk).exists()


def test_a_group_is_not_deleted_in_the_middle_of_a_turn(user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    with pytest.raises(AppError) as refused:
        conversation_delete(user=user, conversation=group)
    assert refused.value.code == "busy"
    assert Conversation.objects.filter(pk=group.pk).exists()
    PipelineRun.objects.filter(pk=run.pk).update(status="cancelled")
    conversation_delete(user=user, conversation=group)
    assert not Conversation.objects.filter(pk=group.pk).exists()


def test_a_redelivered_step_of_a_finished_group_reply_starts_the_next_speaker(
    user, django_capture_on_commit_callbacks, monkeypatch
):
    """A worker killed between completing a reply and starting the next speaker must not stall the turn."""
    started = []
    monkeypatch.setattr(turns, "start_pipeline", lambda run_id, **_: started.append(run_id))
    group = make_group(user, "Mika", "Rin")
    run = group_run(group, status="completed")
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.ended(str(run.pk))
    made = PipelineRun.objects.filter(conversation=group).order_by("created_at")
    assert [r.companion.name for r in made] == ["Mika", "Rin"]
    assert started == [made.last().pk]
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.ended(str(run.pk))  # re-delivered again: Rin is already on her way
    assert PipelineRun.objects.filter(conversation=group).count() == 2 and len(started) == 1


def test_a_run_failed_from_outside_tells_its_stream_to_stop(user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    assert not runs.run_is_cancelled(run.pk)
    runs.run_mark_failed(run.pk, code="timed_out", text="The reply took too long.")
    assert runs.run_is_cancelled(run.pk)


def test_a_message_between_two_speakers_waits_for_the_turn(user, django_capture_on_commit_callbacks):
    """The gap after one companion finished and before the next starts is still the turn."""
    group = make_group(user, "Mika", "Rin")
    run = group_run(group, status="completed")
    PipelineRun.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    run.turn.status = "open"
    run.turn.save()
    with pytest.raises(AppError) as refused:
        services.message_send(user=user, conversation=group, text="Rin? Your turn!")
    assert refused.value.code == "busy"

    # A turn whose next speaker never started (a crash) does not lock the group for ever.
    long_ago = timezone.now() - timedelta(seconds=turns.TURN_GAP_SECONDS + 1)
    PipelineRun.objects.filter(pk=run.pk).update(finished_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False):
        started = services.message_send(user=user, conversation=group, text="Anyone?")
    assert started.message.content == "Anyone?"
