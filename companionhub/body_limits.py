"""How large a request body may be, by URL, and an ASGI guard that enforces it.

Only the pages with a file input take uploads (``UPLOAD_VIEWS``): their limit
is a picture (``IMAGE_MAX_BYTES``) plus the form around it, or for a page whose
file is something else its own setting (``FILE_LIMITS``: the chat import takes
``CHAT_IMPORT_MAX_BYTES``, the voice upload ``VOICE_UPLOAD_MAX_BYTES``). A URL a
script posts to (``JSON_ANSWERS``) has its refusals as ``{"error": "..."}``. Every other URL
takes ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB by default) and no
``multipart/form-data`` at all: such a body is refused with **415** without
being read, so Django's multipart parser never runs on a URL that has no
use for it. A body over the limit is refused with **413**: at once when its
``Content-Length`` says so, or as soon as the count of a streamed (chunked)
body passes the limit.

The same rules are enforced in three places, each for a server shape:

* ``companionhub.daphne_guard`` inside Daphne, while the headers arrive.
  Daphne (Twisted) calls the application only after the whole body is in,
  and parses a multipart body in memory first, so that is the guard that
  keeps memory bounded in production.
* ``BodyLimitMiddleware`` below, around the ASGI application: the guard for
  servers that stream the body to the application (uvicorn, hypercorn) and a
  second line under Daphne.
* ``companionhub.uploads.RequestSizeLimitMiddleware`` in Django, for the
  test client and WSGI.

nginx's ``client_max_body_size`` (docs/security.md) keeps a huge body off the
machine before any of them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import Resolver404, resolve

# Typed as Django's ASGI handler takes them, so it fits the application this guard wraps.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# URL names whose forms have a file input (enctype="multipart/form-data"):
# the companion wizard's last step, a companion's settings, the card import, the lorebook
# import, and the sampler-preset imports (a companion's model page, the admin's import page).
# tests/security/test_daphne_edge.py checks every such template is listed here.
UPLOAD_VIEWS = frozenset(
    {
        "companions:wizard",
        "companions:settings",
        "companions:card_import",
        "chat:model",
        "admin:chat_samplerpreset_import",
        "chat:import",
        "lorebooks:import",
    }
)

# Upload pages whose file is not a picture: the setting that caps the file, and what it is.
FILE_LIMITS = {
    "chat:import": ("CHAT_IMPORT_MAX_BYTES", "chat files"),
    "lorebooks:import": ("LOREBOOK_IMPORT_MAX_BYTES", "lorebook files"),
    # Push-to-talk posts its recording from a script (FormData), so no template has a form for it.
    "chat:transcribe": ("VOICE_UPLOAD_MAX_BYTES", "voice recordings"),
}

# URLs a script posts to and reads JSON from: their refusals are JSON too.
JSON_ANSWERS = frozenset({"chat:transcribe"})

# A form around the file: field names, the CSRF token, other fields, multipart boundaries.
FORM_OVERHEAD = 256 * 1024


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str
    message: str
    json: bool = False

    @property
    def content_type(self) -> str:
        return "application/json" if self.json else "text/plain; charset=utf-8"

    @property
    def body(self) -> bytes:
        return json.dumps({"error": self.message}).encode() if self.json else self.message.encode()


@dataclass(frozen=True, slots=True)
class BodyRule:
    """The body a URL takes: at most ``limit`` bytes; multipart only where ``takes_uploads``."""

    limit: int
    takes_uploads: bool
    what: str = "pictures"
    answers_json: bool = False

    def too_large(self) -> Refusal:
        if self.takes_uploads:
            limit_mb = max(self.limit - FORM_OVERHEAD, 0) // (1024 * 1024)
            message = f"The upload is too large: {self.what} can be at most {limit_mb} MB."
        else:
            message = f"The request body is too large: this address takes at most {self.limit} bytes."
        return Refusal(413, "Content Too Large", message, json=self.answers_json)

    def refusal(self, *, content_type: str, content_length: int | None) -> Refusal | None:
        """The answer to a request with these headers before any of its body is read, or None."""
        if content_length is not None and content_length > self.limit:
            return self.too_large()
        if not self.takes_uploads and content_type.strip().lower().startswith("multipart/"):
            return Refusal(415, "Unsupported Media Type", "This address takes no file uploads.")
        return None


def upload_limit() -> int:
    """The largest body any upload page takes (the rule when the URL is not known yet)."""
    largest = max([settings.IMAGE_MAX_BYTES, *(getattr(settings, name) for name, _ in FILE_LIMITS.values())])
    return largest + FORM_OVERHEAD


def rule_for(path: str) -> BodyRule:
    """The body rule of a URL path (without the query string, percent-decoded)."""
    try:
        view_name = resolve(path).view_name
    except Resolver404:
        view_name = ""
    if view_name in FILE_LIMITS:
        setting, what = FILE_LIMITS[view_name]
        return BodyRule(
            limit=getattr(settings, setting) + FORM_OVERHEAD,
            takes_uploads=True,
            what=what,
            answers_json=view_name in JSON_ANSWERS,
        )
    if view_name in UPLOAD_VIEWS:
        return BodyRule(limit=settings.IMAGE_MAX_BYTES + FORM_OVERHEAD, takes_uploads=True)
    # DATA_UPLOAD_MAX_MEMORY_SIZE=None switches Django's own cap off; keep a bound anyway.
    return BodyRule(limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or upload_limit(), takes_uploads=False)


def parse_content_length(value: bytes | str | None) -> int | None:
    """The declared length, or None when there is none (chunked) or it is not a number."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    return int(text) if text.isdigit() else None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value
    return None


def _app_path(scope: Scope) -> str:
    """The path Django resolves: ``path`` without the ``root_path`` prefix."""
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


async def send_refusal(send: Send, refusal: Refusal) -> None:
    body = refusal.body
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", refusal.content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """ASGI middleware: refuse a body the URL does not take before the application reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = rule_for(_app_path(scope))
        content_type = (_header(scope, b"content-type") or b"").decode("latin-1")
        refusal = rule.refusal(
            content_type=content_type, content_length=parse_content_length(_header(scope, b"content-length"))
        )
        if refusal is not None:
            await send_refusal(send, refusal)
            return
        await self.app(scope, *_counted(rule, receive, send))


def _counted(rule: BodyRule, receive: Receive, send: Send) -> tuple[Receive, Send]:
    """``receive``/``send`` for the application that cut the body at the rule's limit.

    When the count passes the limit the guard answers 413 itself and tells the
    application the client has gone (``http.disconnect``), which Django takes
    as an aborted request; anything the application still sends is dropped.
    """
    seen = 0
    refused = False
    response_started = False

    async def counted_receive() -> Message:
        nonlocal seen, refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > rule.limit:
                refused = True
                if not response_started:
                    await send_refusal(send, rule.too_large())
                return {"type": "http.disconnect"}
        return message

    async def guarded_send(message: Mapping[str, Any]) -> None:
        nonlocal response_started
        if refused:
            return
        if message["type"] == "http.response.start":
            response_started = True
        await send(message)

    return counted_receive, guarded_send
