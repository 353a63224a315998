"""Usage through the real pipeline and the real websocket: charged once per run, refused over quota."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from accounts import usage
from accounts.models import UsageTransaction, UserUsage
from chat.models import Message, PipelineRun
from companions.models import Companion
from tests.chat.factories import add_exchange, make_chat

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def usage_rows(user):
    transactions = list(UsageTransaction.objects.filter(user=user).order_by("created_at"))
    totals = UserUsage.objects.filter(user=user).first()
    return transactions, totals


@sync_to_async
def reply_of(message_id):
    return Message.objects.get(pk=message_id, role="assistant")


@sync_to_async
def burned(companion_id):
    return Companion.objects.get(pk=companion_id).tokens_burned


async def wait_for_charge(user, count=1, seconds=10.0):
    """Cancelled runs are charged by the worker as it stops; poll for the row."""
    for _ in range(int(seconds / 0.05)):
        transactions, totals = await usage_rows(user)
        if len(transactions) >= count:
            return transactions, totals
        await asyncio.sleep(0.05)
    raise AssertionError("the run was never charged")


async def test_a_turn_is_charged_once_with_its_reported_usage(
    worker, use_fake_llm, use_fake_sd, connect, companion, user
):
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Paint us at the beach", "image": True})
    accepted = await client.receive_until("message.accepted")
    done = await client.receive_until("done")
    [row], totals = await usage_rows(user)
    assert str(row.run_id) == accepted["run_id"] and row.companion_id == companion.pk
    assert row.prompt_tokens == done["usage"]["prompt_tokens"] > 0
    assert row.completion_tokens == done["usage"]["completion_tokens"] > 0
    assert row.image_count == 1
    tokens = row.prompt_tokens + row.completion_tokens
    assert (totals.tokens_this_period, totals.lifetime_tokens, totals.images_this_period) == (
        tokens,
        tokens,
        1,
    )
    assert await burned(companion.pk) == tokens  # the companion's total moves 1:1 with the user's


async def test_two_turns_add_up(worker, use_fake_llm, connect, companion, user):
    client = await connect(companion.pk, user=user)
    for text in ("one", "two"):
        await client.send({"type": "message.send", "content": text})
        await client.receive_until("done")
    transactions, totals = await usage_rows(user)
    assert len(transactions) == 2 and all(t.image_count == 0 for t in transactions)
    assert totals.lifetime_tokens == sum(t.prompt_tokens + t.completion_tokens for t in transactions)
    assert await burned(companion.pk) == totals.lifetime_tokens


async def test_a_repeated_finish_step_does_not_charge_again(worker, use_fake_llm, connect, companion, user):
    from chat import pipeline

    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello"})
    accepted = await client.receive_until("message.accepted")
    await client.receive_until("done")
    with pytest.raises(pipeline.RunEnded):  # a re-delivered finish task
        await sync_to_async(pipeline.finish)(accepted["run_id"])
    [row], totals = await usage_rows(user)
    assert totals.lifetime_tokens == row.prompt_tokens + row.completion_tokens


async def test_a_reply_that_streamed_then_failed_is_charged_its_partial_cost(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.fail_next(kind="disconnect", after_tokens=3, only_stream=True, times=10)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello"})
    error = await client.receive_until("error")
    assert error["code"] == "incomplete"
    [row], totals = await usage_rows(user)
    assert row.run_status == "failed"
    assert row.prompt_tokens > 0 and row.completion_tokens > 0  # estimated from what arrived
    assert totals.lifetime_tokens == row.prompt_tokens + row.completion_tokens == await burned(companion.pk)


async def test_a_retried_reply_is_charged_every_attempt_that_streamed(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.fail_next(kind="disconnect", after_tokens=3, only_stream=True)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello"})
    done = await client.receive_until("done")
    [row], totals = await usage_rows(user)
    reply = await reply_of(done["message_id"])
    assert row.run_status == "completed"
    # The kept reply's reported count plus an estimate of what the broken first attempt streamed.
    assert row.completion_tokens > reply.completion_tokens > 0
    assert row.prompt_tokens > reply.prompt_tokens > 0
    assert done["usage"]["completion_tokens"] == row.completion_tokens
    assert done["usage"]["estimated"] is True  # part of it was estimated
    assert totals.lifetime_tokens == row.prompt_tokens + row.completion_tokens == await burned(companion.pk)


def analysis_usage(llm) -> tuple[int, int]:
    """(prompt, completion) tokens the fake reported for the scene analyses (its non-streamed chat
    calls) and for the memory query's embeddings (prompt tokens only)."""
    from tests.fakes.llm_server import _estimate, _prompt_text

    bodies = [r["json"] for r in llm.requests if r["json"]]
    calls = [body for body in bodies if "messages" in body and not body.get("stream")]
    embedded = [text for body in bodies if "input" in body for text in body["input"]]
    prompt = sum(_estimate(_prompt_text(c)) for c in calls) + sum(_estimate(text) for text in embedded)
    return prompt, len(calls) * _estimate(llm.completion_text)


async def test_the_scene_analyses_are_charged_with_the_reply(worker, use_fake_llm, connect, companion, user):
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello"})
    done = await client.receive_until("done")
    [row], totals = await usage_rows(user)
    reply = await reply_of(done["message_id"])
    analysis_prompt, analysis_completion = analysis_usage(use_fake_llm)
    assert analysis_prompt > 0 and analysis_completion > 0  # both analyses ran and reported usage
    assert row.prompt_tokens == reply.prompt_tokens + analysis_prompt
    assert row.completion_tokens == reply.completion_tokens + analysis_completion
    assert totals.lifetime_tokens == row.prompt_tokens + row.completion_tokens == await burned(companion.pk)


async def test_a_reply_refused_before_any_text_is_charged_only_its_analysis(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.fail_next(status=401, times=10, only_stream=True)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello"})
    assert (await client.receive_until("error"))["code"] == "auth"
    [row], _ = await usage_rows(user)
    assert row.run_status == "failed"
    assert (row.prompt_tokens, row.completion_tokens) == analysis_usage(use_fake_llm)  # the 401 cost nothing


async def test_a_cancelled_reply_is_charged_what_it_streamed(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(400)))
    use_fake_llm.token_delay = 0.02
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Talk a lot"})
    accepted = await client.receive_until("message.accepted")
    await client.receive_until("token")
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    await client.receive_until("error")
    [row], totals = await wait_for_charge(user)
    assert row.run_status == "cancelled" and 0 < row.completion_tokens < 400
    await asyncio.sleep(0.3)
    transactions, totals = await usage_rows(user)
    assert len(transactions) == 1
    assert totals.lifetime_tokens == row.prompt_tokens + row.completion_tokens == await burned(companion.pk)


# --- quota ----------------------------------------------------------------------


@sync_to_async
def use_up_quota(user, *, quota=100, override=None, settings=None):
    UserUsage.objects.update_or_create(
        user=user,
        defaults={
            "period_start": usage.month_start(),
            "tokens_this_period": quota,
            "lifetime_tokens": quota,
            "quota_override": override,
        },
    )


@sync_to_async
def conversation(companion, *, finish_reason="stop", failed_run=False):
    """The companion's chat with one exchange, and the run that wrote its reply."""
    chat = make_chat(companion, greeting="Hey you!")
    said, reply = add_exchange(chat, companion, "Hi", "Hello there", finish_reason=finish_reason)
    # A finished run as the pipeline leaves it (rows for the test, not a transition under test).
    return PipelineRun.objects.create(
        conversation=chat,
        turn=said.turn,
        companion=companion,
        reply=reply,
        status="failed" if failed_run else "completed",
    )


@sync_to_async
def state(companion_id):
    return (
        list(
            Message.objects.filter(conversation__participants__companion_id=companion_id)
            .order_by("created_at", "pk")
            .values_list("role", "content", "alternatives", "edited_at")
        ),
        PipelineRun.objects.filter(companion_id=companion_id).count(),
    )


async def assert_refused(client, frame):
    await client.send(frame)
    error = await client.receive_until("error")
    assert error["code"] == "quota_exceeded"
    assert "100 tokens" in error["message"] and "resets on" in error["message"]
    assert "run_id" not in error
    return error


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message.send", "content": "One more?"},
        {"type": "message.regenerate"},
        {"type": "message.continue"},
        {"type": "message.edit", "content": "Changed my mind"},
    ],
    ids=["send", "regenerate", "continue", "edit"],
)
async def test_over_quota_nothing_is_stored_and_the_client_is_told(frame, connect, companion, user, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    await conversation(companion, finish_reason="length")
    await use_up_quota(user)
    before = await state(companion.pk)
    client = await connect(companion.pk, user=user)
    await assert_refused(client, frame)
    assert await state(companion.pk) == before
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"  # the socket stays usable


async def test_over_quota_a_correction_in_place_still_works(connect, companion, user, settings):
    """Correcting a message starts no run, so the quota does not stop it."""
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    run = await conversation(companion)
    await use_up_quota(user)
    client = await connect(companion.pk, user=user)
    await client.send(
        {"type": "message.edit", "message_id": run.turn.message_id, "content": "Hi!", "resend": False}
    )
    updated = await client.receive_until("message.updated")
    assert (updated["message_id"], updated["content"], updated["edited"]) == (
        run.turn.message_id,
        "Hi!",
        True,
    )
    messages, runs = await state(companion.pk)
    assert messages[1][1] == "Hi!" and runs == 1


async def test_over_quota_a_failed_reply_cannot_be_retried(connect, companion, user, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    run = await conversation(companion, failed_run=True)
    await use_up_quota(user)
    client = await connect(companion.pk, user=user)
    await assert_refused(client, {"type": "run.retry", "run_id": str(run.pk)})
    assert (await state(companion.pk))[1] == 1


async def test_a_users_own_quota_wins_over_the_site_default(
    worker, use_fake_llm, connect, companion, user, settings
):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    await use_up_quota(user, override=0)  # unlimited for this user
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Still here?"})
    await client.receive_until("done")
    await use_up_quota(user, override=100, quota=100)  # this user's own limit
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 0
    await assert_refused(client, {"type": "message.send", "content": "And now?"})


async def test_under_quota_sending_works(worker, use_fake_llm, connect, companion, user, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 1_000_000
    await use_up_quota(user, quota=10)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi"})
    await client.receive_until("done")


def test_the_form_fallback_shows_the_quota_message(client, companion, user, settings):
    from django.urls import reverse

    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    UserUsage.objects.create(user=user, period_start=usage.month_start(), tokens_this_period=100)
    client.force_login(user)
    chat = make_chat(companion)
    response = client.post(reverse("chat:send", args=[chat.pk]), {"content": "Hi"}, follow=True)
    assert "You have used your 100 tokens for this month" in response.content.decode()
    assert not Message.objects.filter(conversation=chat).exists()


def test_the_protocol_document_lists_the_quota_error():
    from tests.chat.test_events import DOC

    assert "`quota_exceeded`" in DOC
