"""The relay's log and reader (companionhub/relay.py, relay_reader.py), on Redis and in memory.

Each test on Redis uses a key prefix of its own and deletes exactly the keys
it made.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from django.conf import settings
from structlog.testing import capture_logs

from companionhub import relay_reader
from companionhub.relay import REFUSED, TEXT_APPEND, TEXT_REPLACE, Append, MemoryLog, RedisLog

pytestmark = pytest.mark.django_db


def _redis_log(maxlen: int) -> RedisLog:
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    return RedisLog(settings.REDIS_URL, prefix=f"test-relay-{uuid.uuid4().hex[:8]}", maxlen=maxlen, ttl=60)


@pytest.fixture(params=["memory", "redis"])
def make_log(request):
    made: list[RedisLog] = []

    def make(maxlen: int = 100):
        if request.param == "memory":
            return MemoryLog(maxlen=maxlen)
        log = _redis_log(maxlen)
        made.append(log)
        return log

    yield make
    for log in made:
        client = redis.Redis.from_url(log.url)
        keys = list(client.scan_iter(match=f"{log.prefix}:*"))
        if keys:
            client.delete(*keys)


def events(*names: str) -> list[dict]:
    return [{"type": "progress", "name": name} for name in names]


def test_numbers_are_consecutive_and_start_from_the_clock(make_log):
    log = make_log()
    first = log.append_many([Append("t", events("a", "b"))])[0].last
    second = log.append_many([Append("t", events("c")), Append("u", events("x"))])
    assert second[0].last == first + 1
    assert first > 1_600_000_000_000_000  # microseconds since the epoch: a restart numbers on upwards
    assert log.last_seq("t") == first + 1
    fresh = log.last_seq("nothing yet")  # a topic gets its starting number when first asked
    assert fresh > 1_600_000_000_000_000 and log.last_seq("nothing yet") == fresh
    found = asyncio.run(log.arange("t", first - 2))
    assert [(e.seq, e.event["name"]) for e in found] == [(first - 1, "a"), (first, "b"), (first + 1, "c")]


def test_an_append_guarded_by_a_set_flag_is_refused_whole(make_log):
    log = make_log()
    log.append_many(
        [Append("t", events("a"), unless_flag="ended", text_key="live", text="Hel", text_mode=TEXT_APPEND)]
    )
    log.append_many([Append("t", events("end"), set_flag="ended")])
    refused = log.append_many(
        [Append("t", events("late"), unless_flag="ended", text_key="live", text="lo", text_mode=TEXT_APPEND)]
    )
    assert [result.last for result in refused] == [REFUSED]
    assert log.flag_set("ended")
    assert log.live_text("live") == "Hel"  # the refused text did not go in either
    names = [e.event["name"] for e in asyncio.run(log.arange("t", 0))]
    assert names == ["a", "end"]


def test_live_text_appends_and_replaces(make_log):
    log = make_log()
    log.append_many([Append("t", (), text_key="r", text="Héllo ", text_mode=TEXT_APPEND)])
    log.append_many([Append("t", (), text_key="r", text="wörld 👋", text_mode=TEXT_APPEND)])
    assert log.live_text("r") == "Héllo wörld 👋"
    log.append_many([Append("t", (), text_key="r", text="Final.", text_mode=TEXT_REPLACE)])
    assert log.live_text("r") == "Final."
    log.forget_text("r")
    assert log.live_text("r") is None
    assert not asyncio.run(log.arange("t", 0))  # no events


class Sink:
    def __init__(self, log) -> None:
        self.log = log
        self.got: list[int] = []
        self.resyncs: list[int] = []

    async def relay_events(self, topic, entries) -> None:
        self.got.extend(entry.seq for entry in entries)

    async def relay_resync(self, topic, missed_after) -> int:
        self.resyncs.append(missed_after)
        return await self.log.alast_seq(topic)


async def _until(predicate, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - a condition of another task's doing, polled
            await asyncio.sleep(0.01)


def _reader(log) -> relay_reader.Reader:
    return relay_reader.Reader(log)


def test_the_reader_delivers_each_number_once_in_order(make_log):
    log = make_log()

    async def scenario():
        reader = _reader(log)
        sink = Sink(log)
        subscription = await reader.subscribe("t", sink)
        last = 0
        for _batch in range(20):
            last = (await asyncio.to_thread(log.append_many, [Append("t", events(*"abc"))]))[0].last
        await _until(lambda: sink.got and sink.got[-1] == last)
        subscription.close()
        return sink

    sink = asyncio.run(scenario())
    assert sink.got == list(range(sink.got[0], sink.got[0] + 60))
    assert sink.resyncs == []


def test_a_socket_behind_the_reader_gets_the_gap_from_the_log(make_log):
    log = make_log()

    async def scenario():
        reader = _reader(log)
        ahead = Sink(log)
        await reader.subscribe("t", ahead)
        first = (await asyncio.to_thread(log.append_many, [Append("t", events("a"))]))[0].last
        await asyncio.to_thread(log.append_many, [Append("t", events("b", "c"))])
        await _until(lambda: len(ahead.got) == 3)
        behind = Sink(log)  # a reconnecting client that had seen only "a"
        await reader.subscribe("t", behind, after=first)
        await asyncio.to_thread(log.append_many, [Append("t", events("d"))])
        await _until(lambda: len(behind.got) == 3)
        return first, behind

    first, behind = asyncio.run(scenario())
    assert behind.got == [first + 1, first + 2, first + 3]
    assert behind.resyncs == []


def test_a_gap_the_log_no_longer_holds_resyncs_and_is_logged(make_log):
    log = make_log(maxlen=5)

    async def scenario():
        reader = _reader(log)
        sink = Sink(log)
        first = (await asyncio.to_thread(log.append_many, [Append("t", events("a"))]))[0].last
        # The socket saw "a"; then far more happened than the log keeps (a forced overflow).
        for _ in range(30):
            await asyncio.to_thread(log.append_many, [Append("t", events("b", "c", "d", "e"))])
        with capture_logs() as logs:
            await reader.subscribe("t", sink, after=first)
            await _until(lambda: sink.resyncs)
            newest = (await asyncio.to_thread(log.append_many, [Append("t", events("z"))]))[0].last
            await _until(lambda: sink.got and sink.got[-1] == newest)
        return first, newest, sink, logs

    first, newest, sink, logs = asyncio.run(scenario())
    assert sink.resyncs == [first]
    assert sink.got == [newest]  # after the fresh state, on in order
    assert any(entry["event"] == "relay_gap" for entry in logs)


def test_a_restarted_log_is_noticed_as_a_gap(make_log):
    """Numbers go on from the clock after the log lost everything: the socket resyncs."""
    log = make_log()

    async def scenario():
        reader = _reader(log)
        sink = Sink(log)
        await reader.subscribe("t", sink)
        await asyncio.to_thread(log.append_many, [Append("t", events("a"))])
        await _until(lambda: len(sink.got) == 1)
        # Everything lost, as after a Redis restart without persistence.
        if isinstance(log, MemoryLog):
            log._logs.clear()
            log._counters.clear()
        else:
            client = redis.Redis.from_url(log.url)
            client.delete(log.stream_key("t"), log.counter_key("t"))
        newest = (await asyncio.to_thread(log.append_many, [Append("t", events("b"))]))[0].last
        await _until(lambda: sink.got[-1] == newest or sink.resyncs)
        await _until(lambda: sink.resyncs)
        return sink

    sink = asyncio.run(scenario())
    assert len(sink.resyncs) == 1


def test_unordered_topics_deliver_without_gap_checks(make_log):
    log = make_log(maxlen=2)

    async def scenario():
        reader = _reader(log)
        sink = Sink(log)
        await reader.subscribe("user.1", sink, ordered=False)
        await asyncio.to_thread(log.append_many, [Append("user.1", [{"type": "socket.close", "code": 4403}])])
        await _until(lambda: len(sink.got) == 1)
        return sink

    sink = asyncio.run(scenario())
    assert sink.resyncs == []
