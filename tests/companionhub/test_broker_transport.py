"""The broker transport answers a closed connection's channel with a connection error (see its module)."""

from __future__ import annotations

import pytest
from kombu import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from companionhub.broker_transport import Transport


def test_a_redis_broker_uses_it(settings):
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("no Redis broker configured (the embedded default)")
    assert settings.CELERY_BROKER_TRANSPORT == "companionhub.broker_transport:Transport"
    from companionhub.celery import app

    assert app.connection_for_write().get_transport_cls() is Transport


def test_a_channel_of_a_closed_connection_raises_a_connection_error_not_attribute_error():
    connection = Connection("redis://127.0.0.1:1/0", transport=Transport)
    channel = Transport.Channel.__new__(Transport.Channel)  # no server needed: no connect on creation
    channel.connection = connection.transport
    connection.transport.client = None  # what kombu's Connection.collect() leaves behind
    with pytest.raises(RedisConnectionError):
        channel._connparams()
    assert RedisConnectionError in Transport(client=Connection("redis://127.0.0.1:1/0")).connection_errors
