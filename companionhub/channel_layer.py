"""Channel layers: the configured one (``channel_layer()``), and an in-memory one other threads may send to.

In the embedded default the Celery worker runs in threads of the web
process, each with its own event loop, while consumers wait on the server's
loop. ``asyncio.Queue`` is not thread-safe: a put from a worker thread wakes
the server loop only by chance, so tokens would arrive late and in bursts.
This layer remembers which loop receives on each channel and hops a send
from any other loop onto it with ``run_coroutine_threadsafe``. Redis
deployments use channels-redis and never need this.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from django.core.exceptions import ImproperlyConfigured


def channel_layer() -> BaseChannelLayer:
    """The default channel layer. Settings always configure one, so its absence is a broken setup."""
    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured("CHANNEL_LAYERS has no default layer.")
    return layer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiver_loops: dict[str, asyncio.AbstractEventLoop] = {}

    async def receive(self, channel: str) -> dict[str, Any]:
        self._receiver_loops[channel] = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        loop = self._receiver_loops.get(channel)
        if loop is not None and loop is not asyncio.get_running_loop() and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(InMemoryChannelLayer.send(self, channel, message), loop)
            await asyncio.wrap_future(future)
            return
        await super().send(channel, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        # Snapshot the members: the receivers' loop may add or drop them meanwhile.
        for channel in list(self.groups.get(group, {})):
            # Same as the parent: a full channel drops, the snapshot on reconnect repairs.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)

    async def group_discard(self, group: str, channel: str) -> None:
        await super().group_discard(group, channel)
        if not any(channel in members for members in self.groups.values()):
            self._receiver_loops.pop(channel, None)
