"""One ``aiohttp.ClientSession`` per event loop: the connection pool of the async LLM calls.

Every async call of every client on a loop goes through the loop's one session,
so hundreds of replies streamed on ``chat.stream_loop`` share keep-alive
connections instead of opening one each. Per-request settings (the connection's
key, its timeouts) travel with each request, not with the session.

A session belongs to the loop it was made on; a forked child never uses its
parent's (its loop is another), and keeps the parent's objects untouched in
memory rather than closing sockets it shares with the parent.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp

__all__ = ["MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_HOST", "close_session", "session"]

# A worker holds hundreds of replies at once; beyond these a request waits for a free
# connection (its connect timeout counts from when it has one).
MAX_CONNECTIONS = 1000
MAX_CONNECTIONS_PER_HOST = 500
KEEPALIVE_SECONDS = 30.0
DNS_CACHE_SECONDS = 300

_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_inherited: list[aiohttp.ClientSession] = []


def _after_fork_in_child() -> None:
    _inherited.extend(_sessions.values())
    _sessions.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def session() -> aiohttp.ClientSession:
    """The running loop's session, made on first use."""
    loop = asyncio.get_running_loop()
    current = _sessions.get(loop)
    if current is None or current.closed:
        for stale in [other for other in _sessions if other.is_closed()]:
            del _sessions[stale]  # loops gone (a test's): their sessions died with them
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS,
            limit_per_host=MAX_CONNECTIONS_PER_HOST,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ttl_dns_cache=DNS_CACHE_SECONDS,
        )
        # No session-wide timeout: each request brings its connection's connect and read
        # timeouts, as the sync client does. Bodies are decoded (gzip, deflate) as they come.
        current = _sessions[loop] = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True
        )
    return current


async def close_session() -> None:
    """Close the running loop's session and its connections (loop shutdown, tests)."""
    current = _sessions.pop(asyncio.get_running_loop(), None)
    if current is not None and not current.closed:
        await current.close()
