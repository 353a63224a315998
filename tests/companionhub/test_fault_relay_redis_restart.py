"""The relay log's async client after a Redis restart: a connection left idle in its pool across
the restart is stale, and the next command must not fail on it.

Daphne's first reconnect after a Redis restart read the conversation's last
number on such a connection: 'Exception inside application: Connection closed
by server', and the socket closed before its snapshot.
"""

from __future__ import annotations

import pytest

from companionhub.relay import RedisLog

pytestmark = pytest.mark.fault


async def test_the_first_read_after_a_redis_restart_works_on_a_connection_left_idle(redis_server):
    log = RedisLog(redis_server.url, prefix="restart", maxlen=100, ttl=60)
    before = await log.alast_seq("conversation.1")  # a connection is in the pool now, idle

    redis_server.restart()

    # The counter was lost with everything else: it starts again from the clock, higher.
    assert await log.alast_seq("conversation.1") > before
    assert await log.arange("conversation.1", 0) == []
    await log.aclient().aclose()
