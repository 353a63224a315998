"""Incoming websocket message sizes under Daphne: an error frame, a close code, never a reset.

Daphne gives autobahn a limit of 1 MiB per incoming message and frame (its
``--websocket-max-message-size`` and ``--websocket-max-frame-size`` defaults),
and autobahn fails a socket over a limit by dropping the TCP connection
(``failByDrop``): the client sees a connection reset, where the protocol
promises a ``frame_too_large`` error frame (docs/websocket.md).

``install()`` makes Daphne build its websocket factory as
``SizedWebSocketFactory``, which

* lets messages up to ``WS_MAX_MESSAGE_BYTES`` (16 MiB by default) reach the
  consumers, which answer anything over their own limit (the chat protocol's
  64 KiB) with a ``frame_too_large`` error frame; the socket stays usable;
* closes a socket whose message passes that hard cap with 1009 (message too
  big) and a closing handshake instead of a dropped connection: autobahn reads
  and drops the rest of the message, so the client sees the close code.

The cap bounds what one socket can make Daphne hold in memory: autobahn keeps
a message whole until its last byte is in. It replaces whatever Daphne's
command line says, so ``WS_MAX_MESSAGE_BYTES`` is the one setting.

It relies on ``daphne.server.Server.run`` looking ``WebSocketFactory`` up in
its module when it starts, after the CLI has imported ``companionhub.asgi``
(Daphne 4.2); tests/companionhub/test_daphne_websockets.py runs the real
Daphne to notice if that changes.
"""

from __future__ import annotations

from typing import Any

from daphne import server, ws_protocol
from django.conf import settings

# The close code autobahn sends for a message over the cap (RFC 6455 "message too big").
CLOSE_MESSAGE_TOO_BIG = 1009


class SizedWebSocketFactory(ws_protocol.WebSocketFactory):
    """Daphne's websocket factory, with our message cap and a closing handshake on failure."""

    def setProtocolOptions(self, *args: Any, **options: Any) -> None:
        cap = settings.WS_MAX_MESSAGE_BYTES
        options.update(maxMessagePayloadSize=cap, maxFramePayloadSize=cap, failByDrop=False)
        super().setProtocolOptions(*args, **options)


def install() -> None:
    """Make Daphne build its websocket factory as a ``SizedWebSocketFactory`` (idempotent)."""
    server.WebSocketFactory = SizedWebSocketFactory
