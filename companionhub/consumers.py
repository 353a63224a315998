"""Project-level websocket consumers."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from companionhub.ratelimits import scope_ip
from companionhub.socket_slots import CLOSE_TOO_MANY_SOCKETS, SocketSlots, refuse_socket

# Anyone may open a ping socket, signed in or not: without caps a client
# could hold thousands open. Per process (see socket_slots).
ping_slots = SocketSlots(
    total=lambda: settings.WS_PING_MAX_SOCKETS,
    per_address=lambda: settings.WS_PING_MAX_SOCKETS_PER_ADDRESS,
)


class PingConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/ping/``: answers ``{"type": "ping"}`` with ``{"type": "pong"}``.

    A liveness probe for the websocket path (proxy, Origin check, channel
    layer): each pong travels through the channel layer, not straight back.
    Open sockets are capped per client address (``WS_PING_MAX_SOCKETS_PER_ADDRESS``)
    and per process (``WS_PING_MAX_SOCKETS``); over a cap the socket is
    accepted and closed at once with 4429.
    """

    slot_address: str | None = None
    refused = False

    async def connect(self) -> None:
        address = scope_ip(self.scope)
        if not ping_slots.take(address):
            self.refused = True
            await refuse_socket(self, CLOSE_TOO_MANY_SOCKETS)
            return
        self.slot_address = address
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.slot_address is not None:
            ping_slots.release(self.slot_address)
            self.slot_address = None

    async def receive_json(self, content: object, **kwargs: object) -> None:
        if self.refused:  # sent before the refusal's close reached the client
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.channel_layer.send(self.channel_name, {"type": "ping.reply"})
        else:
            await self.send_json({"type": "error", "code": "bad_frame", "message": 'Send {"type": "ping"}.'})

    async def ping_reply(self, event: dict) -> None:
        await self.send_json({"type": "pong"})

    @classmethod
    async def decode_json(cls, text_data: str) -> object:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None
