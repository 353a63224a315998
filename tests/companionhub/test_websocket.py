"""The websocket stack: Origin check, routing, and the channel layer."""

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from companionhub.asgi import application

GOOD_ORIGIN = [(b"origin", b"http://localhost:8000")]


async def ping_round_trip() -> dict:
    communicator = WebsocketCommunicator(application, "/ws/ping/", headers=GOOD_ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    try:
        await communicator.send_json_to({"type": "ping"})
        return await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()


async def test_ping_with_the_configured_layer():
    assert await ping_round_trip() == {"type": "pong"}


async def test_ping_through_the_redis_layer(redis_url):
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": "ch-test"},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.backends.clear()
        try:
            from channels.layers import get_channel_layer

            assert type(get_channel_layer()).__name__ == "RedisChannelLayer"
            assert await ping_round_trip() == {"type": "pong"}
        finally:
            channel_layers.backends.clear()


@pytest.mark.parametrize("headers", [[(b"origin", b"http://evil.example.com")], []], ids=["foreign", "none"])
async def test_a_foreign_or_missing_origin_is_refused(headers):
    communicator = WebsocketCommunicator(application, "/ws/ping/", headers=headers)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_a_bad_frame_gets_an_error_and_the_socket_stays_usable():
    communicator = WebsocketCommunicator(application, "/ws/ping/", headers=GOOD_ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    try:
        await communicator.send_to(text_data="not json{")
        error = await communicator.receive_json_from(timeout=5)
        assert error["type"] == "error"
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    finally:
        await communicator.disconnect()
