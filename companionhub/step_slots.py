"""How many of a worker process's pipeline steps run Python at once.

Why: a chat worker has a hundred threads, and every reply it streams runs on one
event loop thread (``chat.stream_loop``) that shares the process's GIL with them.
When a burst of turns started, dozens of threads assembled prompts and wrote
runs at once; each time the loop thread gave the GIL up for a socket call it
queued behind them for it again (the "convoy" effect), and tokens already read
from the LLM waited seconds to be sent on. Their work is serial under the GIL
anyway, so letting only a few threads at a time run it costs them no throughput,
and the loop competes with a few threads instead of a hundred: at 100 streams in
one burst, first-token p99 went from 3.7 s to under 0.2 s in ``make bench``.

A step takes a slot for as long as it computes (``held``) and gives it back
while it only waits on the network (``waiting``): the reply streaming on the
loop, a scene analysis, an embeddings call. A waiting thread gives its database
connection back to the pool too (outside a transaction), as a worker's threads
outnumber the pool's connections. Waiting on the database keeps the slot, as
those waits are short; a site whose database is across a network raises
``WORKER_STEP_SLOTS``. Never wait for something another step must do
while holding a slot, and never give a slot back inside a transaction (another
step could then wait on its row locks for as long as the network wait lasts).

Both are per thread and nest: a step run inside another (an eager chain in
tests, the embedded worker) reuses the slot its thread holds, and ``waiting``
outside any step does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from django.conf import settings

from companionhub.db_async import release_connection

_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None
_local = threading.local()


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    if _slots is None:
        with _lock:
            if _slots is None:
                _slots = threading.BoundedSemaphore(settings.WORKER_STEP_SLOTS)
    return _slots


def holding() -> bool:
    """Whether this thread holds a slot now."""
    return bool(getattr(_local, "held", False))


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold a slot for the block (a step); wait for one if all are taken."""
    if holding():
        yield
        return
    slots = _semaphore()
    slots.acquire()
    _local.held = True
    try:
        yield
    finally:
        _local.held = False
        slots.release()


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Give this thread's slot and database connection back while the block waits on the
    network; take a slot again after (the connection when next asked for)."""
    release_connection()
    if not holding():
        yield
        return
    slots = _semaphore()
    _local.held = False
    slots.release()
    try:
        yield
    finally:
        slots.acquire()
        _local.held = True


def reset() -> None:
    """Forget the semaphore, so the next step sizes it from the settings again (tests)."""
    global _slots
    with _lock:
        _slots = None
