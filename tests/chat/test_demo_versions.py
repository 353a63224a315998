"""The offline demo on a real worker: *Again* writes a new version, a story can be continued."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def reply_row(companion_id):
    return (
        Message.objects.filter(conversation__participants__companion_id=companion_id, role="assistant")
        .order_by("created_at", "pk")
        .last()
    )


async def turn(client, frame):
    await client.send(frame)
    await client.receive_until("message.accepted")
    return await client.receive_until("done")


async def test_again_with_the_demo_gives_a_different_version(worker, connect, companion, user):
    client = await connect(companion.pk, user=user)
    await turn(client, {"type": "message.send", "content": "Hi"})
    first = (await reply_row(companion.pk)).content
    await turn(client, {"type": "message.regenerate"})
    await turn(client, {"type": "message.regenerate"})
    reply = await reply_row(companion.pk)
    assert reply.versions == 3
    assert len({reply.content, *reply.alternatives}) == 3
    assert reply.alternatives[0] == first


async def test_a_demo_story_stops_at_the_limit_and_continues(worker, connect, companion, user):
    client = await connect(companion.pk, user=user)
    done = await turn(client, {"type": "message.send", "content": "Tell me a story"})
    assert done["finish_reason"] == "length"
    cut = (await reply_row(companion.pk)).content
    await turn(client, {"type": "message.continue"})
    reply = await reply_row(companion.pk)
    assert reply.content.startswith(cut + " ")
    assert len(reply.content) > len(cut) + 20
    assert reply.finish_reason in ("length", "stop")
