"""Apply the body rules inside Daphne, while the request's headers arrive.

Daphne (Twisted) calls the ASGI application only once the whole body is in:
Twisted writes it to memory (under 100 kB) or a temporary file, and for a
``multipart/form-data`` POST it then parses all of it in memory
(``twisted.web.http.Request.requestReceived``), about twelve times its size,
before Daphne reads a byte of it. A guard in the application therefore comes
too late: a 100 MB multipart body to ``/`` grew Daphne by 1.2 GB.

``install()`` makes Daphne build its requests from ``GuardedWebRequest``, which

* never lets Twisted parse form bodies: Daphne does not use what Twisted
  parses, Django parses the body itself, streaming, on the URLs that take one;
* applies ``companionhub.body_limits`` once the headers are in, before any of
  the body: a declared ``Content-Length`` over the URL's limit (413) or a
  multipart body on a URL without uploads (415) is answered at once;
* counts a body without ``Content-Length`` (chunked) as it arrives and
  answers 413 when it passes the limit.

After refusing, the answer is sent, our side of the connection is closed
for writing, and whatever the client still sends is read and dropped for up
to ``LINGER_SECONDS`` (a client that writes its whole body before reading
then sees the answer instead of a connection reset), then the connection is
closed. Nothing of a refused body is kept.

It relies on Daphne's ``HTTPFactory`` looking ``WebRequest`` up in its module
when a connection opens, and on Twisted's ``HTTPChannel`` keeping the request
path in ``_path`` until the body is in (Daphne 4.2, Twisted 26);
tests/security/test_daphne_edge.py runs the real Daphne to notice if either
changes.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import unquote

from daphne import http_protocol

from companionhub import body_limits

# How long a refused client may go on sending (dropped) before the connection is closed.
LINGER_SECONDS = 10

_BaseWebRequest: type[http_protocol.WebRequest] = http_protocol.WebRequest


def _response_bytes(refusal: body_limits.Refusal) -> bytes:
    body = refusal.body
    head = (
        f"HTTP/1.1 {refusal.status} {refusal.reason}\r\n"
        f"Content-Type: {refusal.content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _request_path(target: bytes) -> str:
    """The path Django resolves, from the request line's target (query string dropped)."""
    return unquote(target.split(b"?", 1)[0].decode("latin-1")) or "/"


class GuardedWebRequest(_BaseWebRequest):
    """Daphne's request, refusing a body the URL does not take before it is read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Twisted would parse a whole multipart body in memory before Daphne runs.
        self._parsePOSTFormSubmission = False
        self._body_rule: body_limits.BodyRule | None = None
        self._body_seen = 0
        self._refused = False

    def gotLength(self, length: int | None) -> None:
        """All headers are in and nothing of the body yet: decide now."""
        super().gotLength(length)
        # The request's own ``path`` is set only when the body is complete; an
        # HTTP/1 channel has the request target from the request line. Without
        # it (HTTP/2, only when Daphne serves TLS itself) the widest rule holds
        # here and the ASGI guard applies the URL's own.
        target = getattr(self.channel, "_path", None)
        if target is None:
            rule = body_limits.BodyRule(limit=body_limits.upload_limit(), takes_uploads=True)
        else:
            rule = body_limits.rule_for(_request_path(target))
        content_type = (self.requestHeaders.getRawHeaders(b"content-type") or [b""])[0]
        refusal = rule.refusal(content_type=content_type.decode("latin-1"), content_length=length)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._body_rule = rule

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_seen += len(data)
        if self._body_rule is not None and self._body_seen > self._body_rule.limit:
            self._refuse(self._body_rule.too_large())
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:  # already answered; the application never sees it
            return
        super().requestReceived(command, path, version)

    def _refuse(self, refusal: body_limits.Refusal) -> None:
        self._refused = True
        channel = self.channel
        # Twisted answers "Expect: 100-continue" right after this; no go-ahead for a refused body.
        self.requestHeaders.removeHeader(b"expect")
        self.content.close()
        channel.transport.write(_response_bytes(refusal))
        # Drop the rest of the body as it comes, then close: a client still
        # writing reads the answer instead of a reset.
        channel.dataReceived = _discard
        lose_write = getattr(channel.transport, "loseWriteConnection", None)
        if lose_write is not None:
            lose_write()
        # A clock of our own, not the channel's idle timeout: Twisted switches that off
        # when the (refused) body happens to be complete, which would leave the
        # half-closed connection open for as long as the client likes. The channel's
        # callLater asks the running reactor, so this module never imports the reactor:
        # importing it before Daphne installs its own would install Twisted's default one.
        channel.callLater(LINGER_SECONDS, partial(_abort, channel.transport))


def _discard(data: bytes) -> None:
    """The channel's ``dataReceived`` after a refusal: read and forget."""


def _abort(transport: Any) -> None:
    """End a refused connection once its linger is over (nothing happens if it is already gone)."""
    abort = getattr(transport, "abortConnection", None) or transport.loseConnection
    abort()


def install() -> None:
    """Make Daphne build every HTTP request as a ``GuardedWebRequest`` (idempotent)."""
    http_protocol.WebRequest = GuardedWebRequest
