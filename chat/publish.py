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

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from django.db import transaction

from chat import events
from companionhub.relay import REFUSED, TEXT_APPEND, TEXT_REPLACE, Append, relay_log

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


def _append(append: Append) -> int | None:
    """Append; the number given, ``REFUSED``, or None when the log could not be reached (logged)."""
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
        if result is None or result == REFUSED:
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

    A batch goes out on the first token (so the first words show at once),
    when ``interval`` seconds have passed since the last send, or at the end
    of a sentence: one append that adds the batch to the live reply and logs
    its token event. Each token event carries its ``offset`` (in code points)
    so a client that got the text in a snapshot drops the overlap. When the
    run has ended the append is refused and ``refused`` is set: the stream
    stops at its next piece.
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

    def start(self, prefix: str) -> None:
        """A continued reply: its first ``prefix`` is shown already; the live reply starts with it."""
        self.text = prefix
        self.sent_upto = len(prefix)
        self._send(TEXT_REPLACE, prefix, [])

    def add(self, piece: str) -> None:
        if not piece:
            return
        self.text += piece
        now = self.clock()
        if (
            self.last_flush is None
            or now - self.last_flush >= self.interval
            or piece.rstrip(" ").endswith(SENTENCE_ENDS)
        ):
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self.sent_upto >= len(self.text) or self.refused:
            return
        pending = self.text[self.sent_upto :]
        self._send(TEXT_APPEND, pending, [events.token(self.run_id, pending, self.sent_upto)])
        self.sent_upto = len(self.text)
        self.last_flush = self.clock() if now is None else now
        self.batches += 1

    def finish(self, final: str) -> None:
        """The reply's final text (stripped, template debris and a group label taken off): what
        clients have that differs from it is sent again from where they part, so every
        socket ends with exactly the stored text (``done`` then carries its length)."""
        self.flush()
        common = _common_prefix_length(self.text, final)
        self.text = final
        self.sent_upto = len(final)
        to_send: list[Mapping[str, Any]] = (
            [events.token(self.run_id, final[common:], common)] if common < len(final) else []
        )
        self._send(TEXT_REPLACE, final, to_send)

    def _send(self, mode: int, text: str, to_send: Sequence[Mapping[str, Any]]) -> None:
        stamped = [{**event, **self.publisher.stamp} for event in to_send]
        append = Append(
            self.publisher.topic,
            stamped,
            unless_flag=run_ended_flag(self.run_id),
            text_key=live_reply_key(self.run_id),
            text=text,
            text_mode=mode,
        )
        result = _append(append)
        if result == REFUSED:
            self.refused = True
