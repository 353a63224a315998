"""Deleting one message of a group chat: the user's or a companion's, with every open tab told.

The refusals it shares with writing a reply again (busy, ids of no message
of this group) are checked beside those in ``test_regenerate``.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat import editing
from chat.models import Message, PipelineRun, Turn
from tests.chat.factories import make_group
from tests.chat.frames import unnumbered
from tests.chat.test_group_regenerate import finished_turn, nothing_changed


@pytest.mark.django_db
def test_a_reply_goes_and_every_tab_is_told_after_commit(user, django_capture_on_commit_callbacks):
    group = make_group(user, "Mika", "Rin")
    said, first, last = finished_turn(group)
    with django_capture_on_commit_callbacks() as callbacks:
        assert editing.message_delete(user=user, conversation=group, message_id=first.pk) == first.pk
    assert list(Message.objects.filter(conversation=group).order_by("pk")) == [said, last]
    assert PipelineRun.objects.filter(conversation=group).count() == 2  # the run stays, for moderators
    assert PipelineRun.objects.filter(conversation=group, reply__isnull=True).count() == 1
    # "message.deleted" to every tab, and the pages' cache told, both after commit.
    assert len(callbacks) == 2


@pytest.mark.django_db
def test_the_users_message_goes_with_the_runs_that_answered_it(user):
    group = make_group(user, "Mika", "Rin")
    said, first, last = finished_turn(group)
    editing.message_delete(user=user, conversation=group, message_id=said.pk)
    assert list(Message.objects.filter(conversation=group).order_by("pk")) == [first, last]
    assert not PipelineRun.objects.filter(conversation=group).exists()
    assert not Turn.objects.filter(conversation=group).exists()


@pytest.mark.django_db(transaction=True)
async def test_over_the_socket_every_open_tab_drops_it(connect_group, user):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    said, *_ = await sync_to_async(finished_turn)(group)
    tab, other = await connect_group(group.pk, user=user), await connect_group(group.pk, user=user)
    await tab.send({"type": "message.delete", "message_id": said.pk})
    for client in (tab, other):
        assert unnumbered(await client.receive_until("message.deleted")) == {
            "type": "message.deleted",
            "message_id": said.pk,
        }
    assert not await sync_to_async(Message.objects.filter(pk=said.pk).exists)()


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
