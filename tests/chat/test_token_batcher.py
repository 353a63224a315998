"""The token batcher (chat/publish.py) when Redis loses things: no client misses text, and the
live reply a snapshot is read from heals itself."""

from __future__ import annotations

import asyncio

import pytest

from chat.publish import EventPublisher, TokenBatcher, live_reply, live_reply_key
from companionhub.relay import relay_log
from tests.companions.factories import make_companion, make_run

pytestmark = pytest.mark.django_db


def _tokens(conversation_id: int, after: int) -> list[tuple[int, str]]:
    found = asyncio.run(relay_log().arange(f"conversation.{conversation_id}", after))
    return [(entry.event["offset"], entry.event["text"]) for entry in found if entry.event["type"] == "token"]


@pytest.fixture
def batcher(user):
    run = make_run(make_companion(user))
    made = TokenBatcher(EventPublisher(run.conversation_id), str(run.pk))
    made.start_seq = relay_log().last_seq(f"conversation.{run.conversation_id}")
    made.conversation_id = run.conversation_id
    return made


def test_a_live_reply_redis_lost_is_written_whole_again(batcher):
    batcher.add("Hello ")
    batcher.flush()
    relay_log().forget_text(live_reply_key(batcher.run_id))  # as a Redis restart loses it
    batcher.add("world")
    batcher.flush()  # refused for the text (its length is not what the batcher wrote): noticed
    assert live_reply(batcher.run_id) is None
    batcher.add("!")
    batcher.flush()
    assert live_reply(batcher.run_id) == "Hello world!"
    assert _tokens(batcher.conversation_id, batcher.start_seq) == [(0, "Hello "), (6, "world"), (11, "!")]


def test_a_batch_redis_could_not_take_goes_again_from_the_same_offset(batcher, monkeypatch):
    batcher.add("One ")
    batcher.flush()
    log = relay_log()
    real = log.append_many

    def down(appends):
        raise ConnectionError("Redis is restarting")

    monkeypatch.setattr(log, "append_many", down)
    batcher.add("two ")
    batcher.flush()  # lost on the way: logged, and kept
    monkeypatch.setattr(log, "append_many", real)
    batcher.add("three")
    batcher.flush()
    assert _tokens(batcher.conversation_id, batcher.start_seq) == [(0, "One "), (4, "two three")]
    assert live_reply(batcher.run_id) == "One two three"


def test_the_final_text_is_sent_again_where_it_differs(batcher):
    batcher.add("\nHello there \n")
    batcher.flush()
    batcher.finish("Hello there")  # stored stripped
    assert _tokens(batcher.conversation_id, batcher.start_seq)[-1] == (0, "Hello there")
    assert live_reply(batcher.run_id) == "Hello there"
