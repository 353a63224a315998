"""The group socket: the same auth, limits and frame checks as the one-to-one chat, owner only."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from accounts import tokens
from chat import events
from chat.models import Message
from tests.chat.factories import make_group

pytestmark = pytest.mark.django_db(transaction=True)


async def test_another_users_group_is_refused_before_accept(connect_group, group, other_user):
    client = await connect_group(group.pk, user=other_user)
    assert not client.accepted and client.close_code == events.CLOSE_NOT_FOUND


async def test_a_missing_group_and_no_sign_in_are_refused(connect_group, group, user):
    anonymous = await connect_group(group.pk)
    assert anonymous.close_code == events.CLOSE_UNAUTHENTICATED
    missing = await connect_group(group.pk + 1000, user=user)
    assert missing.close_code == events.CLOSE_NOT_FOUND


async def test_an_api_token_connects_like_the_browser(connect_group, group, user):
    _, secret = await sync_to_async(tokens.token_create)(user=user, name="bot")
    client = await connect_group(group.pk, token=secret)
    assert client.accepted
    snapshot = client.events[0]
    assert snapshot["type"] == "group.snapshot" and snapshot["run"] is None and snapshot["speaking"] is None
    assert snapshot["group"]["title"] == "Beach crew"
    conversation = snapshot["conversation"]
    assert (conversation["id"], conversation["kind"], conversation["title"]) == (
        group.pk,
        "group",
        "Beach crew",
    )
    assert [c["name"] for c in conversation["companions"]] == ["Mika", "Rin", "Aya"]


async def test_a_foreign_origin_is_refused(connect_group, group, user):
    client = await connect_group(group.pk, user=user, origin=(b"origin", b"https://evil.example"))
    assert not client.accepted


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ('{"type": "nope"}', "unknown_type"),
        # Every frame works in a group now: these reach their service, which finds nothing.
        ('{"type": "message.edit", "content": "hi"}', "nothing_to_edit"),
        ('{"type": "message.edit", "content": "hi", "resend": "yes"}', "bad_frame"),
        ('{"type": "run.retry", "run_id": "x"}', "not_found"),
        ('{"type": "run.retry", "run_id": "' + str(uuid.uuid4()) + '"}', "not_found"),
        ('{"type": "picture.delete", "message_id": 1}', "not_found"),
        ('{"type": "conversation.branch", "message_id": 1}', "not_found"),
        ('{"type": "message.delete", "message_id": 1}', "not_found"),  # no message 1 in a new group
        ('{"type": "message.send", "content": 5}', "bad_frame"),
        ('{"type": "message.send", "content": "hi", "image": "yes"}', "bad_frame"),
        ('{"type": "message.send", "content": "   "}', "empty"),
        ('{"type": "run.cancel"}', "bad_frame"),
        ('{"type": "run.cancel", "run_id": "nope"}', "not_found"),
        ('{"type": "run.cancel", "run_id": "' + str(uuid.uuid4()) + '"}', "not_found"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_survives(connect_group, group, user, frame, code):
    client = await connect_group(group.pk, user=user)
    await client.send(frame)
    error = await client.receive()
    assert error["type"] == "error" and error["code"] == code
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


async def test_text_over_the_limit_is_refused_and_not_stored(settings, connect_group, group, user):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.send", "content": "x" * 11})
    assert (await client.receive())["code"] == "too_long"
    assert not await sync_to_async(Message.objects.exists)()


async def test_cancelling_another_groups_run_is_not_found(worker, use_fake_llm, connect_group, group, user):
    other = await sync_to_async(make_group)(user, "Zed", "Yan", title="Other")
    use_fake_llm.token_delay = 0.05
    mine = await connect_group(other.pk, user=user)
    await mine.send({"type": "message.send", "content": "hi"})
    accepted = await mine.receive_until("message.accepted")
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    assert (await client.receive())["code"] == "not_found"
    await mine.receive_until("turn.done")


async def test_the_chat_rate_limit_counts_each_message_once(
    worker, use_fake_llm, rate_limits, connect_group, user
):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    client = await connect_group(group.pk, user=user)
    for n in range(2):  # the limit is 2 a minute; each message gets two replies
        await client.send({"type": "message.send", "content": f"m{n}"})
        await client.receive_until("turn.done")
    await client.send({"type": "message.send", "content": "one too many"})
    error = await client.receive_until("error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    assert not await sync_to_async(Message.objects.filter(content="one too many").exists)()


async def test_deactivation_closes_group_sockets_too(connect_group, group, user):
    from accounts.services import user_deactivate

    _, secret = await sync_to_async(tokens.token_create)(user=user, name="bot")
    browser = await connect_group(group.pk, user=user)
    program = await connect_group(group.pk, token=secret)
    await sync_to_async(user_deactivate)(user=user)
    for client in (browser, program):
        assert await client.receive_close() == events.CLOSE_SESSION_ENDED
