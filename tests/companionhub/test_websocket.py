"""The websocket stack: Origin check, routing, the channel layer, the ping socket caps."""

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from chat import events
from companionhub import socket_slots
from companionhub.asgi import application
from companionhub.consumers import ping_slots

HOST = (b"host", b"localhost:8000")
GOOD_ORIGIN = [HOST, (b"origin", b"http://localhost:8000")]


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


async def handshake(headers: list[tuple[bytes, bytes]]) -> bool:
    """Open /ws/ping/ with these headers; say whether the handshake was accepted."""
    communicator = WebsocketCommunicator(application, "/ws/ping/", headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize(
    "origins",
    [
        [b"http://evil.example.com"],
        [],
        [b"null"],
        [b"http://localhost:8001"],  # the same host on another port
        [b"https://localhost:8000"],  # https while the site is served over http here
        [b"http://localhost"],  # no port: not the page's origin either
        [b"http://localhost:8000", b"http://evil.example.com"],  # two Origin headers
    ],
    ids=["foreign", "none", "null", "other-port", "other-scheme", "no-port", "repeated"],
)
async def test_an_origin_that_is_not_the_sites_own_is_refused(origins):
    assert not await handshake([HOST, *((b"origin", o) for o in origins)])


async def test_the_sites_own_origin_is_accepted():
    assert await handshake(GOOD_ORIGIN)


async def test_a_host_outside_allowed_hosts_gives_no_own_origin(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    assert not await handshake(GOOD_ORIGIN)
    assert await handshake([(b"host", b"chat.example.com"), (b"origin", b"http://chat.example.com")])


async def test_behind_a_tls_proxy_only_the_https_origin_is_accepted(settings):
    # BEHIND_TLS_PROXY=True sets this in production: nginx speaks plain http to
    # Daphne and says the browser used https.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    host, proto = (b"host", b"chat.example.com"), (b"x-forwarded-proto", b"https")
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    assert await handshake([host, proto, (b"origin", b"https://chat.example.com")])
    assert not await handshake([host, proto, (b"origin", b"http://chat.example.com")])
    # Without the proxy's word the connection is plain http, as Django's CSRF check sees it.
    assert not await handshake([host, (b"origin", b"https://chat.example.com")])


async def test_an_origin_listed_in_csrf_trusted_origins_is_accepted(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.example.org"]
    assert await handshake([HOST, (b"origin", b"https://app.example.com")])
    assert await handshake([HOST, (b"origin", b"https://chat.example.org")])
    assert not await handshake([HOST, (b"origin", b"http://chat.example.org")])
    assert not await handshake([HOST, (b"origin", b"https://app.example.com:8443")])


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


# --- ping socket caps ------------------------------------------------------------------


@pytest.fixture
def ping_caps(settings):
    """Small caps; the client address is the X-Forwarded-For entry (one trusted proxy)."""
    settings.TRUSTED_PROXY_HOPS = 1
    settings.WS_PING_MAX_SOCKETS_PER_ADDRESS = 2
    settings.WS_PING_MAX_SOCKETS = 3
    assert ping_slots.open_count() == 0, "a socket of an earlier test is still counted"
    return settings


async def open_ping(address: str) -> tuple[WebsocketCommunicator, bool, int | None]:
    headers = [*GOOD_ORIGIN, (b"x-forwarded-for", address.encode())]
    communicator = WebsocketCommunicator(application, "/ws/ping/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected, "a refusal must accept first, or the client never sees its close code"
    if await communicator.receive_nothing(timeout=0.2):
        return communicator, True, None
    closed = await communicator.receive_output()
    assert closed["type"] == "websocket.close", closed
    return communicator, False, closed.get("code")


async def test_ping_sockets_are_capped_per_client_address(ping_caps):
    opened = []
    try:
        for _ in range(2):
            communicator, connected, _ = await open_ping("198.51.100.1")
            opened.append(communicator)
            assert connected
        refused, connected, code = await open_ping("198.51.100.1")
        opened.append(refused)
        assert not connected and code == 4429
        other, connected, _ = await open_ping("198.51.100.2")
        opened.append(other)
        assert connected
        # A closed socket gives its slot back.
        await opened.pop(0).disconnect()
        again, connected, _ = await open_ping("198.51.100.1")
        opened.append(again)
        assert connected
    finally:
        for communicator in opened:
            await communicator.disconnect()
    assert ping_slots.open_count() == 0


async def test_ping_sockets_are_capped_per_process(ping_caps):
    opened = []
    try:
        for n in range(3):
            communicator, connected, _ = await open_ping(f"198.51.100.{10 + n}")
            opened.append(communicator)
            assert connected
        refused, connected, code = await open_ping("198.51.100.99")
        opened.append(refused)
        assert not connected and code == 4429
    finally:
        for communicator in opened:
            await communicator.disconnect()
    assert ping_slots.open_count() == 0


def test_the_too_many_sockets_code_is_the_one_the_chat_protocol_documents():
    assert socket_slots.CLOSE_TOO_MANY_SOCKETS == events.CLOSE_TOO_MANY_SOCKETS == 4429
