"""A chat turn when things go wrong: every user message ends in one reply or a visible failure."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat import pipeline
from chat.admission import run_admit
from chat.backends import llm_breaker
from chat.models import Message, PipelineRun
from chat.runs import run_claim_step, run_create
from chat.tasks import backoff_seconds
from tests.chat.factories import add_user_message, make_chat

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def messages_of(companion_id):
    """The messages of the companion's chat after its greeting (the turn's own)."""
    stored = list(
        Message.objects.filter(conversation__participants__companion_id=companion_id).order_by(
            "created_at", "pk"
        )
    )
    assert stored[0].role == "assistant" and stored[0].content == "Hey you!"  # the greeting
    return stored[1:]


@sync_to_async
def run_row(run_id):
    return PipelineRun.objects.get(pk=run_id)


async def send(client, text="Hello there", **extra):
    await client.send({"type": "message.send", "content": text, "client_id": "c", **extra})
    return await client.receive_until("message.accepted")


async def test_the_reply_survives_two_server_errors(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.fail_next(status=500, times=2, only_stream=True)
    client = await connect(companion.pk, user=user)
    accepted = await send(client)
    done = await client.receive_until("done")
    stored = await messages_of(companion.pk)
    assert [m.role for m in stored] == ["user", "assistant"]  # the retries reused one reply row
    assert stored[1].content == use_fake_llm.reply_text and stored[1].is_complete
    assert done["message_id"] == stored[1].pk
    run = await run_row(accepted["run_id"])
    assert run.status == "completed" and run.attempts == 3
    streams = [r for r in use_fake_llm.requests if (r["json"] or {}).get("stream")]
    assert len(streams) == 3


async def test_a_dropped_stream_is_retried_not_stored_as_finished(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.fail_next(kind="disconnect", after_tokens=3, only_stream=True)
    client = await connect(companion.pk, user=user)
    await send(client)
    await client.receive_until("done")
    stored = await messages_of(companion.pk)
    assert stored[-1].content == use_fake_llm.reply_text and stored[-1].is_complete


async def test_rate_limits_are_retried_after_the_servers_delay(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.fail_next(status=429, times=1, retry_after=0.2, only_stream=True)
    client = await connect(companion.pk, user=user)
    await send(client)
    await client.receive_until("done")
    assert backoff_seconds(0, retry_after=0.2) == pytest.approx(0.2)


async def test_a_dead_llm_fails_the_run_visibly_and_keeps_the_message(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.down()
    client = await connect(companion.pk, user=user)
    accepted = await send(client, "Are you there?")
    error = await client.receive_until("error")
    assert error["run_id"] == accepted["run_id"]
    assert error["code"] == "server" and error["message"]
    run = await run_row(accepted["run_id"])
    assert run.status == "failed" and run.error_code == "server"
    stored = await messages_of(companion.pk)
    assert stored[0].content == "Are you there?"
    assert all(not m.is_complete for m in stored if m.role == "assistant")
    assert client.of_type("done") == []
    # The analysis tried once and each reply attempt once: 1 + 4 failures open the breaker.
    # The breaker is the connection's: finding it reads the connection row.
    assert (await sync_to_async(lambda: llm_breaker().status())()).state == "open"


async def test_an_open_circuit_fails_fast_without_calling_the_llm(
    worker, use_fake_llm, connect, companion, user
):
    breaker = await sync_to_async(llm_breaker)()  # the connection's breaker: found in the database
    for _ in range(5):
        await sync_to_async(breaker.record_failure)()
    client = await connect(companion.pk, user=user)
    await send(client)
    error = await client.receive_until("error")
    assert error["code"] == "circuit_open"
    assert use_fake_llm.requests == []


async def test_auth_errors_are_not_retried(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.fail_next(status=401, times=10, only_stream=True)
    client = await connect(companion.pk, user=user)
    accepted = await send(client)
    error = await client.receive_until("error")
    assert error["code"] == "auth"
    assert (await run_row(accepted["run_id"])).attempts == 1


async def test_a_failed_run_can_be_retried(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.fail_next(status=400, times=1, only_stream=True)
    client = await connect(companion.pk, user=user)
    accepted = await send(client, "Try me")
    await client.receive_until("error")
    await client.send({"type": "run.retry", "run_id": accepted["run_id"]})
    again = await client.receive_until("message.accepted")
    await client.receive_until("done")
    stored = await messages_of(companion.pk)
    assert [m.content for m in stored if m.role == "user"] == ["Try me"]  # not sent twice
    assert stored[-1].is_complete
    assert again["message_id"] == accepted["message_id"]


async def test_a_broken_picture_service_still_delivers_reply_and_state(
    worker, use_fake_llm, use_fake_sd, connect, companion, user
):
    use_fake_sd.down()
    client = await connect(companion.pk, user=user)
    await send(client, "Show me a picture", image=True)
    done = await client.receive_until("done")
    assert client.of_type("state")
    [failure] = [e for e in client.of_type("error") if e["code"] == "image_failed"]
    assert failure["message"]
    stored = await messages_of(companion.pk)
    assert stored[-1].pk == done["message_id"] and stored[-1].is_complete and stored[-1].image_id is None


async def test_what_the_picture_service_said_stays_out_of_the_users_error(
    worker, use_fake_llm, use_fake_sd, connect, companion, user
):
    use_fake_sd.fail_next(status=400, times=10, body="Traceback: /srv/sd/models/secret-internal-path.ckpt")
    client = await connect(companion.pk, user=user)
    await send(client, "Show me a picture", image=True)
    await client.receive_until("done")
    [failure] = [e for e in client.of_type("error") if e["code"] == "image_failed"]
    assert failure["message"] == "The picture could not be painted (bad_request)."
    assert "secret-internal-path" not in str(client.events)


async def test_garbage_from_the_picture_service_is_never_stored(
    worker, use_fake_llm, use_fake_sd, connect, companion, user, media_root
):
    use_fake_sd.fail_next(kind="not_png", times=10)
    client = await connect(companion.pk, user=user)
    await send(client, "Picture please", image=True)
    await client.receive_until("done")
    assert [e for e in client.of_type("error") if e["code"] == "image_failed"]
    assert not list(media_root.rglob("*.jpg")) if media_root.exists() else True


def test_stuck_runs_are_failed_by_the_reconciler(worker, companion, user):
    from datetime import timedelta

    from django.utils import timezone

    conversation = make_chat(companion)
    message = add_user_message(conversation, "lost")
    run = run_create(
        companion=companion,
        want_image=False,
        admission=run_admit(user, want_image=False),
        conversation=conversation,
        turn=message.turn,
    )
    assert run_claim_step(run.pk, step="generate_reply", progress=30)
    PipelineRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert pipeline.reconcile_stuck_runs(older_than_seconds=600) == 1
    run.refresh_from_db()
    assert run.status == "failed" and run.error_code == "timed_out"
    assert Message.objects.filter(pk=message.pk).exists()
    assert pipeline.reconcile_stuck_runs(older_than_seconds=600) == 0  # a second sweep does nothing


def crash_step(monkeypatch, name: str, exc: Exception, *, times: int = 1_000):
    """Make ``pipeline.<name>`` raise ``exc`` its first ``times`` calls, then work."""
    real = getattr(pipeline, name)
    calls = []

    def crashing(run_id):
        calls.append(run_id)
        if len(calls) <= times:
            raise exc
        return real(run_id)

    monkeypatch.setattr(pipeline, name, crashing)
    return calls


async def test_a_step_that_crashes_fails_the_run_at_once(
    worker, use_fake_llm, connect, companion, user, monkeypatch
):
    calls = crash_step(monkeypatch, "reanalyze", RuntimeError("a bug"))
    client = await connect(companion.pk, user=user)
    accepted = await send(client)
    error = await client.receive_until("error")  # now, not after the stuck-run sweep
    assert error["code"] == "internal" and error["run_id"] == accepted["run_id"]
    assert "on our side" in error["message"] and "a bug" not in error["message"]
    run = await run_row(accepted["run_id"])
    assert run.status == "failed" and run.error_code == "internal"
    assert len(calls) == 1  # a bug is not retried
    stored = await messages_of(companion.pk)
    assert [m.content for m in stored if m.role == "user"] == ["Hello there"]
    await client.send({"type": "run.retry", "run_id": accepted["run_id"]})  # and the user can try again
    await client.receive_until("message.accepted")


async def test_a_lost_database_connection_in_a_step_is_retried(
    worker, use_fake_llm, connect, companion, user, monkeypatch
):
    from django.db import OperationalError

    calls = crash_step(monkeypatch, "update_state", OperationalError("server closed the connection"), times=2)
    client = await connect(companion.pk, user=user)
    accepted = await send(client)
    await client.receive_until("done")
    assert len(calls) == 3
    assert (await run_row(accepted["run_id"])).status == "completed"


async def test_a_lost_database_that_stays_lost_fails_the_run_with_its_own_message(
    worker, use_fake_llm, connect, companion, user, monkeypatch
):
    from django.db import OperationalError

    calls = crash_step(monkeypatch, "update_state", OperationalError("server closed the connection"))
    client = await connect(companion.pk, user=user)
    accepted = await send(client)
    error = await client.receive_until("error")
    assert error["code"] == "database" and "database" in error["message"]
    assert len(calls) == 4  # the first try and three retries
    assert (await run_row(accepted["run_id"])).status == "failed"


async def test_a_picture_step_that_crashes_still_finishes_the_turn(
    worker, use_fake_llm, use_fake_sd, connect, companion, user, monkeypatch
):
    crash_step(monkeypatch, "generate_image", KeyError("images"))
    client = await connect(companion.pk, user=user)
    accepted = await send(client, "Show me a picture", image=True)
    await client.receive_until("done")
    [failure] = [e for e in client.of_type("error") if e["code"] == "image_failed"]
    assert "on our side" in failure["message"]
    assert (await run_row(accepted["run_id"])).status == "completed"
