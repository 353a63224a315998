"""The Celery broker transport: kombu's Redis transport, surviving a Redis restart.

With Celery 5.7 and kombu 5.7, a worker whose Redis connection drops while a
task is in hand exits with ``Unrecoverable error: AttributeError("'NoneType'
object has no attribute 'hostname'")`` instead of reconnecting. Two paths
reach it, both through a channel of the connection that was lost:

- the consumer's connection-loss handler first *collects* the connection
  (detaching its transport: ``transport.client = None``) and then *closes*
  it; the channel's first close stopped early (the pending ``BRPOP`` failed on
  the dead socket), so the second one puts the unacked messages back
  (``restore_unacked``) through the detached transport;
- a task that was running when the connection dropped finishes after the
  worker reconnected, and its late ack goes to its message's old channel.

Either way the channel opens a Redis connection pool from the transport's
client, which is gone, and ``AttributeError`` is not a connection error, so
nothing catches it and the worker stops. This channel answers that request
with a connection error instead: kombu ignores it while closing, and Celery
logs the lost ack ("Couldn't ack") and goes on. Nothing is lost that was not
already: the Redis that held those messages is the one that went away (and a
message Redis still holds comes back after the visibility timeout).

Settings select it with ``CELERY_BROKER_TRANSPORT``; it serves ``redis://``
and ``rediss://`` URLs alike, as kombu's own does.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["Channel", "Transport"]


class Channel(redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("this broker channel's connection was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]  # not in the stubs


class Transport(redis.Transport):
    Channel = Channel
