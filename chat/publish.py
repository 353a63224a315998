"""Sending a conversation's events: the one publish path, onto the relay's log (``companionhub.relay``).

``publish_after_commit`` is the entry point for events about rows a
transaction writes: they go out once the rows exist. Pipeline steps, which
run outside a transaction and send many events, hold an ``EventPublisher``;
``TokenBatcher`` sends a reply's tokens in batches.

Every event gets the conversation's next sequence number, and sockets fill
any gap from the log (docs/websocket.md, "Sequence numbers and resuming").
A run's events are guarded by its *ended* flag: the event that ends a run
(``cancelled``, a failure) sets it in the same atomic append, and every later
event of that run is refused, so none reaches a socket after the end; a
batcher whose tokens are refused knows the run ended (``TokenBatcher.refused``)
without asking the database.

The reply written so far lives beside the log (``live_reply``): each token
batch is appended to it in the same append, so a socket that connects
mid-reply gets every character in its snapshot, at no cost per batch beyond
the append itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from django.db import transaction

from chat import events
from companionhub.relay import REFUSED, TEXT_APPEND, TEXT_REPLACE, Append, Result, relay_log

log = structlog.get_logger(__name__)

SENTENCE_ENDS = (".", "!", "?", "\n", "…", "*")
# Events about one run, refused once the run has ended (a cancel's or failure's own event aside).
RUN_STREAM_TYPES = frozenset({"token", "progress", "state", "image"})


def run_ended_flag(run_id: str) -> str:
    return f"run-ended:{run_id}"


def live_reply_key(run_id: str) -> str:
    return f"live-reply:{run_id}"


def live_reply(run_id: str) -> str | None:
    """The reply written so far by a live run, or None (not streaming, or the log unavailable)."""
    try:
        return relay_log().live_text(live_reply_key(run_id))
    except Exception as exc:
        log.warning("live_reply_unavailable", run_id=run_id, error=type(exc).__name__)
        return None


def forget_live_reply(run_id: str) -> None:
    """Drop the live reply; best-effort, it expires anyway."""
    try:
        relay_log().forget_text(live_reply_key(run_id))
    except Exception as exc:
        log.warning("live_reply_forget_failed", run_id=run_id, error=type(exc).__name__)


def _append(append: Append) -> Result | None:
    """Append; its result, or None when the log could not be reached (logged)."""
    try:
        return relay_log().append_many([append])[0]
    except Exception as exc:  # Redis restarting: the database holds the state; sockets resync
        log.warning(
            "event_send_failed",
            topic=append.topic,
            event_types=[event.get("type") for event in append.events],
            error=type(exc).__name__,
        )
        return None


class EventPublisher:
    """Events to one conversation, each with ``stamp`` added (the speaker of a run)."""

    def __init__(self, conversation_id: int, *, stamp: dict[str, Any] | None = None) -> None:
        self.topic = events.conversation_group(conversation_id)
        self.stamp = stamp or {}
        self.sent = 0

    def send(self, event: Mapping[str, Any]) -> bool:
        """Send one event; False when it was refused (its run has ended) or could not be sent."""
        event = {**event, **self.stamp}
        run_id = event.get("run_id")
        guard = run_ended_flag(run_id) if run_id and event.get("type") in RUN_STREAM_TYPES else None
        result = _append(Append(self.topic, [event], unless_flag=guard))
        if result is None or result.last == REFUSED:
            return False
        self.sent += 1
        return True

    def end_run(self, run_id: str, *to_send: Mapping[str, Any]) -> None:
        """Send the events that end a run (cancelled, failed) and refuse the run's later events."""
        stamped = [{**event, **self.stamp} for event in to_send]
        _append(Append(self.topic, stamped, set_flag=run_ended_flag(run_id)))
        self.sent += len(stamped)

    def close(self) -> None:
        """Nothing to release: the log's connection is the process's."""

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(conversation_id: int, *to_send: Mapping[str, Any]) -> None:
    """Send events, in order, to every socket of the conversation, now."""
    publisher = EventPublisher(conversation_id)
    for event in to_send:
        publisher.send(event)


def publish_after_commit(conversation_id: int, *to_send: Mapping[str, Any]) -> None:
    """Send events once the current transaction (if any) has committed."""
    transaction.on_commit(lambda: publish(conversation_id, *to_send))


def publish_run_end_after_commit(conversation_id: int, run_id: str, *to_send: Mapping[str, Any]) -> None:
    """``EventPublisher.end_run`` once the current transaction (if any) has committed."""
    transaction.on_commit(lambda: EventPublisher(conversation_id).end_run(run_id, *to_send))


def _common_prefix_length(shown: str, final: str) -> int:
    """How many code points ``shown`` and ``final`` share from the start."""
    limit = min(len(shown), len(final))
    at = 0
    while at < limit and shown[at] == final[at]:
        at += 1
    return at


class TokenBatcher:
    """Collects streamed text and sends it in batches.

    Each batch is one append that adds the text to the live reply and logs its
    token event, with its ``offset`` (in code points) so a client that got the
    text in a snapshot drops the overlap. When the run has ended the append is
    refused and ``refused`` is set: the stream stops at its next piece.

    Sent by itself (a sync caller), a batch goes out on the first token (so the
    first words show at once), when ``interval`` seconds have passed since the
    last send, or at the end of a sentence. Registered with the loop's
    ``Ticker`` (a reply streamed on ``chat.stream_loop``), the ticker takes
    every reply's batch together on its clock instead (``take``), and the first
    token wakes it.
    """

    def __init__(self, publisher: EventPublisher, run_id: str, *, interval: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.publisher = publisher
        self.run_id = run_id
        self.interval = interval
        self.clock = clock
        self.text = ""
        self.sent_upto = 0
        self.last_flush: float | None = None
        self.batches = 0
        self.refused = False
        self.ticker: Ticker | None = None
        self.extra: list[Mapping[str, Any]] = []  # events that go out with the next batch
        # The live reply's length in UTF-8 bytes as last written; None: replace it whole next time.
        self.live_bytes: int | None = 0
        self.inflight: tuple[int, list[Mapping[str, Any]], int | None] | None = None

    def start(self, prefix: str) -> None:
        """A continued reply: its first ``prefix`` is shown already; the live reply starts with it."""
        self.text = prefix
        self.sent_upto = len(prefix)
        self._send(self._append(TEXT_REPLACE, prefix, []))

    def add(self, piece: str) -> None:
        if not piece:
            return
        first = self.last_flush is None and self.sent_upto == len(self.text)
        self.text += piece
        if self.ticker is not None:
            if first:
                self.last_flush = self.clock()
                self.ticker.poke()  # the first words go out at once
            return
        now = self.clock()
        if (
            self.last_flush is None
            or now - self.last_flush >= self.interval
            or piece.rstrip(" ").endswith(SENTENCE_ENDS)
        ):
            self.flush(now)

    def queue_event(self, event: Mapping[str, Any]) -> None:
        """Send ``event`` (a progress report) with the next batch, after its tokens."""
        self.extra.append(event)

    def take(self) -> Append | None:
        """The batch due now (text and queued events), or None; marks it sent."""
        if self.refused or (self.sent_upto >= len(self.text) and not self.extra):
            return None
        pending = self.text[self.sent_upto :]
        to_send: list[Mapping[str, Any]] = (
            [events.token(self.run_id, pending, self.sent_upto)] if pending else []
        )
        to_send.extend(self.extra)
        self.inflight = (self.sent_upto, self.extra, self.live_bytes)
        self.extra = []
        self.sent_upto = len(self.text)
        self.last_flush = self.clock()
        self.batches += 1
        if self.live_bytes is None:  # the live reply was lost: write all of it again
            return self._append(TEXT_REPLACE, self.text, to_send)
        return self._append(TEXT_APPEND, pending, to_send)

    def sent(self, result: Result | None) -> None:
        """How the batch ``take`` gave went: a batch that could not be sent is taken again, from
        the same offset, next time (so no client misses text)."""
        if self.inflight is None:
            return
        offset, extra, _ = self.inflight
        self.inflight = None
        if result is None:
            self.sent_upto = offset
            self.extra = extra + self.extra
            self.live_bytes = None  # unknown now: written whole next time
            return
        if result.last == REFUSED:
            self.refused = True
        elif not result.text_ok:
            self.live_bytes = None
        else:
            self.live_bytes = len(self.text[: self.sent_upto].encode())

    def flush(self, now: float | None = None) -> None:
        append = self.take()
        if append is not None:
            self._send(append)
            if now is not None:
                self.last_flush = now

    def finish(self, final: str) -> None:
        """The reply's final text (stripped, template debris and a group label taken off): what
        clients have that differs from it is sent again from where they part, so every
        socket ends with exactly the stored text (``done`` then carries its length)."""
        self.flush()
        common = _common_prefix_length(self.text, final)
        self.text = final
        self.sent_upto = len(final)
        to_send: list[Mapping[str, Any]] = []
        if common < len(final):
            to_send.append(events.token(self.run_id, final[common:], common))
        self._send(self._append(TEXT_REPLACE, final, to_send))

    def _append(self, mode: int, text: str, to_send: Sequence[Mapping[str, Any]]) -> Append:
        return Append(
            self.publisher.topic,
            [{**event, **self.publisher.stamp} for event in to_send],
            unless_flag=run_ended_flag(self.run_id),
            text_key=live_reply_key(self.run_id),
            text=text,
            text_mode=mode,
            text_bytes=self.live_bytes if mode == TEXT_APPEND and self.live_bytes is not None else -1,
        )

    def _send(self, append: Append) -> None:
        result = _append(append)
        if self.inflight is not None:
            self.sent(result)
        elif result is not None and result.last == REFUSED:
            self.refused = True
        elif result is not None and append.text_mode == TEXT_REPLACE:
            self.live_bytes = len(self.text.encode())


class Ticker:
    """One per event loop: every ``interval`` seconds, the batches of every reply streaming on
    the loop go out in one round trip (``RelayLog.aappend_many``)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.batchers: set[TokenBatcher] = set()
        self.wake = asyncio.Event()
        self.sending = asyncio.Lock()  # a reply's batches leave in order
        self.task: asyncio.Task[None] | None = None

    def register(self, batcher: TokenBatcher) -> None:
        batcher.ticker = self
        self.batchers.add(batcher)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def poke(self) -> None:
        self.wake.set()

    async def release(self, batcher: TokenBatcher) -> None:
        """Send what ``batcher`` still holds, then stop ticking for it."""
        self.batchers.discard(batcher)
        await self._send([batcher])
        batcher.ticker = None

    async def _run(self) -> None:
        while self.batchers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)
            self.wake.clear()
            await self._send(list(self.batchers))

    async def _send(self, batchers: list[TokenBatcher]) -> None:
        async with self.sending:
            taken = [(batcher, append) for batcher in batchers if (append := batcher.take()) is not None]
            if not taken:
                return
            results: list[Result | None]
            try:
                results = list(await relay_log().aappend_many([append for _, append in taken]))
            except Exception as exc:  # Redis restarting: each batch is taken again next tick
                log.warning("token_batches_not_sent", replies=len(taken), error=type(exc).__name__)
                results = [None] * len(taken)
            for (batcher, _), result in zip(taken, results, strict=True):
                batcher.sent(result)


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = weakref.WeakKeyDictionary()


def ticker(interval: float = 0.05) -> Ticker:
    """The running loop's ticker."""
    loop = asyncio.get_running_loop()
    found = _tickers.get(loop)
    if found is None:
        found = _tickers[loop] = Ticker(interval)
    return found
