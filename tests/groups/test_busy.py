"""One run at a time per companion, one-to-one or in a group; a live run is never deleted."""

from __future__ import annotations

import pytest

from chat import pipeline, services
from chat.models import Message, PipelineRun
from companions.services import companion_wipe_memory
from groups import services as group_services
from groups.models import GroupChat, GroupMessage
from tests.groups.factories import make_group

pytestmark = pytest.mark.django_db


def group_run(group: GroupChat, *, status: str = "running") -> PipelineRun:
    members = list(group.companions.order_by("pk"))
    said = GroupMessage.objects.create(group=group, content="Hello", reply_order=[c.pk for c in members])
    return PipelineRun.objects.create(
        companion=members[0], group=group, group_user_message=said, status=status
    )


def test_a_one_to_one_message_waits_while_the_companion_answers_in_a_group(user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    with pytest.raises(services.ChatError) as refused:
        services.send_message(user=user, companion=run.companion, text="Are you there?")
    assert refused.value.code == "busy"
    assert "group chat" in refused.value.message
    assert not Message.objects.filter(companion=run.companion).exists()


def test_wiping_memory_is_refused_while_a_reply_is_written_and_keeps_group_runs(user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    with pytest.raises(services.ChatError):
        companion_wipe_memory(companion=run.companion)
    assert PipelineRun.objects.filter(pk=run.pk).exists()

    PipelineRun.objects.filter(pk=run.pk).update(status="completed")
    companion_wipe_memory(companion=run.companion)
    assert PipelineRun.objects.filter(pk=run.pk).exists()  # the group's history is the group's


def test_wiping_memory_from_the_page_during_a_reply_says_why(client, user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    client.force_login(user)
    response = client.post(f"/companions/{run.companion.pk}/wipe/", follow=True)
    assert "answering in a group chat" in response.content.decode()
    assert PipelineRun.objects.filter(pk=run.pk).exists()


def test_a_group_is_not_deleted_in_the_middle_of_a_turn(user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    with pytest.raises(services.ChatError):
        group_services.group_delete(group=group)
    assert GroupChat.objects.filter(pk=group.pk).exists()
    PipelineRun.objects.filter(pk=run.pk).update(status="cancelled")
    group_services.group_delete(group=group)
    assert not GroupChat.objects.filter(pk=group.pk).exists()


def test_a_redelivered_step_of_a_finished_group_reply_starts_the_next_speaker(
    user, django_capture_on_commit_callbacks, monkeypatch
):
    """A worker killed between completing a reply and starting the next speaker must not stall the turn."""
    started = []
    monkeypatch.setattr(group_services, "start_pipeline", started.append)
    group = make_group(user, "Mika", "Rin")
    run = group_run(group, status="completed")
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.ended(str(run.pk))
    runs = PipelineRun.objects.filter(group=group).order_by("created_at")
    assert [r.companion.name for r in runs] == ["Mika", "Rin"]
    assert started == [runs.last().pk]


def test_a_run_failed_from_outside_tells_its_stream_to_stop(user):
    group = make_group(user, "Mika", "Rin")
    run = group_run(group)
    assert not services.run_is_cancelled(run.pk)
    services.run_mark_failed(run.pk, code="timed_out", text="The reply took too long.")
    assert services.run_is_cancelled(run.pk)


def test_a_message_between_two_speakers_waits_for_the_turn(user, django_capture_on_commit_callbacks):
    """The gap after one companion finished and before the next starts is still the turn."""
    from datetime import timedelta

    from django.utils import timezone

    group = make_group(user, "Mika", "Rin")
    run = group_run(group, status="completed")
    PipelineRun.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    with pytest.raises(services.ChatError) as refused:
        group_services.group_message_send(user=user, group=group, text="Rin? Your turn!")
    assert refused.value.code == "busy"

    # A turn whose next speaker never started (a crash) does not lock the group for ever.
    long_ago = timezone.now() - timedelta(seconds=group_services.TURN_GAP_SECONDS + 1)
    PipelineRun.objects.filter(pk=run.pk).update(finished_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False):
        started = group_services.group_message_send(user=user, group=group, text="Anyone?")
    assert started.message.content == "Anyone?"
