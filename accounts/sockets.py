"""Closing a user's open websockets when their credentials end (token revoked, user deactivated, signed out).

Channels checks the session only when a socket connects; a long-lived
consumer must be told when its credentials end. Consumers follow the relay
topics of their user, their API token and their session (``accounts.tokens``
names them; ``companionhub.relay``); a ``socket.close`` event there makes them
close with ``code``.

The close code lives here, not with the chat protocol's other codes, because
ending sockets is the accounts app's business and accounts imports no other
app; the chat protocol takes it from here.
"""

from __future__ import annotations

from companionhub import relay

# A websocket close code (4000-4999 is the application's range): the credentials it opened with ended.
CLOSE_SESSION_ENDED = 4403


def close_sockets(group: str, code: int = CLOSE_SESSION_ENDED) -> None:
    """Tell every socket following ``group`` to close with ``code``."""
    relay.publish(group, {"type": "socket.close", "code": code})
