"""Sending events to a conversation's websocket group from sync code.

``publish_after_commit`` is the one entry point for events about rows a
transaction writes: they go out once the rows exist. Pipeline steps, which
run outside a transaction and send many events, hold an ``EventPublisher``.

A Celery task is synchronous; ``async_to_sync(group_send)`` would build a new
event loop (and, with channels-redis, a new Redis connection) on every call.
``EventPublisher`` keeps one loop for the whole task, so the connection pool
is reused, and ``TokenBatcher`` sends tokens in small batches instead of one
layer call per token. Events are best-effort: the database (and the live
reply kept in the cache) is what a reconnecting client is given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction

from chat import events

log = structlog.get_logger(__name__)

LIVE_REPLY_TTL = 15 * 60
SENTENCE_ENDS = (".", "!", "?", "\n", "…", "*")


def live_reply_key(run_id: str) -> str:
    return f"chat:live-reply:{run_id}"


def forget_live_reply(run_id: str) -> None:
    """Drop the cached live reply; best-effort, it expires anyway."""
    try:
        cache.delete(live_reply_key(run_id))
    except Exception as exc:
        log.warning("live_reply_cache_failed", run_id=run_id, error=str(exc))


class EventPublisher:
    """Events to one conversation's channel group, each with ``stamp`` added (the speaker of a run)."""

    def __init__(self, conversation_id: int, *, stamp: dict[str, Any] | None = None) -> None:
        self.group = events.conversation_group(conversation_id)
        self.stamp = stamp or {}
        self.layer = get_channel_layer()
        self.loop = asyncio.new_event_loop()
        self.sent = 0

    def send(self, event: Mapping[str, Any]) -> None:
        event = {**event, **self.stamp}
        try:
            if self.layer is None:
                raise RuntimeError("no channel layer is configured")
            self.loop.run_until_complete(
                self.layer.group_send(self.group, {"type": "chat.event", "event": event})
            )
            self.sent += 1
        except Exception as exc:  # a lost event is repaired by the snapshot; a lost reply is not
            log.warning("event_send_failed", group=self.group, event_type=event.get("type"), error=str(exc))

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.close()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(conversation_id: int, *to_send: Mapping[str, Any]) -> None:
    """Send events, in order, to every socket of the conversation, now (best-effort)."""
    with EventPublisher(conversation_id) as publisher:
        for event in to_send:
            publisher.send(event)


def publish_after_commit(conversation_id: int, *to_send: Mapping[str, Any]) -> None:
    """Send events once the current transaction (if any) has committed."""
    transaction.on_commit(lambda: publish(conversation_id, *to_send))


class TokenBatcher:
    """Collects streamed text and sends it in batches.

    A batch goes out on the first token (so the first words show at once),
    when ``interval`` seconds have passed since the last send, or at the end
    of a sentence. Before each send the whole reply so far is written to the
    cache, so a client that connects between two batches gets everything in
    its snapshot; each token event carries its ``offset`` so that client can
    drop the overlap.
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
        if self.sent_upto >= len(self.text):
            return
        pending = self.text[self.sent_upto :]
        try:
            cache.set(live_reply_key(self.run_id), self.text, LIVE_REPLY_TTL)
        except Exception as exc:  # Redis restarting: the reply goes on, checkpoints go to the database
            log.warning("live_reply_cache_failed", run_id=self.run_id, error=str(exc))
        self.publisher.send(events.token(self.run_id, pending, self.sent_upto))
        self.sent_upto = len(self.text)
        self.last_flush = self.clock() if now is None else now
        self.batches += 1

    def replace_text(self, text: str) -> None:
        """Use the cleaned final text (template debris stripped) from now on."""
        self.text = text
        self.sent_upto = min(self.sent_upto, len(text))
