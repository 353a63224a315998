"""One asyncio event loop per process, in a daemon thread, for the replies a worker streams.

Why: a reply spends almost all its life waiting for the next token. One blocked
thread per reply capped a worker at its thread count and paid a thread switch per
chunk; on one loop, hundreds of replies wait together at the cost of a socket each,
and they share one HTTP connection pool (``chat.aio_session``), so a finished
reply's connection is reused by the next.

Sync callers (Celery thread-pool tasks, which keep owning the step's claim,
retries and outcome) hand a coroutine over and wait:

    completion = stream_loop.run(stream_reply(...), timeout=600)

``run`` returns the coroutine's result or raises its exception; a caller that
stops waiting (timeout, or an exception raised in its thread) cancels the
coroutine, and waits a moment for its ``finally`` blocks, so an upstream request
is closed before ``run`` returns. ``submit`` returns the future without waiting.

The loop starts on first use. A forked child (Celery's prefork pool, a test
that forks) never touches its parent's loop, thread or sockets: it starts its own.
``shutdown`` (tests; run at exit too) closes the loop's HTTP session and stops it.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any

from chat import aio_session
from companionhub import step_slots

__all__ = ["current_loop", "in_loop_thread", "run", "shutdown", "submit"]

logger = logging.getLogger(__name__)

# How long a caller that stopped waiting gives the cancelled coroutine to run its
# ``finally`` blocks (closing its HTTP response) before ``run`` raises.
CANCEL_GRACE_SECONDS = 5.0


THREAD_NAME = "stream-loop"
_PR_SET_NAME = 15  # prctl(2)


def _name_os_thread(name: str) -> None:
    """Name the calling thread for the operating system too (``top -H``, ``/proc/<pid>/task``),
    so the streaming loop's CPU can be told from the steps' threads. Linux only; elsewhere the
    name stays Python's."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class _Loop:
    """The loop and its thread, as started in one process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)
        self.thread.start()
        self.ready.wait()

    def _serve(self) -> None:
        _name_os_thread(THREAD_NAME)
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self.ready.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


_lock = threading.Lock()
_current: _Loop | None = None
# A forked child keeps its parent's loop object in memory. Closing it there would
# unregister the parent's sockets from an epoll instance both share, so the child
# keeps a reference (no garbage collection, no __del__) and never touches it.
_inherited: list[_Loop] = []


def _after_fork_in_child() -> None:
    global _current, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    if _current is not None:
        _inherited.append(_current)
        _current = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(lambda: shutdown())  # close the pool's connections cleanly at exit


def _running() -> _Loop:
    global _current
    current = _current
    if current is not None and current.pid == os.getpid():
        return current
    with _lock:
        if _current is not None and _current.pid != os.getpid():  # forked without the hook
            _inherited.append(_current)
            _current = None
        if _current is None:
            _current = _Loop()
        return _current


def current_loop() -> asyncio.AbstractEventLoop:
    """The process's streaming loop, started if need be."""
    return _running().loop


def in_loop_thread() -> bool:
    current = _current
    return current is not None and current.thread is threading.current_thread()


def submit[T](coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the loop; the future holds its result or exception.

    Cancelling the future cancels the coroutine (``asyncio.CancelledError`` inside it).
    """
    return asyncio.run_coroutine_threadsafe(coro, current_loop())


def run[T](coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
    """Run ``coro`` on the loop and wait for it: its result, or its exception re-raised.

    After ``timeout`` seconds the coroutine is cancelled and ``TimeoutError`` raised.
    Not from the loop's own thread (it would wait for itself): ``await`` there.
    """
    if in_loop_thread():
        coro.close()
        raise RuntimeError("stream_loop.run() called from the loop's own thread; await the coroutine")
    loop = current_loop()
    finished = threading.Event()
    tasks: list[asyncio.Task[T]] = []

    def start() -> None:
        task = loop.create_task(coro)
        task.add_done_callback(lambda _task: finished.set())
        tasks.append(task)

    loop.call_soon_threadsafe(start)
    with step_slots.waiting():  # the step computes nothing while its coroutine runs or closes
        try:
            if not finished.wait(timeout):
                raise TimeoutError(f"the coroutine did not finish within {timeout} s")
        except BaseException:
            # The caller stops waiting (the timeout, or an exception raised in its thread):
            # cancel the coroutine and give it a moment to close what it holds (its HTTP
            # response). Callbacks run in order, so ``start`` has run before the cancel.
            loop.call_soon_threadsafe(lambda: tasks[0].cancel())
            finished.wait(CANCEL_GRACE_SECONDS)
            raise
    return tasks[0].result()


def shutdown(timeout: float = 5.0) -> None:
    """Close the loop's HTTP session, cancel what still runs on it, stop it (tests, exit).

    The next use starts a new loop.
    """
    global _current
    with _lock:
        current, _current = _current, None
    if current is None or current.pid != os.getpid():
        return
    loop = current.loop
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(_wind_down(), loop).result(timeout)
    loop.call_soon_threadsafe(loop.stop)
    current.thread.join(timeout)


async def _wind_down() -> None:
    this = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not this]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await aio_session.close_session()
