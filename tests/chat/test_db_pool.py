"""No socket waits for another: consumers' database work runs on a pool (companionhub/db_async.py).

Measured as order, not time: three ``message.send`` frames are held inside the
service (blocked on an event) while another user's socket connects, gets its
snapshot, has a frame answered from the database and receives a conversation
event. Only then are the held sends let go. With one shared database thread
the first held send blocked everything else.
"""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import sync_to_async

from chat import conversations, services
from chat.publish import publish
from companionhub.errors import AppError
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db(transaction=True)

HELD = 3


async def test_sends_held_in_the_database_hold_no_other_socket(
    monkeypatch, connect, companion, user, other_user
):
    release = threading.Event()
    entered = threading.Semaphore(0)

    def held_send(**kwargs):
        entered.release()
        assert release.wait(30), "never released"
        raise AppError("busy", "held by the test")

    monkeypatch.setattr(services, "message_send", held_send)
    theirs = await sync_to_async(make_companion)(other_user, name="Rin")
    find_chat = sync_to_async(conversations.conversation_for_companion)
    their_chat = await find_chat(user=other_user, companion=theirs)
    senders = [await connect(companion.pk, user=user) for _ in range(HELD)]
    try:
        for n, sender in enumerate(senders):
            await sender.send({"type": "message.send", "content": f"hello {n}", "client_id": f"c{n}"})
        # Every held send is inside the service at once: they run side by side, not one after another.
        for _ in range(HELD):
            assert await sync_to_async(entered.acquire, thread_sensitive=False)(timeout=10)

        other = await connect(theirs.pk, user=other_user)  # the snapshot is read from the database
        assert other.accepted
        await other.send({"type": "message.delete", "message_id": 2**40})  # answered from the database
        assert (await other.receive())["code"] == "not_found"
        token = {"type": "token", "run_id": "r", "text": "Hi", "offset": 0}
        await sync_to_async(publish)(their_chat.pk, token)
        received = await other.receive()
        assert {key: received[key] for key in token} == token
        for sender in senders:
            assert await sender.nothing_more()  # still held
    finally:
        release.set()
    for sender in senders:
        assert (await sender.receive())["code"] == "busy"
