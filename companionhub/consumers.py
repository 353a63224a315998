"""Project-level websocket consumers."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class PingConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/ping/``: answers ``{"type": "ping"}`` with ``{"type": "pong"}``.

    A liveness probe for the websocket path (proxy, Origin check, channel
    layer): each pong travels through the channel layer, not straight back.
    """

    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: object, **kwargs: object) -> None:
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
