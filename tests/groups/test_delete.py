"""Deleting one message of a group chat: the user's or a companion's, with every open tab told."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import PipelineRun
from chat.services import ChatError
from groups import editing
from groups.models import GroupMessage
from tests.groups.factories import make_group
from tests.groups.test_regenerate import finished_turn, nothing_changed


@pytest.mark.django_db
def test_a_reply_goes_and_every_tab_is_told_after_commit(user, django_capture_on_commit_callbacks):
    group = make_group(user, "Mika", "Rin")
    said, first, last = finished_turn(group)
    with django_capture_on_commit_callbacks() as callbacks:
        assert editing.group_message_delete(user=user, group=group, message_id=first.pk) == first.pk
    assert list(GroupMessage.objects.filter(group=group).order_by("pk")) == [said, last]
    assert PipelineRun.objects.filter(group=group).count() == 2  # the run stays, for moderators
    assert PipelineRun.objects.filter(group=group, group_reply__isnull=True).count() == 1
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_the_users_message_goes_with_the_runs_that_answered_it(user):
    group = make_group(user, "Mika", "Rin")
    said, first, last = finished_turn(group)
    editing.group_message_delete(user=user, group=group, message_id=said.pk)
    assert list(GroupMessage.objects.filter(group=group).order_by("pk")) == [first, last]
    assert not PipelineRun.objects.filter(group=group).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["queued", "running"])
def test_refused_while_the_turn_is_answered(user, status):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group, status=status)
    with pytest.raises(ChatError) as refused:
        editing.group_message_delete(user=user, group=group, message_id=rows[1].pk)
    assert refused.value.code == "busy"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["1", 1.0, True, None, 0, -3, 2**70])
def test_an_id_that_is_no_message_of_the_group_is_not_found(user, bad):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group)
    with pytest.raises(ChatError) as refused:
        editing.group_message_delete(user=user, group=group, message_id=bad)
    assert refused.value.code == "not_found"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_a_message_of_another_group_is_not_found(user):
    mine, other = make_group(user, "Mika", "Rin"), make_group(user, "Aya", "Kai")
    rows = finished_turn(mine)
    theirs = finished_turn(other, replies=("Aya", "Kai"))
    with pytest.raises(ChatError) as refused:
        editing.group_message_delete(user=user, group=mine, message_id=theirs[1].pk)
    assert refused.value.code == "not_found"
    assert nothing_changed(mine, rows) and nothing_changed(other, theirs)


@pytest.mark.django_db(transaction=True)
async def test_over_the_socket_every_open_tab_drops_it(connect_group, user):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    said, *_ = await sync_to_async(finished_turn)(group)
    tab, other = await connect_group(group.pk, user=user), await connect_group(group.pk, user=user)
    await tab.send({"type": "message.delete", "message_id": said.pk})
    for client in (tab, other):
        assert await client.receive_until("message.deleted") == {
            "type": "message.deleted",
            "message_id": said.pk,
        }
    assert not await sync_to_async(GroupMessage.objects.filter(pk=said.pk).exists)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("message_id", "code"), [("abc", "bad_frame"), (True, "bad_frame"), (-5, "not_found")]
)
async def test_bad_delete_frames_get_an_error_and_the_socket_stays(connect_group, user, message_id, code):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    rows = await sync_to_async(finished_turn)(group)
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.delete", "message_id": message_id})
    assert (await client.receive_until("error"))["code"] == code
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"
    assert await sync_to_async(nothing_changed)(group, rows)
