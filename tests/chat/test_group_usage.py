"""A group turn is charged like one-to-one chat: one usage row per companion's reply; refused over quota."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from accounts.models import UsageTransaction
from chat.models import Message
from tests.chat.test_usage import usage_rows, use_up_quota, wait_for_charge

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def group_rows(group_id):
    return Message.objects.filter(conversation_id=group_id).count()


@sync_to_async
def charged_companions(user):
    return sorted(UsageTransaction.objects.filter(user=user).values_list("companion_name", flat=True))


async def test_every_companion_reply_of_a_turn_is_charged_once(
    worker, use_fake_llm, connect_group, group, user
):
    use_fake_llm.set_reply("Hello from the group.")
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello everyone", "client_id": "u1"})
    await client.receive_until("turn.done")

    transactions, totals = await wait_for_charge(user, count=3)
    assert await charged_companions(user) == ["Aya", "Mika", "Rin"]
    assert len({t.run_id for t in transactions}) == 3
    assert totals.tokens_this_period == sum(t.prompt_tokens + t.completion_tokens for t in transactions) > 0


async def test_over_quota_a_group_message_is_refused_and_nothing_is_stored(
    connect_group, group, user, settings
):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    await use_up_quota(user)
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.send", "content": "Anyone there?", "client_id": "u1"})
    error = await client.receive_until("error")
    assert error["code"] == "quota_exceeded"
    assert await group_rows(group.pk) == 0
    transactions, _ = await usage_rows(user)
    assert transactions == []
