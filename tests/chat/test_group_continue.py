"""Carrying on a group reply that stopped at the length limit, as a one-to-one chat does."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat import editing
from chat.models import Conversation, Message, PipelineRun
from companionhub.errors import AppError
from tests.chat.factories import make_group_of
from tests.chat.test_group_regenerate import finished_turn, nothing_changed
from tests.chat.test_usage import use_up_quota
from tests.companions.factories import make_companion


def short_winded_group(user) -> Conversation:
    """Mika and Rin, who stop at 64 tokens; one of them answers each message."""
    companions = [
        make_companion(user, name=name, config={"max_reply_tokens": 64}) for name in ("Mika", "Rin")
    ]
    return make_group_of(user, companions, title="Pair", replies_per_turn=1)


@pytest.mark.django_db
def test_only_a_cut_reply_can_be_continued(user):
    group = short_winded_group(user)
    rows = finished_turn(group)
    with pytest.raises(AppError) as refused:
        editing.message_continue(user=user, conversation=group)
    assert refused.value.code == "nothing_to_continue"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
def test_continue_starts_a_continue_run_on_the_same_reply(user):
    group = short_winded_group(user)
    *_, last = finished_turn(group)
    Message.objects.filter(pk=last.pk).update(finish_reason="length")
    run = editing.message_continue(user=user, conversation=group, message_id=last.pk).run
    assert (run.mode, run.continue_from, run.reply_id, run.companion.name) == (
        PipelineRun.Mode.CONTINUE,
        len(last.content),
        last.pk,
        "Rin",
    )
    last.refresh_from_db()
    assert last.alternatives == []  # carrying on keeps one version


@pytest.mark.django_db
@pytest.mark.parametrize("refusal", ["busy", "quota_exceeded", "not_latest"])
def test_refused_continues_store_nothing(user, settings, refusal):
    group = short_winded_group(user)
    rows = finished_turn(group, status="running" if refusal == "busy" else "completed")
    Message.objects.filter(conversation=group, role="assistant").update(finish_reason="length")
    rows = list(Message.objects.filter(conversation=group).order_by("pk"))
    if refusal == "quota_exceeded":
        settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
        use_up_quota.func(user)
    message_id = rows[1].pk if refusal == "not_latest" else None
    with pytest.raises(AppError) as refused:
        editing.message_continue(user=user, conversation=group, message_id=message_id)
    assert refused.value.code == refusal
    assert nothing_changed(group, rows)


@sync_to_async
def replies_of(group_id):
    return list(Message.objects.filter(conversation_id=group_id, role="assistant").order_by("pk"))


@pytest.mark.django_db(transaction=True)
async def test_a_cut_group_reply_is_continued_over_the_socket(worker, use_fake_llm, connect_group, user):
    group = await sync_to_async(short_winded_group)(user)
    client = await connect_group(group.pk, user=user)
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(100)))
    await client.send({"type": "message.send", "content": "Talk, Mika"})
    await client.receive_until("turn.done")
    [done] = client.of_type("done")
    assert done["finish_reason"] == "length"
    [cut] = await replies_of(group.pk)
    assert cut.finish_reason == "length"

    use_fake_llm.set_reply(" and the rest.")
    client.events.clear()
    await client.send({"type": "message.continue", "client_id": "c1"})
    accepted = await client.receive_until("message.accepted")
    await client.receive_until("turn.done")
    [speaker] = client.of_type("turn.speaker")
    assert (speaker["run_id"], speaker["sender"], speaker["message_id"]) == (
        accepted["run_id"],
        "Mika",
        cut.pk,
    )
    [done] = client.of_type("done")
    assert done["finish_reason"] == "stop" and done["message_id"] == cut.pk
    tokens = client.of_type("token")
    assert tokens[0]["offset"] == len(cut.content)  # the stream carries on where the reply stopped
    [reply] = await replies_of(group.pk)
    assert (reply.pk, reply.content, reply.finish_reason) == (cut.pk, cut.content + " and the rest.", "stop")
    sent = [r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream")][-1]["messages"]
    assert sent[-2] == {"role": "assistant", "content": cut.content}
    # Now it is whole, another continue is refused.
    await client.send({"type": "message.continue"})
    assert (await client.receive_until("error"))["code"] == "nothing_to_continue"
