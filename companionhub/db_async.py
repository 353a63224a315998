"""Database work from async code (the websocket consumers) on a bounded pool of threads.

Channels' ``database_sync_to_async`` is thread-sensitive by default: every
call from every consumer of a Daphne process runs on one shared thread, one
after another. A burst of ``message.send`` frames on some sockets then held
every other socket's snapshot and frames, and their events too, since Channels
runs its ``close_old_connections`` hop before each message a consumer
receives on that same thread.

``db_call(fn)(*args, **kwargs)`` runs ``fn`` on this process's pool of
``WS_DB_THREADS`` threads instead, with Django's connection handling around
each call (``close_old_connections`` before and after, as
``database_sync_to_async`` does). With ``CONN_MAX_AGE = 0`` and psycopg's
pool a thread borrows a connection for one call and returns it at the end, so
the threads never hold more than ``WS_DB_THREADS`` connections; the setting is
checked against ``DATABASE_POOL_MAX_SIZE``. A consumer handles one frame at a
time, so one socket uses at most one thread at once.

A function called this way must not count on the thread of an earlier call:
no thread-local state between calls, and a transaction opens and ends within
the call (``transaction.atomic`` inside the function, as the services do).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor:
    """This process's pool for consumers' database work, made at the first call."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=settings.WS_DB_THREADS, thread_name_prefix="ws-db")
    return _executor


def db_call[**P, R](fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``fn`` as an awaitable that runs on the pool, its connection tidied before and after."""
    return database_sync_to_async(fn, thread_sensitive=False, executor=db_executor())


def release_connection() -> None:
    """Give this thread's database connection back to the pool before a long wait (an LLM call):
    a worker's threads outnumber the pool's connections. Never inside a transaction."""
    if not connection.in_atomic_block:
        connection.close()
