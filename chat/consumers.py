"""The chat protocol (docs/websocket.md): one consumer for every conversation.

``/ws/conversation/<id>/`` is the route new clients use;
``/ws/chat/<companion_id>/`` (the companion's latest one-to-one chat) and
``/ws/group/<id>/`` (a group conversation) serve older clients with the same
consumer. Thin on purpose: authenticate in ``connect``, validate each frame,
call a service, forward the conversation's events. Any bad frame gets an
``error`` frame and the socket stays usable.

Events come from the relay (``companionhub.relay_reader``), not a channel
layer: the process's one reader hands them to the socket in order, each with
its sequence number, and fills any gap from the log or sends a fresh
snapshot. A client that reconnects with ``?after=<seq>`` gets what it missed
replayed after its snapshot (docs/websocket.md, "Sequence numbers and
resuming").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qs

import structlog
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.language import scope_language, user_language
from accounts.models import User
from accounts.tokens import session_group, token_group, user_group
from chat import conversations, editing, events, pictures, services
from chat.language import translated
from chat.models import Conversation
from chat.selectors import conversation_find_for_user, conversation_snapshot
from companionhub import metrics, relay_reader
from companionhub.db_async import db_call
from companionhub.errors import AppError
from companionhub.relay import Entry
from companionhub.socket_slots import refuse_socket
from companionhub.text import UNSTORABLE_MESSAGE, has_unstorable_text
from companions.selectors import companions_without_large_columns

log = structlog.get_logger(__name__)

MAX_FRAME_BYTES = 64 * 1024
# The per-user socket count expires if a process dies without disconnecting its sockets.
SOCKET_COUNT_TTL = 6 * 60 * 60
MAX_CLIENT_ID = 64
# Not a configured layer: this consumer takes no channel-layer messages (the relay delivers).
NO_CHANNEL_LAYER = "none"
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


def _find_conversation(user: User, kwargs: dict[str, Any]) -> Conversation | None:
    """What the route names, for ``user``: a conversation, a group, or a companion's latest chat."""
    if "conversation_id" in kwargs:
        return conversation_find_for_user(user, kwargs["conversation_id"])
    if "group_id" in kwargs:
        found = conversation_find_for_user(user, kwargs["group_id"])
        return found if found is not None and found.is_group else None
    companion = companions_without_large_columns().filter(pk=kwargs["companion_id"], owner=user).first()
    if companion is None:
        return None
    return conversations.conversation_for_companion(user=user, companion=companion)


def require_str(frame: dict[str, Any], name: str, *, max_length: int = 100) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not value:
        raise FrameError("bad_frame", _("'%(name)s' must be a non-empty string.") % {"name": name})
    if len(value) > max_length:
        raise FrameError("bad_frame", _("'%(name)s' is too long.") % {"name": name})
    return value


def client_id_field(frame: dict[str, Any]) -> str:
    """The frame's optional ``client_id`` ("" when absent), type-checked."""
    client_id = frame.get("client_id", "")
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID:
        raise FrameError(
            "bad_frame",
            _("'%(name)s' must be a string of at most %(count)s characters.")
            % {"name": "client_id", "count": MAX_CLIENT_ID},
        )
    return client_id


def bool_field(frame: dict[str, Any], name: str) -> bool | None:
    """The frame's optional true/false ``name`` (None when absent)."""
    value = frame.get(name)
    if value is not None and not isinstance(value, bool):
        raise FrameError("bad_frame", _("'%(name)s' must be true or false.") % {"name": name})
    return value


def message_id_field(frame: dict[str, Any], *, required: bool = True) -> int | None:
    """The frame's ``message_id`` as a whole number (None when optional and absent).

    Only the type is checked here; whether the id is in range and names a
    message of this chat is the service's answer ("not found").
    """
    message_id = frame.get("message_id")
    if message_id is None and not required:
        return None
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise FrameError("bad_frame", _("'%(name)s' must be a number.") % {"name": "message_id"})
    return message_id


def message_send_fields(frame: dict[str, Any]) -> tuple[str, str, bool]:
    """(content, client_id, image) of a ``message.send`` frame, type-checked."""
    content = frame.get("content")
    if not isinstance(content, str):
        raise FrameError("bad_frame", _("'%(name)s' must be a string.") % {"name": "content"})
    client_id = client_id_field(frame)
    want_image = frame.get("image", False)
    if not isinstance(want_image, bool):
        raise FrameError("bad_frame", _("'%(name)s' must be true or false.") % {"name": "image"})
    return content, client_id, want_image


def resume_point(scope: Mapping[str, Any]) -> int | None:
    """The ``after`` of the socket's query string: the last event number the client has."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("after") or []
    try:
        after = int(values[0]) if values else None
    except ValueError:
        return None
    return after if after is not None and after >= 0 else None


def run_uuid(run_id: str) -> str:
    """A run id as a UUID string; anything else is "not found" (never a server error)."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        raise AppError("not_found", _("No such reply.")) from None


class ConversationConsumer(AsyncWebsocketConsumer):
    """One conversation's socket: every frame of the protocol, for one-to-one chats and groups."""

    client_frames: dict[str, type] = events.CLIENT_FRAMES
    conversation: Conversation
    channel_layer_alias = NO_CHANNEL_LAYER
    refused = False

    async def load_target(self, user: User) -> bool:
        """Find what the URL names, for ``user``; False when it is missing or not theirs."""
        found = await db_call(_find_conversation)(user, self.scope["url_route"]["kwargs"])
        if found is None:
            return False
        self.conversation = found
        return True

    def channel_group(self) -> str:
        return events.conversation_group(self.conversation.pk)

    def snapshot(self) -> events.SnapshotEvent | events.GroupSnapshotEvent:
        """Run in a thread: the snapshot sent right after connecting."""
        return conversation_snapshot(self.conversation)

    async def connect(self) -> None:
        signed_in = self.scope.get("user")
        if signed_in is None or not signed_in.is_authenticated:
            await self.refuse(events.CLOSE_UNAUTHENTICATED)
            return
        user = cast(User, signed_in)  # a lazy proxy of the accounts User the session or token names
        # Frames have no request: every text this socket sends is in the user's language.
        self.language = user_language(user, fallback=scope_language(self.scope))
        if not await self.load_target(user):  # not found and not yours look the same
            await self.refuse(events.CLOSE_NOT_FOUND)
            return
        if not await self._count_socket(user.pk):
            await self.refuse(events.CLOSE_TOO_MANY_SOCKETS)
            return
        controls = [user_group(user.pk)]
        scope: Mapping[str, Any] = self.scope  # with the keys accounts.ws_auth adds (api_token_id)
        if scope.get("api_token_id"):
            controls.append(token_group(scope["api_token_id"]))
        elif session_key := getattr(self.scope.get("session"), "session_key", None):
            controls.append(session_group(session_key))
        await self.accept()
        await metrics.websocket_opened()
        self.counted_in_metrics = True
        self.socket_id = uuid.uuid4().hex[:12]
        self.held: list[tuple[str, Sequence[Entry]]] | None = []  # events before the snapshot
        reader = relay_reader.reader()
        topic = self.channel_group()
        start = await self._start_point(reader, topic, resume_point(self.scope))
        # Followed first, then read: nothing sent in between is missed (held until the
        # snapshot is out; token events carry offsets, so the client drops the overlap).
        self.subscriptions = [await reader.subscribe(topic, self, after=start)]
        for control in controls:
            self.subscriptions.append(await reader.subscribe(control, self, ordered=False))
        await self._send_snapshot(start)
        held, self.held = self.held, None
        for held_topic, entries in held:
            await self.relay_events(held_topic, entries)

    async def _start_point(self, reader: relay_reader.Reader, topic: str, after: int | None) -> int:
        """Where this socket's events start: after the client's ``after`` when the log still holds
        everything since, otherwise now (the snapshot says where things stand)."""
        last = await reader.log.alast_seq(topic)
        if after is None or after >= last:
            return last
        held = await reader.log.arange(topic, after)
        return after if held and held[0].seq == after + 1 else last

    async def _send_snapshot(self, seq: int) -> events.SnapshotEvent | events.GroupSnapshotEvent:
        with translation.override(self.language):  # a failed run's message in the snapshot
            snapshot = await db_call(self.snapshot)()
        snapshot["seq"] = seq
        await self.send_json(snapshot)
        return snapshot

    async def refuse(self, code: int) -> None:
        """Turn the socket away with ``code``: accepted first, so the client sees the code.

        Closing before accepting makes Daphne answer the handshake with HTTP 403,
        and a browser or program never learns why. Nothing is joined or counted
        and no snapshot is sent; frames that arrive before the close is done are
        ignored.
        """
        self.refused = True
        await refuse_socket(self, code)

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
        # The relay's subscriptions go first, and nothing below may stop them going: a socket
        # that closes while Redis restarts must not stay on the reader's list for ever.
        for subscription in getattr(self, "subscriptions", []):
            subscription.close()
        if getattr(self, "counted_in_metrics", False):
            self.counted_in_metrics = False
            await metrics.websocket_closed()
        if key := getattr(self, "socket_count_key", None):
            try:
                await cache.adecr(key)
            except ValueError:  # expired meanwhile
                pass
            except Exception as exc:  # Redis away (a restart loses the count anyway; else its TTL ends it)
                log.warning("socket_count_release_failed", key=key, error=type(exc).__name__)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.refused:  # sent before the refusal's close reached the client
            return
        # The relay can bring the events a frame causes ("turn.started") while the frame is still
        # being answered: they wait, so this socket gets its "message.accepted" first, as the
        # protocol promises (docs/websocket.md).
        self.held = []
        try:
            with translation.override(self.language):  # the services' refusals are written in it
                await self._receive(text_data, bytes_data)
        finally:
            held, self.held = self.held, None
            for topic, entries in held:
                await self.relay_events(topic, entries)

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        try:
            frame = self._parse(text_data, bytes_data)
            if frame["type"] == "ping":  # every socket answers a keep-alive the same way
                await self.send_json({"type": "pong"})
            else:
                await self._dispatch(frame)
        except FrameError as exc:
            await self.send_json(events.error(exc.code, exc.message))
        except AppError as exc:
            await self.send_json(events.error(exc.code, exc.message, retry_after=exc.retry_after))
        except Exception:  # never let one frame kill the socket or leak a traceback
            log.exception("chat_frame_failed")
            await self.send_json(events.error("server_error", _("Something went wrong. Please try again.")))

    def _parse(self, text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise FrameError("bad_frame", _("Send JSON text frames."))
        # surrogatepass: a lone surrogate is measured here and refused below, not a server error.
        if len(text_data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            raise FrameError(
                "frame_too_large", _("Frames can be at most %(size)s KB.") % {"size": MAX_FRAME_BYTES // 1024}
            )
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
            raise FrameError("bad_json", _("That frame is not valid JSON.")) from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("bad_frame", _("Each frame must be a JSON object with a 'type'."))
        if frame["type"] not in self.client_frames:
            raise FrameError(
                "unknown_type",
                _("Unknown frame type. Known: %(types)s.") % {"types": ", ".join(self.client_frames)},
            )
        # JSON escapes can spell a NUL or a lone surrogate, which the database refuses: one check
        # here covers every frame's every field, before any service sees it.
        if has_unstorable_text(frame):
            raise FrameError("bad_frame", translated(UNSTORABLE_MESSAGE))
        return frame

    # --- events from the relay (companionhub.relay_reader.Sink) ---

    async def relay_events(self, topic: str, entries: Sequence[Entry]) -> None:
        if self.held is not None:  # the snapshot is not out yet
            self.held.append((topic, entries))
            return
        if topic != self.channel_group():  # the user's, session's or token's control topic
            for entry in entries:
                if entry.event.get("type") == "socket.close":
                    await self.close(code=entry.event.get("code", events.CLOSE_SESSION_ENDED))
            return
        for entry in entries:
            event = {**entry.event, "seq": entry.seq}
            if event.get("type") == "error":  # a run's failure, written in English by a worker
                with translation.override(self.language):
                    event["message"] = translated(event["message"])
            await self.send_json(event)

    async def relay_resync(self, topic: str, missed_after: int) -> int:
        """Events after ``missed_after`` are gone from the log: a fresh snapshot instead."""
        seq = await relay_reader.reader().log.alast_seq(topic)
        snapshot = await self._send_snapshot(seq)
        run = snapshot.get("run")
        log.warning(
            "relay_resync",
            socket=self.socket_id,
            conversation_id=self.conversation.pk,
            run_id=run["id"] if run else None,
            missed_after=missed_after,
            resumed_at=seq,
        )
        return seq

    async def send_json(self, content: Mapping[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    # --- frames ---

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        user = cast(User, self.scope["user"])  # connect turned anyone else away
        call = db_call  # a pool of threads: a slow frame here holds no other socket
        conversation = self.conversation
        if kind == "message.send":
            content, client_id, want_image = message_send_fields(frame)
            accepted = await call(services.message_send)(
                user=user, conversation=conversation, text=content, want_image=want_image
            )
            await self._accepted(client_id, accepted)
        elif kind in ("message.regenerate", "message.continue"):
            rewrite = editing.message_regenerate if kind == "message.regenerate" else editing.message_continue
            client_id = client_id_field(frame)  # checked before a run can start
            accepted = await call(rewrite)(
                user=user, conversation=conversation, message_id=message_id_field(frame, required=False)
            )
            await self._accepted(client_id, accepted)
        elif kind == "message.edit":
            new_text = frame.get("content")
            if not isinstance(new_text, str):
                raise FrameError("bad_frame", _("'%(name)s' must be a string.") % {"name": "content"})
            client_id = client_id_field(frame)
            result = await call(editing.message_edit)(
                user=user,
                conversation=conversation,
                text=new_text,
                message_id=message_id_field(frame, required=False),
                resend=bool_field(frame, "resend"),
            )
            if isinstance(result, services.Accepted):
                await self._accepted(client_id, result)
            # A correction in place reaches every open tab as "message.updated".
        elif kind in ("message.delete", "message.alternative"):
            action = editing.message_delete if kind == "message.delete" else editing.message_show_alternative
            await call(action)(user=user, conversation=conversation, message_id=message_id_field(frame))
            # The result reaches every open tab as an event of the conversation.
        elif kind in PICTURE_ACTIONS:
            message_id = message_id_field(frame)
            if kind == "picture.repaint":  # a run like any other: this socket learns its id first
                repaint = await call(pictures.picture_paint_again)(
                    user=user, conversation=conversation, message_id=message_id
                )
                await self.send_json(events.message_accepted("", repaint.turn.message_id, str(repaint.pk)))
            else:
                await call(PICTURE_ACTIONS[kind])(user=user, conversation=conversation, message_id=message_id)
        elif kind == "run.cancel":
            run_id = run_uuid(require_str(frame, "run_id"))
            await call(services.run_cancel)(user=user, conversation=conversation, run_id=run_id)
        elif kind == "run.retry":
            run_id = run_uuid(require_str(frame, "run_id"))
            run = await call(services.run_retry)(user=user, conversation=conversation, run_id=run_id)
            await self.send_json(events.message_accepted("", run.turn.message_id, str(run.pk)))
        elif kind == "conversation.branch":
            client_id = client_id_field(frame)
            branch = await call(conversations.conversation_branch)(
                user=user, conversation=conversation, message_id=message_id_field(frame)
            )
            url = reverse("chat:conversation", args=[branch.pk])
            await self.send_json(events.conversation_branched(client_id, branch.pk, url))

    async def _accepted(self, client_id: str, accepted: services.Accepted) -> None:
        await self.send_json(events.message_accepted(client_id, accepted.message.pk, str(accepted.run.pk)))
