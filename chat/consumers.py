"""``/ws/chat/<companion_id>/``: the chat protocol (docs/websocket.md).

Thin on purpose: authenticate in ``connect``, validate each frame, call a
service, forward pipeline events from the companion's group. Any bad frame
gets an ``error`` frame and the socket stays usable.

``ProtocolConsumer`` holds what every chat socket shares (authentication,
the per-user socket cap, closing when the session ends, frame parsing and
limits, error frames); ``ChatConsumer`` and the group chat's consumer
(``groups.consumers``) add only their target, snapshot and frames.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.cache import cache

from accounts.tokens import session_group, token_group, user_group
from chat import editing, events, pictures, services
from chat.selectors import companion_snapshot
from companionhub import metrics
from companionhub.text import UNSTORABLE_MESSAGE, has_unstorable_text
from companions.models import Companion
from companions.selectors import companions_without_large_columns

log = structlog.get_logger(__name__)

MAX_FRAME_BYTES = 64 * 1024
# The per-user socket count expires if a process dies without disconnecting its sockets.
SOCKET_COUNT_TTL = 6 * 60 * 60
MAX_CLIENT_ID = 64
EDIT_FRAMES = (
    "message.regenerate",
    "message.edit",
    "message.continue",
    "message.delete",
    "message.alternative",
)
PICTURE_ACTIONS = {
    "picture.repaint": pictures.picture_paint_again,
    "picture.use_as_header": pictures.picture_use_as_header,
    "picture.delete": pictures.picture_delete,
}


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _get_companion(user, companion_id: int) -> Companion | None:
    # Kept for the socket's life: names and ids only, not the card (services read what they need).
    return companions_without_large_columns().filter(pk=companion_id, owner=user).first()


def require_str(frame: dict[str, Any], name: str, *, max_length: int = 100) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not value:
        raise FrameError("bad_frame", f"'{name}' must be a non-empty string.")
    if len(value) > max_length:
        raise FrameError("bad_frame", f"'{name}' is too long.")
    return value


def client_id_field(frame: dict[str, Any]) -> str:
    """The frame's optional ``client_id`` ("" when absent), type-checked."""
    client_id = frame.get("client_id", "")
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID:
        raise FrameError("bad_frame", f"'client_id' must be a string of at most {MAX_CLIENT_ID} characters.")
    return client_id


def message_id_field(frame: dict[str, Any], *, required: bool = True) -> int | None:
    """The frame's ``message_id`` as a whole number (None when optional and absent).

    Only the type is checked here; whether the id is in range and names a
    message of this chat is the service's answer ("not found").
    """
    message_id = frame.get("message_id")
    if message_id is None and not required:
        return None
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise FrameError("bad_frame", "'message_id' must be a number.")
    return message_id


def message_send_fields(frame: dict[str, Any]) -> tuple[str, str, bool]:
    """(content, client_id, image) of a ``message.send`` frame, type-checked."""
    content = frame.get("content")
    if not isinstance(content, str):
        raise FrameError("bad_frame", "'content' must be a string.")
    client_id = client_id_field(frame)
    want_image = frame.get("image", False)
    if not isinstance(want_image, bool):
        raise FrameError("bad_frame", "'image' must be true or false.")
    return content, client_id, want_image


def run_uuid(run_id: str) -> str:
    """A run id as a UUID string; anything else is "not found" (never a server error)."""
    import uuid

    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        raise services.ChatError("not_found", "No such reply.") from None


class ProtocolConsumer(AsyncWebsocketConsumer):
    """The shared part of the chat sockets. Subclasses set ``client_frames`` and fill in the hooks."""

    client_frames: dict[str, type] = events.CLIENT_FRAMES

    async def load_target(self, user) -> bool:
        """Find what the URL names, for ``user``; False when it is missing or not theirs."""
        raise NotImplementedError

    def channel_group(self) -> str:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """Run in a thread: the snapshot sent right after connecting."""
        raise NotImplementedError

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=events.CLOSE_UNAUTHENTICATED)
            return
        if not await self.load_target(user):  # not found and not yours look the same
            await self.close(code=events.CLOSE_NOT_FOUND)
            return
        if not await self._count_socket(user.pk):
            await self.close(code=events.CLOSE_TOO_MANY_SOCKETS)
            return
        self.groups_joined = [self.channel_group(), user_group(user.pk)]
        if self.scope.get("api_token_id"):
            self.groups_joined.append(token_group(self.scope["api_token_id"]))
        elif session_key := getattr(self.scope.get("session"), "session_key", None):
            self.groups_joined.append(session_group(session_key))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await metrics.websocket_opened()
        self.counted_in_metrics = True
        # Joined the group first, then read: nothing sent in between is missed
        # (token events carry offsets, so the overlap is dropped by the client).
        snapshot = await database_sync_to_async(self.snapshot)()
        await self.send_json(snapshot)

    async def _count_socket(self, user_id: int) -> bool:
        """Take one of the user's socket slots; False when they are all in use."""
        key = f"ws-sockets:user:{user_id}"
        await cache.aadd(key, 0, timeout=SOCKET_COUNT_TTL)
        count = await cache.aincr(key)
        if count > settings.WS_MAX_SOCKETS_PER_USER:
            await cache.adecr(key)
            return False
        await cache.atouch(key, SOCKET_COUNT_TTL)
        self.socket_count_key = key
        return True

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted_in_metrics", False):
            self.counted_in_metrics = False
            await metrics.websocket_closed()
        if key := getattr(self, "socket_count_key", None):
            with contextlib.suppress(ValueError):  # expired meanwhile
                await cache.adecr(key)
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = self._parse(text_data, bytes_data)
            if frame["type"] == "ping":  # every socket answers a keep-alive the same way
                await self.send_json({"type": "pong"})
            else:
                await self._dispatch(frame)
        except FrameError as exc:
            await self.send_json(events.error(exc.code, exc.message))
        except services.ChatError as exc:
            await self.send_json(events.error(exc.code, exc.message, retry_after=exc.retry_after))
        except Exception:  # never let one frame kill the socket or leak a traceback
            log.exception("chat_frame_failed")
            await self.send_json(events.error("server_error", "Something went wrong. Please try again."))

    def _parse(self, text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise FrameError("bad_frame", "Send JSON text frames.")
        # surrogatepass: a lone surrogate is measured here and refused below, not a server error.
        if len(text_data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            raise FrameError("frame_too_large", f"Frames can be at most {MAX_FRAME_BYTES // 1024} KB.")
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
            raise FrameError("bad_json", "That frame is not valid JSON.") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("bad_frame", "Each frame must be a JSON object with a 'type'.")
        if frame["type"] not in self.client_frames:
            raise FrameError("unknown_type", f"Unknown frame type. Known: {', '.join(self.client_frames)}.")
        # JSON escapes can spell a NUL or a lone surrogate, which the database refuses: one check
        # here covers every frame's every field, before any service sees it.
        if has_unstorable_text(frame):
            raise FrameError("bad_frame", UNSTORABLE_MESSAGE)
        return frame

    # --- events from the channel layer ---

    async def chat_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def socket_close(self, message: dict[str, Any]) -> None:
        await self.close(code=message.get("code", events.CLOSE_SESSION_ENDED))

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))


class ChatConsumer(ProtocolConsumer):
    companion: Companion | None = None

    async def load_target(self, user) -> bool:
        companion_id = self.scope["url_route"]["kwargs"]["companion_id"]
        self.companion = await database_sync_to_async(_get_companion)(user, companion_id)
        return self.companion is not None

    def channel_group(self) -> str:
        return events.group_name(self.companion.pk)

    def snapshot(self) -> dict[str, Any]:
        return companion_snapshot(self.companion)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        user = self.scope["user"]
        if kind == "message.send":
            content, client_id, want_image = message_send_fields(frame)
            accepted = await database_sync_to_async(services.send_message)(
                user=user, companion=self.companion, text=content, want_image=want_image
            )
            await self.send_json(
                events.message_accepted(client_id, accepted.message.pk, str(accepted.run.pk))
            )
        elif kind in EDIT_FRAMES:
            await self._edit(kind, frame, user)
        elif kind in PICTURE_ACTIONS:
            await self._picture(kind, frame, user)
        elif kind == "run.cancel":
            run_id = require_str(frame, "run_id")
            await database_sync_to_async(self._cancel)(user, run_id)
        elif kind == "run.retry":
            run_id = require_str(frame, "run_id")
            run = await database_sync_to_async(self._retry)(user, run_id)
            await self.send_json(events.message_accepted("", run.user_message_id, str(run.pk)))

    async def _edit(self, kind: str, frame: dict[str, Any], user) -> None:
        client_id = client_id_field(frame)
        companion = self.companion
        if kind in ("message.regenerate", "message.continue"):
            rewrite = editing.message_regenerate if kind == "message.regenerate" else editing.message_continue
            accepted = await database_sync_to_async(rewrite)(
                user=user, companion=companion, message_id=message_id_field(frame, required=False)
            )
        elif kind == "message.edit":
            content = frame.get("content")
            if not isinstance(content, str):
                raise FrameError("bad_frame", "'content' must be a string.")
            accepted = await database_sync_to_async(editing.message_edit_last)(
                user=user,
                companion=companion,
                text=content,
                message_id=message_id_field(frame, required=False),
            )
        else:
            message_id = message_id_field(frame)
            action = editing.message_delete if kind == "message.delete" else editing.message_show_alternative
            await database_sync_to_async(action)(user=user, companion=companion, message_id=message_id)
            return  # the result reaches every open tab as a group event
        await self.send_json(events.message_accepted(client_id, accepted.message.pk, str(accepted.run.pk)))

    async def _picture(self, kind: str, frame: dict[str, Any], user) -> None:
        message_id = message_id_field(frame)
        result = await database_sync_to_async(PICTURE_ACTIONS[kind])(
            user=user, companion=self.companion, message_id=message_id
        )
        if kind == "picture.repaint":  # a run like any other: this socket learns its id first
            await self.send_json(events.message_accepted("", result.user_message_id, str(result.pk)))
        # The header and a deleted picture reach every open tab as group events.

    def _cancel(self, user, run_id: str) -> None:
        run = services.run_get_for_user(user, run_uuid(run_id))
        if run.companion_id != self.companion.pk:
            raise services.ChatError("not_found", "No such reply.")
        services.run_cancel(user=user, run_id=run.pk)

    def _retry(self, user, run_id: str):
        run = services.run_get_for_user(user, run_uuid(run_id))
        if run.companion_id != self.companion.pk:
            raise services.ChatError("not_found", "No such reply.")
        return services.run_retry(user=user, run_id=run.pk)
