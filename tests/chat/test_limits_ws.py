"""Limits on the websocket: a refused message is not saved, the client is told, the socket stays open."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session

from accounts import tokens
from accounts.services import user_deactivate
from chat import events
from chat.models import Message
from tests.chat.factories import chat_of

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_message_over_the_limit_gets_an_error_frame(
    worker, use_fake_llm, rate_limits, connect, companion, user
):
    client = await connect(companion.pk, user=user)
    for n in range(2):
        await client.send({"type": "message.send", "content": f"m{n}"})
        await client.receive_until("turn.done")  # the turn's last event
    await client.send({"type": "message.send", "content": "one too many"})
    error = await client.receive_until("error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    assert not await sync_to_async(Message.objects.filter(content="one too many").exists)()
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


async def test_pictures_have_their_own_limit(
    worker, use_fake_llm, use_fake_sd, rate_limits, connect, companion, user
):
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "picture one", "image": True})
    await client.receive_until("done")
    await client.send({"type": "message.send", "content": "picture two", "image": True})
    error = await client.receive_until("error")
    assert error["code"] == "rate_limited" and "picture" in error["message"]
    assert not await sync_to_async(Message.objects.filter(content="picture two").exists)()


async def test_a_user_may_hold_only_so_many_sockets(settings, connect, companion, user):
    settings.WS_MAX_SOCKETS_PER_USER = 2
    first = await connect(companion.pk, user=user)
    second = await connect(companion.pk, user=user)
    third = await connect(companion.pk, user=user)
    assert first.accepted and second.accepted
    assert third.close_code == events.CLOSE_TOO_MANY_SOCKETS
    await second.close()
    fourth = await connect(companion.pk, user=user)
    assert fourth.accepted


async def test_deactivation_closes_sockets_sessions_and_tokens(connect, companion, user):
    _, secret = await sync_to_async(tokens.token_create)(user=user, name="bot")
    browser = await connect(companion.pk, user=user)
    program = await connect(companion.pk, token=secret)
    await sync_to_async(user_deactivate)(user=user)
    for client in (browser, program):
        assert await client.receive_close() == events.CLOSE_SESSION_ENDED
    assert await sync_to_async(Session.objects.count)() == 0
    again = await connect(companion.pk, token=secret)
    assert again.close_code == events.CLOSE_UNAUTHENTICATED


async def test_signing_out_closes_that_browsers_sockets_only(connect, companion, user):
    from django.test import Client

    from tests.chat.conftest import HOST, ORIGIN, ChatClient

    browser = Client()
    await sync_to_async(browser.force_login)(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    signed_out = ChatClient(companion.pk, [HOST, ORIGIN, (b"cookie", cookie)])
    assert (await signed_out.connect())[0]
    await signed_out.receive()  # snapshot
    elsewhere = await connect(companion.pk, user=user)  # another browser of the same user
    await sync_to_async(browser.post)("/accounts/logout/")
    assert await signed_out.receive_close() == events.CLOSE_SESSION_ENDED
    await elsewhere.send({"type": "ping"})
    assert (await elsewhere.receive())["type"] == "pong"
    await signed_out.close()


async def test_a_password_change_closes_open_sockets(connect, companion, user):
    from django.test import Client

    client = await connect(companion.pk, user=user)
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    response = await sync_to_async(browser.post)(
        "/accounts/password/",
        {
            "old_password": "correct-horse-battery-staple",
            "new_password1": "another-long-passphrase",
            "new_password2": "another-long-passphrase",
        },
    )
    assert response.status_code == 302
    assert await client.receive_close() == events.CLOSE_SESSION_ENDED


async def test_a_socket_closing_while_redis_is_away_still_leaves_the_relay(
    connect, companion, user, monkeypatch
):
    from django.core.cache import cache
    from redis.exceptions import ConnectionError as RedisConnectionError

    from companionhub import relay_reader

    client = await connect(companion.pk, user=user)
    reader = relay_reader.reader()
    topic = events.conversation_group((await sync_to_async(chat_of)(companion)).pk)
    assert reader.subscriptions.get(topic)

    async def redis_away(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting")

    monkeypatch.setattr(type(cache._connections[cache._alias]), "adecr", redis_away)
    await client.close()
    assert not reader.subscriptions.get(topic)  # the reader no longer sends to the closed socket
