"""Slots for open sockets of one kind in this process: a total cap and a cap per client address.

Counted in memory, not in the cache: the caps protect this process's memory
and file descriptors, and taking a slot must not cost a Redis round trip (or
fail when Redis is down). With several Daphne processes each has its own
slots. Consumers run on one event loop, and ``take``/``release`` do not await,
so no lock is needed.

A socket refused for want of a slot is closed with ``CLOSE_TOO_MANY_SOCKETS``,
defined here for every consumer that takes slots (the chat protocol's too).
``refuse_socket`` is how every consumer turns a socket away with a close code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from channels.generic.websocket import AsyncWebsocketConsumer

# A websocket close code (4000-4999 is the application's range), sent right after accepting.
CLOSE_TOO_MANY_SOCKETS = 4429


async def refuse_socket(consumer: AsyncWebsocketConsumer, code: int) -> None:
    """Accept the handshake, then close with ``code`` (from ``connect``, before anything else).

    A consumer that closes before accepting makes Daphne answer the handshake
    with HTTP 403: the client never sees the close code that says why
    (signed out, not found, too many sockets).
    """
    await consumer.accept()
    await consumer.close(code=code)


class SocketSlots:
    def __init__(self, *, total: Callable[[], int], per_address: Callable[[], int]) -> None:
        # Callables, read at each ``take``: settings may change (tests override them).
        self._total = total
        self._per_address = per_address
        self._open: Counter[str] = Counter()

    def take(self, address: str) -> bool:
        """Take a slot for ``address``; False when the process or the address has none left."""
        if self._open.total() >= self._total() or self._open[address] >= self._per_address():
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def open_count(self, address: str | None = None) -> int:
        return self._open.total() if address is None else self._open[address]
