"""The websocket protocol's edges: who may connect, and frames that are wrong."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from accounts import tokens
from chat import events
from chat.models import Conversation, Message, PipelineRun
from tests.chat.factories import add_user_message, make_chat
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_owner_gets_a_snapshot(connect, companion, user):
    client = await connect(companion.pk, user=user)
    assert client.accepted
    snapshot = client.events[0]
    assert snapshot["companion"]["id"] == companion.pk
    assert snapshot["companion"]["name"] == "Mika"
    assert set(snapshot["companion"]["state"]) == {"outfit", "location", "action"}
    assert snapshot["run"] is None
    # The companion's chat, started with its greeting by this first visit.
    [chat] = await sync_to_async(list)(Conversation.objects.filter(owner=user))
    assert snapshot["conversation"] == {
        "id": chat.pk,
        "kind": "direct",
        "title": "",
        "companions": [snapshot["companion"]],
        "branched_from": None,
    }


async def test_anonymous_is_refused(connect, companion):
    client = await connect(companion.pk)
    assert not client.accepted
    assert client.close_code == events.CLOSE_UNAUTHENTICATED


async def test_another_users_companion_looks_missing(connect, companion, other_user):
    client = await connect(companion.pk, user=other_user)
    assert not client.accepted
    assert client.close_code == events.CLOSE_NOT_FOUND


async def test_a_missing_companion_is_refused_the_same_way(connect, user):
    client = await connect(987654, user=user)
    assert client.close_code == events.CLOSE_NOT_FOUND


async def test_a_foreign_origin_is_refused(connect, companion, user):
    client = await connect(companion.pk, user=user, origin=(b"origin", b"https://evil.example"))
    assert not client.accepted


async def test_an_api_token_authenticates(connect, companion, user):
    _, secret = await sync_to_async(tokens.token_create)(user=user, name="bot")
    client = await connect(companion.pk, token=secret)
    assert client.accepted


async def test_a_bad_token_never_falls_back_to_the_session(connect, companion, user):
    client = await connect(companion.pk, user=user, token="chk_wrong")
    assert client.close_code == events.CLOSE_UNAUTHENTICATED


async def test_revoking_a_token_closes_its_sockets(connect, companion, user):
    token, secret = await sync_to_async(tokens.token_create)(user=user, name="bot")
    client = await connect(companion.pk, token=secret)
    await sync_to_async(tokens.token_revoke)(user=user, token_id=token.pk)
    assert await client.receive_close() == events.CLOSE_SESSION_ENDED
    again = await connect(companion.pk, token=secret)
    assert again.close_code == events.CLOSE_UNAUTHENTICATED


async def test_a_token_for_another_user_cannot_open_my_companion(connect, companion, other_user):
    _, secret = await sync_to_async(tokens.token_create)(user=other_user, name="bot")
    client = await connect(companion.pk, token=secret)
    assert client.close_code == events.CLOSE_NOT_FOUND


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"no": "type"}', "bad_frame"),
        ('{"type": "launch.missiles"}', "unknown_type"),
        ('{"type": "message.send"}', "bad_frame"),
        ('{"type": "message.send", "content": 5}', "bad_frame"),
        ('{"type": "message.send", "content": "hi", "image": "yes"}', "bad_frame"),
        (json.dumps({"type": "message.send", "content": "hi", "client_id": "x" * 65}), "bad_frame"),
        ('{"type": "message.send", "content": "   "}', "empty"),
        (json.dumps({"type": "message.send", "content": "x" * 4001}), "too_long"),
        (json.dumps({"type": "message.send", "content": "x" * 70_000}), "frame_too_large"),
        ('{"type": "run.cancel"}', "bad_frame"),
        ('{"type": "run.cancel", "run_id": "not-a-uuid"}', "not_found"),
        ('{"type": "run.retry", "run_id": "00000000-0000-0000-0000-000000000000"}', "not_found"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_usable(connect, companion, user, frame, code):
    client = await connect(companion.pk, user=user)
    await client.send(frame)
    error = await client.receive()
    assert error["type"] == "error"
    assert error["code"] == code, error
    assert error["message"]
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"
    # Nothing was stored: the chat holds only the greeting it opened with, and no run was made.
    assert await sync_to_async(stored)() == ([("assistant", "Hey you!")], 0)


def stored():
    return list(Message.objects.values_list("role", "content")), PipelineRun.objects.count()


async def test_binary_frames_are_refused_politely(connect, companion, user):
    client = await connect(companion.pk, user=user)
    await client.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await client.receive())["code"] == "bad_frame"


async def test_a_run_of_another_companion_cannot_be_cancelled(connect, worker, use_fake_llm, companion, user):
    other = await sync_to_async(make_companion)(user, name="Other")
    use_fake_llm.token_delay = 0.05
    first = await connect(other.pk, user=user)
    await first.send({"type": "message.send", "content": "hi"})
    accepted = await first.receive_until("message.accepted")
    second = await connect(companion.pk, user=user)
    await second.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    assert (await second.receive_until("error"))["code"] == "not_found"
    await first.receive_until("done")


async def test_one_reply_at_a_time(connect, worker, use_fake_llm, companion, user):
    use_fake_llm.token_delay = 0.05
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "one"})
    await client.receive_until("message.accepted")
    await client.send({"type": "message.send", "content": "two"})
    busy = await client.receive_until("error")
    assert busy["code"] == "busy"
    await client.receive_until("done")
    contents = await sync_to_async(
        lambda: list(Message.objects.filter(role="user").values_list("content", flat=True))
    )()
    assert contents == ["one"]


async def test_an_idle_socket_stays_open(connect, companion, user, settings):
    """An idle consumer blocks on the layer; with redis-py 8's default read timeout it died after 5 s."""
    if not settings.REDIS_URL:
        pytest.skip("the in-memory layer has no socket timeout; this guards the Redis layer")
    client = await connect(companion.pk, user=user)
    await asyncio.sleep(6.5)
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


async def test_a_run_failed_by_the_reconciler_is_in_the_next_snapshot(connect, companion, user):
    """The user is told on their next connect: the snapshot carries the failed run and its reason."""
    from datetime import timedelta

    from django.utils import timezone

    from chat import pipeline

    def stuck_run() -> str:
        chat = make_chat(companion, greeting="Hey you!")
        message = add_user_message(chat, "lost")
        run = PipelineRun.objects.create(
            conversation=chat, turn=message.turn, companion=companion, status="running"
        )
        PipelineRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
        return str(run.pk)

    run_id = await sync_to_async(stuck_run)()
    assert await sync_to_async(pipeline.reconcile_stuck_runs)(older_than_seconds=600) == 1
    client = await connect(companion.pk, user=user)
    snapshot = client.events[0]
    assert snapshot["run"]["id"] == run_id
    assert snapshot["run"]["status"] == "failed"
    assert snapshot["run"]["error"]["code"] == "timed_out"
    assert "took too long" in snapshot["run"]["error"]["message"]
