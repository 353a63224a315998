"""Retrying a failed group reply from the group socket (groups gained ``run.retry`` with the one core).

A failed reply hands the turn on to the next companion at once, so the reply
that can be retried is the turn's latest: the last speaker's, or the one a
turn was left at when its next speaker never started (a worker lost between
two speakers). Either way the retry writes that companion's reply afresh and
the turn then goes on with whoever is still to answer.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import Message, PipelineRun, Turn
from chat.selectors import conversation_members
from chat.turns import TURN_GAP_SECONDS
from tests.chat.factories import add_reply, add_user_message, make_group
from tests.chat.test_group_regenerate import finished_turn

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "Oh hello! *waves* The beach sounds lovely."


@sync_to_async
def group_rows(group_id):
    messages = list(Message.objects.filter(conversation_id=group_id).select_related("sender").order_by("pk"))
    runs = list(
        PipelineRun.objects.filter(conversation_id=group_id)
        .select_related("companion")
        .order_by("created_at")
    )
    return messages, runs


def said_by(messages) -> list[tuple[str | None, str, bool]]:
    return [(m.sender.name if m.sender else None, m.content, m.is_complete) for m in messages]


def streamed_requests(llm) -> list[list[dict]]:
    return [r["json"]["messages"] for r in llm.requests if (r["json"] or {}).get("stream")]


async def test_the_last_speakers_failed_reply_is_retried_from_the_group_socket(
    worker, use_fake_llm, connect_group, group, user
):
    use_fake_llm.set_reply(REPLY)
    # Mika's and Rin's streams go through untouched; Aya's is refused (401: never retried).
    use_fake_llm.fail_next(kind="hang", seconds=0, times=2, only_stream=True)
    use_fake_llm.fail_next(status=401, only_stream=True)
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello everyone", "client_id": "g1"})
    said = await client.receive_until("message.accepted")
    error = await client.receive_until("error")
    assert (error["code"], error["sender"]) == ("auth", "Aya")
    await client.receive_until("turn.done")
    _, runs = await group_rows(group.pk)
    assert [(r.companion.name, r.status) for r in runs] == [
        ("Mika", "completed"),
        ("Rin", "completed"),
        ("Aya", "failed"),
    ]

    client.events.clear()
    await client.send({"type": "run.retry", "run_id": error["run_id"]})
    accepted = await client.receive_until("message.accepted")
    assert accepted["message_id"] == said["message_id"] and accepted["run_id"] != error["run_id"]
    await client.receive_until("turn.done")
    [started] = client.of_type("turn.started")
    assert (started["kind"], started["run_id"], started["user_message"]["id"]) == (
        "retry",
        accepted["run_id"],
        said["message_id"],
    )
    assert [s["sender"] for s in client.of_type("turn.speaker")] == ["Aya"]  # only she writes again
    [done] = client.of_type("done")
    assert (done["run_id"], done["sender"]) == (accepted["run_id"], "Aya")

    messages, runs = await group_rows(group.pk)
    assert said_by(messages) == [
        (None, "Hello everyone", True),
        ("Mika", REPLY, True),
        ("Rin", REPLY, True),
        ("Aya", REPLY, True),
    ]
    assert [(r.companion.name, r.status) for r in runs] == [
        ("Mika", "completed"),
        ("Rin", "completed"),
        ("Aya", "failed"),
        ("Aya", "completed"),
    ]
    # She heard the turn so far, as her first attempt would have.
    assert streamed_requests(use_fake_llm)[-1][-2:] == [
        {"role": "user", "content": f"Mika: {REPLY}"},
        {"role": "user", "content": f"Rin: {REPLY}"},
    ]


@sync_to_async
def turn_left_after_a_failure(group):
    """Mika's reply failed mid-stream and the worker was lost before Rin started, a while ago."""
    mika, rin, aya = conversation_members(group)
    said = add_user_message(group, "Hello everyone", order=[mika.pk, rin.pk, aya.pk])
    Turn.objects.filter(pk=said.turn.pk).update(status=Turn.Status.OPEN)
    partial = add_reply(group, mika, "Oh hel", is_complete=False)
    long_ago = timezone.now() - timedelta(seconds=TURN_GAP_SECONDS + 5)
    failed = PipelineRun.objects.create(
        conversation=group,
        turn=said.turn,
        companion=mika,
        reply=partial,
        status="failed",
        error_code="timed_out",
        error_text="The reply took too long and was stopped.",
        finished_at=long_ago,
    )
    return said, partial, failed


async def test_after_a_retry_the_turn_goes_on_with_the_companions_still_to_answer(
    worker, use_fake_llm, connect_group, group, user
):
    said, partial, failed = await turn_left_after_a_failure(group)
    use_fake_llm.set_reply(REPLY)
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "run.retry", "run_id": str(failed.pk)})
    accepted = await client.receive_until("message.accepted")
    assert accepted["message_id"] == said.pk
    turn_done = await client.receive_until("turn.done")
    assert turn_done["message_id"] == said.pk

    speakers = client.of_type("turn.speaker")
    assert [s["sender"] for s in speakers] == ["Mika", "Rin", "Aya"]
    assert speakers[0]["run_id"] == accepted["run_id"]
    assert [d["sender"] for d in client.of_type("done")] == ["Mika", "Rin", "Aya"]
    messages, runs = await group_rows(group.pk)
    assert partial.pk not in [m.pk for m in messages]  # the failed attempt's words went
    assert said_by(messages) == [
        (None, "Hello everyone", True),
        ("Mika", REPLY, True),
        ("Rin", REPLY, True),
        ("Aya", REPLY, True),
    ]
    assert [(r.companion.name, r.status) for r in runs] == [
        ("Mika", "failed"),
        ("Mika", "completed"),
        ("Rin", "completed"),
        ("Aya", "completed"),
    ]
    assert await sync_to_async(lambda: Turn.objects.get(pk=said.turn.pk).status)() == "done"
    # Mika's new attempt did not hear her broken one.
    assert streamed_requests(use_fake_llm)[0][1:] == [{"role": "user", "content": "Alice: Hello everyone"}]


async def test_only_the_turns_latest_reply_can_be_retried(connect_group, group, user):
    """Mika failed, then Rin and Aya answered: retrying Mika now would answer out of order."""

    @sync_to_async
    def rows():
        made = finished_turn(group, replies=("Mika", "Rin", "Aya"))
        PipelineRun.objects.filter(reply=made[1]).update(status="failed", error_code="auth")
        return {r.companion.name: r for r in PipelineRun.objects.filter(conversation=group)}

    runs = await rows()
    client = await connect_group(group.pk, user=user)
    for name in ("Mika", "Aya"):  # failed but not the latest; the latest but not failed
        await client.send({"type": "run.retry", "run_id": str(runs[name].pk)})
        assert (await client.receive_until("error"))["code"] == "not_retryable", name

    @sync_to_async
    def failed_elsewhere():
        other = make_group(user, "Zed", "Yan", title="Other")
        finished_turn(other, replies=("Zed",), status="failed")
        return PipelineRun.objects.get(conversation=other).pk

    await client.send({"type": "run.retry", "run_id": str(await failed_elsewhere())})
    assert (await client.receive_until("error"))["code"] == "not_found"  # another group's run
    assert await sync_to_async(PipelineRun.objects.filter(conversation=group).count)() == 3
