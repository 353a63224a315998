"""The relay's reading side: one reader per event loop (per Daphne process) for all its sockets.

A socket subscribes to the topics it needs (``subscribe``); the reader
follows every topic any socket of the loop follows with one ``XREAD`` of all
of them, waits ``TICK`` seconds after a read that found something (so the
events of the next moment arrive together, one read instead of many), and
hands each topic's new entries to its subscriptions in order.

A subscription delivers each number once and in order. When the numbers
jump -- the reader fell behind the log's trimming, Redis restarted, or the
socket joined behind the reader -- it reads the gap back from the log
(``RelayLog.arange``); when the log no longer holds it, the socket is asked to
resynchronise (``Sink.relay_resync``: a fresh snapshot), and the gap is logged
as a WARNING and counted (``companionhub_relay_resyncs_total``). Nothing is
dropped without one of the two.

A read that fails (Redis restarting) is retried every ``RETRY_SECONDS``;
sockets stay open, and when the log is back every subscription notices the
jump in numbers and catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Sequence
from typing import Protocol

import structlog

from companionhub import metrics
from companionhub.relay import Entry, RelayLog, relay_log

log = structlog.get_logger(__name__)

TICK = 0.01  # after a read that found events: what arrives meanwhile comes with the next read
BLOCK_MS = 50  # a quiet read waits this long (a new topic joins the read within it)
RETRY_SECONDS = 0.5


class Sink(Protocol):
    """What a subscription delivers to (a websocket consumer)."""

    async def relay_events(self, topic: str, entries: Sequence[Entry]) -> None:
        """New entries of ``topic``, in order, none twice."""

    async def relay_resync(self, topic: str, missed_after: int) -> int:
        """The log no longer holds what came after ``missed_after``: send the state afresh and
        return the number it is as of (entries after it follow)."""


class Subscription:
    def __init__(self, reader: Reader, topic: str, sink: Sink, *, after: int, ordered: bool) -> None:
        self.reader = reader
        self.topic = topic
        self.sink = sink
        self.last = after
        self.ordered = ordered
        self.pending: list[Entry] | None = None  # set while a gap is being filled
        self.task: asyncio.Task[None] | None = None

    async def offer(self, entries: Sequence[Entry]) -> None:
        if self.pending is not None:
            self.pending.extend(entries)
            return
        fresh = [entry for entry in entries if entry.seq > self.last]
        if not fresh:
            return
        if self.ordered and self.last and fresh[0].seq != self.last + 1:  # 0: no number seen yet
            self.fill(fresh)
            return
        await self._deliver(fresh)

    def fill(self, waiting: list[Entry]) -> None:
        """Read the gap before ``waiting`` back from the log, in a task of its own."""
        self.pending = list(waiting)
        self.task = asyncio.get_running_loop().create_task(self._fill())

    async def _deliver(self, entries: Sequence[Entry]) -> None:
        self.last = entries[-1].seq
        await self.sink.relay_events(self.topic, entries)

    async def _fill(self) -> None:
        try:
            while self.pending is not None:
                try:
                    found = await self.reader.log.arange(self.topic, self.last)
                except Exception as exc:
                    log.warning("relay_fill_failed", topic=self.topic, error=type(exc).__name__)
                    found = []
                if found and found[0].seq == self.last + 1:
                    await self._deliver(found)
                elif found or self.pending or await self._behind():
                    missed_after = self.last
                    metrics.count_relay_resync()
                    log.info(  # the socket logs the WARNING, naming itself and the run
                        "relay_gap",
                        topic=self.topic,
                        missed_after=missed_after,
                        next_held=found[0].seq if found else None,
                    )
                    self.last = max(self.last, await self.sink.relay_resync(self.topic, missed_after))
                pending, self.pending = self.pending, None
                fresh = [entry for entry in pending if entry.seq > self.last]
                if fresh and fresh[0].seq != self.last + 1:
                    self.pending = fresh  # still a gap: read it back too
                elif fresh:
                    await self._deliver(fresh)
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket went away meanwhile, or sending failed
            log.exception("relay_fill_crashed", topic=self.topic)
            self.pending = None

    async def _behind(self) -> bool:
        """Did the log number entries after ours that it no longer holds?"""
        try:
            return await self.reader.log.alast_seq(self.topic) > self.last
        except Exception:
            return False

    def close(self) -> None:
        self.reader.unsubscribe(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()


class Reader:
    """Follows the topics of one event loop's sockets (see the module's docstring)."""

    def __init__(self, log_: RelayLog) -> None:
        self.log = log_
        self.subscriptions: dict[str, set[Subscription]] = {}
        self.cursors: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.failing = False

    async def subscribe(self, topic: str, sink: Sink, *, after: int | None = None,
                        ordered: bool = True) -> Subscription:  # fmt: skip
        """Deliver ``topic``'s entries after number ``after`` (None: from now on) to ``sink``."""
        if after is None:
            after = await self.log.alast_seq(topic)
        subscription = Subscription(self, topic, sink, after=after, ordered=ordered)
        cursor = self.cursors.get(topic)
        if cursor is None:
            self.cursors[topic] = after
        elif after < cursor:  # behind the reader: the entries in between come from the log
            subscription.fill([])
        self.subscriptions.setdefault(topic, set()).add(subscription)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        members = self.subscriptions.get(subscription.topic)
        if members is None:
            return
        members.discard(subscription)
        if not members:
            del self.subscriptions[subscription.topic]
            self.cursors.pop(subscription.topic, None)

    async def _run(self) -> None:
        while self.subscriptions:
            cursors = {topic: self.cursors[topic] for topic in self.subscriptions}
            try:
                found = await self.log.aread(cursors, block_ms=BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.failing:
                    log.warning("relay_read_failed", topics=len(cursors), error=type(exc).__name__)
                self.failing = True
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if self.failing:
                log.info("relay_read_recovered", topics=len(cursors))
                self.failing = False
            for topic, entries in found.items():
                await self._dispatch(topic, entries)
            if found:
                await asyncio.sleep(TICK)

    async def _dispatch(self, topic: str, entries: list[Entry]) -> None:
        cursor = self.cursors.get(topic)
        if cursor is None or not entries:
            return  # nobody follows it any more
        fresh = [entry for entry in entries if entry.seq > cursor]
        if not fresh:
            return
        self.cursors[topic] = fresh[-1].seq
        for subscription in list(self.subscriptions.get(topic, ())):
            try:
                await subscription.offer(fresh)
            except Exception:  # one socket's failure is not another's
                log.exception("relay_delivery_failed", topic=topic)


_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Reader] = weakref.WeakKeyDictionary()


def reader() -> Reader:
    """The running loop's reader, for the configured log."""
    loop = asyncio.get_running_loop()
    current = relay_log()
    found = _readers.get(loop)
    if found is None or found.log is not current:
        found = Reader(current)
        _readers[loop] = found
    return found


async def stop_all() -> None:
    """Stop every reader of this loop (tests)."""
    found = _readers.pop(asyncio.get_running_loop(), None)
    if found is not None and found.task is not None:
        found.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await found.task
