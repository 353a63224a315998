"""A group chat open twice hears each turn start once, before its first speaker."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from groups.models import GroupMessage
from tests.groups.factories import make_group

pytestmark = pytest.mark.django_db(transaction=True)


async def until_turn_done(client) -> list[dict]:
    seen = []
    while True:
        event = await client.receive()
        seen.append(event)
        if event["type"] == "turn.done":
            return seen


async def test_the_other_tab_hears_each_turn_start_before_its_speakers(
    worker, use_fake_llm, connect_group, user
):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    tab, other = await connect_group(group.pk, user=user), await connect_group(group.pk, user=user)
    use_fake_llm.set_reply("Hi from us.")
    await tab.send({"type": "message.send", "content": "Hello both", "client_id": "g1"})
    accepted = await tab.receive_until("message.accepted")
    seen = await until_turn_done(other)

    kinds = [e["type"] for e in seen]
    assert kinds.count("turn.started") == 1  # once per turn, however many answer
    assert kinds.index("turn.started") < kinds.index("turn.speaker")
    started = seen[kinds.index("turn.started")]
    assert started["run_id"] == accepted["run_id"]  # the first speaker's run
    assert (started["kind"], started["reply_id"]) == ("send", None)
    assert started["user_message"]["id"] == accepted["message_id"]
    assert started["user_message"]["content"] == "Hello both"
    assert kinds.count("turn.speaker") == 2

    last = await sync_to_async(lambda: GroupMessage.objects.filter(group=group).order_by("-pk").first())()
    use_fake_llm.set_reply("Written again.")
    await tab.send({"type": "message.regenerate", "message_id": last.pk})
    await tab.receive_until("message.accepted")
    seen = await until_turn_done(other)
    kinds = [e["type"] for e in seen]
    assert kinds.index("turn.started") < kinds.index("turn.speaker")
    started = seen[kinds.index("turn.started")]
    assert (started["kind"], started["reply_id"]) == ("regenerate", last.pk)
    assert started["user_message"]["id"] == accepted["message_id"]
