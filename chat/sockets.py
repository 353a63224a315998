"""Closing open websockets from anywhere (token revoked, user deactivated).

Channels checks the session only when a socket connects; a long-lived
consumer must be told when its credentials end. Consumers join groups for
their user and their API token; a ``socket.close`` event makes them close.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chat.events import CLOSE_SESSION_ENDED


def close_sockets(group: str, code: int = CLOSE_SESSION_ENDED) -> None:
    async_to_sync(get_channel_layer().group_send)(group, {"type": "socket.close", "code": code})
