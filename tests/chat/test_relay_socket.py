"""What a socket gets from the relay (docs/websocket.md, "Sequence numbers and resuming"):
numbered events, the missed ones replayed after a reconnect, a gap the log no longer holds
answered with a fresh snapshot (and a warning), and always exactly the stored reply."""

from __future__ import annotations

import asyncio

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from structlog.testing import capture_logs

from chat.models import Message
from chat.publish import publish
from companionhub import metrics
from companionhub.relay import Append, MemoryLog, RedisLog, relay_log
from tests.chat.factories import make_chat

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = [f" word{n}" for n in range(40)]


def reassemble(events: list[dict], run_id: str) -> str:
    """The reply as a client keeps it: the snapshot's content, then each token at its offset,
    cut to ``done.length``."""
    text = ""
    for event in events:
        if event["type"] in ("snapshot", "group.snapshot") and (event.get("run") or {}).get("id") == run_id:
            text = event["run"]["content"]
        elif event["type"] == "token" and event["run_id"] == run_id:
            text = text[: event["offset"]] + event["text"]
        elif event["type"] == "done" and event["run_id"] == run_id:
            text = text[: event["length"]]
    return text


async def until_done(client, run_id: str) -> list[dict]:
    seen = list(client.events)
    while not any(e["type"] == "done" and e.get("run_id") == run_id for e in seen):
        seen.append(await client.receive())
    return seen


@sync_to_async
def stored(message_id: int) -> str:
    return Message.objects.get(pk=message_id).content


async def test_events_are_numbered_one_after_another_from_the_snapshot(
    worker, use_fake_llm, connect, companion, user
):
    client = await connect(companion.pk, user=user)
    start = client.events[0]["seq"]
    await client.send({"type": "message.send", "content": "Hello", "client_id": "c"})
    accepted = await client.receive_until("message.accepted")
    events = await until_done(client, accepted["run_id"])
    numbered = [e["seq"] for e in events if "seq" in e and e["type"] != "snapshot"]
    assert numbered == list(range(start + 1, start + 1 + len(numbered)))
    assert all("seq" not in e for e in events if e["type"] == "message.accepted")  # to this socket only


async def test_a_socket_that_reconnects_at_any_event_ends_with_the_stored_text(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.reply_tokens = ["\n", *WORDS, " \n"]  # a model that starts and ends with whitespace
    use_fake_llm.token_delay = 0.01
    first = await connect(companion.pk, user=user)
    await first.send({"type": "message.send", "content": "Tell me", "client_id": "c"})
    run_id = (await first.receive_until("message.accepted"))["run_id"]
    events = await until_done(first, run_id)
    done = events[-1]
    want = await stored(done["message_id"])
    assert want == "".join(WORDS).strip()  # stored stripped; the socket was sent the whitespace
    assert reassemble(events, run_id) == want
    path = f"/ws/chat/{companion.pk}/"
    numbers = [e["seq"] for e in events if "seq" in e]
    for after in numbers[: -1 : max(1, len(numbers) // 8)]:  # resume from events along the way, done's not
        again = await connect(None, user=user, path=f"{path}?after={after}")
        snapshot = again.events[0]
        assert snapshot["seq"] == after
        replayed = await until_done(again, run_id)
        had = [e for e in events if e.get("seq", 0) <= after and e["type"] != "snapshot"]  # kept
        assert reassemble(had + replayed, run_id) == want
        assert [e["seq"] for e in replayed[1:]] == [n for n in numbers if n > after]
        await again.close()


async def test_a_resume_the_log_cannot_serve_gets_the_current_state(connect, companion, user):
    client = await connect(companion.pk, user=user)
    now = client.events[0]["seq"]
    late = await connect(companion.pk, user=user, path=f"/ws/chat/{companion.pk}/?after={max(now - 50, 1)}")
    assert late.events[0]["seq"] == now  # nothing after that number is held: start from now


def _forget_log(topic: str) -> None:
    """Lose a conversation's log, as a Redis restart without persistence does."""
    log = relay_log()
    if isinstance(log, RedisLog):
        redis.Redis.from_url(settings.REDIS_URL).delete(log.stream_key(topic), log.counter_key(topic))
    elif isinstance(log, MemoryLog):
        log._logs.pop(topic, None)
        log._counters.pop(topic, None)


@pytest.fixture
def chat(companion):
    return make_chat(companion)


async def test_events_the_log_lost_bring_a_fresh_snapshot_and_a_warning(connect, user, chat):
    client = await connect(None, user=user, path=f"/ws/conversation/{chat.pk}/")
    await sync_to_async(publish)(chat.pk, {"type": "message.deleted", "message_id": 1})
    first = await client.receive()
    await sync_to_async(_forget_log)(f"conversation.{chat.pk}")
    with capture_logs() as logs:
        await sync_to_async(publish)(chat.pk, {"type": "message.deleted", "message_id": 2})
        snapshot = await client.receive()  # the state as of that event: the socket starts again
        await sync_to_async(publish)(chat.pk, {"type": "message.deleted", "message_id": 3})
        after = await client.receive()
    assert snapshot["type"] == "snapshot" and snapshot["seq"] > first["seq"] + 1
    assert after == {"type": "message.deleted", "message_id": 3, "seq": snapshot["seq"] + 1}
    warnings = [entry for entry in logs if entry["event"] == "relay_resync"]
    assert warnings and warnings[0]["log_level"] == "warning"
    metrics_page = await sync_to_async(metrics.render)()
    assert "companionhub_relay_resyncs_total 0" not in metrics_page
    assert warnings[0]["conversation_id"] == chat.pk and warnings[0]["socket"]


async def test_an_overflowing_log_resyncs_the_socket_and_says_so(connect, user, chat, settings):
    """The log keeps only so many events: 600 appended at once (one atomic append, so no reader
    can keep up) push the socket's place out of it. It gets a snapshot and a warning, then the
    events from there on, in order."""
    settings.CHAT_RELAY_LOG_LENGTH = 10
    client = await connect(None, user=user, path=f"/ws/conversation/{chat.pk}/")
    burst = [{"type": "message.deleted", "message_id": n} for n in range(600)]
    topic = f"conversation.{chat.pk}"
    with capture_logs() as logs:
        await sync_to_async(relay_log().append_many)([Append(topic, burst)])
        seen = [await client.receive()]
        while seen[-1]["type"] != "snapshot":
            seen.append(await client.receive())
        await sync_to_async(publish)(chat.pk, {"type": "message.deleted", "message_id": 1000})
        async with asyncio.timeout(20):
            while seen[-1].get("message_id") != 1000:
                seen.append(await client.receive())
    snapshot_at = next(n for n, e in enumerate(seen) if e["type"] == "snapshot")
    after = seen[snapshot_at + 1 :]
    assert [e["seq"] for e in after] == list(range(seen[snapshot_at]["seq"] + 1, after[-1]["seq"] + 1))
    assert any(entry["event"] == "relay_resync" for entry in logs)
