"""The websocket protocol's frames, defined once.

Every frame the server sends and every frame a client may send is a
TypedDict here. Builders return plain dicts (JSON-ready), tests check each
shape against these definitions, and ``docs/websocket.md`` is checked against
``SERVER_EVENTS`` / ``CLIENT_FRAMES`` so the document cannot drift.

Every conversation, one-to-one or group, speaks the same protocol through
one consumer (``/ws/conversation/<id>/``; ``/ws/chat/<companion_id>/`` and
``/ws/group/<id>/`` are kept for older clients). Run events (progress,
token, state, image, done, error) carry ``companion_id`` and ``sender`` (the
speaker's name). A group's first frame is ``group.snapshot``, a one-to-one
chat's ``snapshot``; both carry ``conversation``.
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired[...]
# only from real annotations, and the shape tests rely on ``__required_keys__``.
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from accounts import sockets as account_sockets
from companionhub import socket_slots

if TYPE_CHECKING:
    from chat.models import Message

# --- server -> client -----------------------------------------------------------


class CompanionInfo(TypedDict):
    id: int
    name: str
    state: dict[str, str]


class RunInfo(TypedDict):
    id: str
    status: str
    progress: int
    step: str
    content: str
    message_id: int | None
    error: NotRequired[dict[str, Any]]
    companion_id: NotRequired[int]  # group chats: who is speaking
    sender: NotRequired[str]


class ConversationInfo(TypedDict):
    id: int
    kind: str  # "direct" or "group"
    title: str
    companions: list[CompanionInfo]
    branched_from: dict[str, int] | None  # {"conversation_id", "message_id"} of the original


class SnapshotEvent(TypedDict):
    type: str  # "snapshot"
    seq: NotRequired[int]  # the number of the last event the snapshot includes; later events follow
    companion: CompanionInfo
    run: RunInfo | None
    conversation: NotRequired[ConversationInfo]


class MessageAcceptedEvent(TypedDict):
    type: str  # "message.accepted"
    client_id: str
    message_id: int
    run_id: str


class ProgressEvent(TypedDict):
    type: str  # "progress"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str
    progress: int
    step: str
    percent: NotRequired[int]  # "generate_image": how far the picture is (0-99), when the back end says
    companion_id: NotRequired[int]  # in a group chat, every run event names its speaker
    sender: NotRequired[str]


class TokenEvent(TypedDict):
    type: str  # "token"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str
    text: str
    offset: int  # where ``text`` starts in the reply, so a client can drop overlap with its snapshot
    companion_id: NotRequired[int]
    sender: NotRequired[str]


class StateEvent(TypedDict):
    type: str  # "state"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str
    outfit: str
    location: str
    action: str
    companion_id: NotRequired[int]
    sender: NotRequired[str]


class ImageEvent(TypedDict):
    type: str  # "image"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str
    message_id: int
    url: str
    companion_id: NotRequired[int]
    sender: NotRequired[str]


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    estimated: bool


class DoneEvent(TypedDict):
    type: str  # "done"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str
    message_id: int
    usage: Usage
    finish_reason: str  # "length": cut at the token limit, a "message.continue" can carry on
    length: int  # the stored reply's length in code points: a client's longer text is cut to it
    reasoning: NotRequired[str]  # what a reasoning model thought; only when there is some
    companion_id: NotRequired[int]
    sender: NotRequired[str]


class MessageDeletedEvent(TypedDict):
    type: str  # "message.deleted"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    message_id: int


class MessageUpdatedEvent(TypedDict):
    type: str  # "message.updated"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    message_id: int
    content: str
    versions: int  # how many versions the reply has (regenerated ones rotate)
    edited: NotRequired[bool]  # corrected in place by the user


class ConversationBranchedEvent(TypedDict):
    type: str  # "conversation.branched" (to the socket that asked)
    client_id: str
    conversation_id: int  # the new conversation
    url: str  # its page


class PictureRemovedEvent(TypedDict):
    type: str  # "picture.removed"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    message_id: int  # the message that no longer shows a picture


class CompanionHeaderEvent(TypedDict):
    type: str  # "companion.header"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    url: str  # the companion's new header picture
    companion_id: int  # whose (in a group, any of the members)


class AudioEvent(TypedDict):
    type: str  # "audio"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str | None  # None: a reply spoken on demand after it was written
    message_id: int  # the reply the clip speaks
    index: int  # the sentence's place in the reply, from 0 (clips may arrive out of order)
    url: str  # the clip, served to the owner only
    duration_ms: int
    last: bool  # the reply's final clip
    companion_id: NotRequired[int]
    sender: NotRequired[str]


class ErrorEvent(TypedDict):
    type: str  # "error"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: NotRequired[str]
    message_id: NotRequired[int]  # "audio_failed": the reply that goes on as text only
    code: str
    message: str
    retry_after: NotRequired[int]
    companion_id: NotRequired[int]
    sender: NotRequired[str]


class PongEvent(TypedDict):
    type: str  # "pong"


class Speaker(TypedDict):
    companion_id: int
    sender: str


class GroupInfo(TypedDict):
    id: int
    title: str
    companions: list[CompanionInfo]


class GroupSnapshotEvent(TypedDict):
    type: str  # "group.snapshot"
    seq: NotRequired[int]  # the number of the last event the snapshot includes; later events follow
    group: GroupInfo
    run: RunInfo | None  # the reply being written, with companion_id and sender
    speaking: Speaker | None
    conversation: NotRequired[ConversationInfo]


class UserMessageInfo(TypedDict):
    id: int
    content: str
    created_at: str  # ISO 8601


class TurnStartedEvent(TypedDict):
    type: str  # "turn.started"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str
    kind: str  # one of TURN_KINDS
    user_message: UserMessageInfo  # the message being answered (for "edit": its new text)
    reply_id: int | None  # "regenerate" / "continue": the reply written again or carried on
    versions: NotRequired[
        int
    ]  # "regenerate": how many versions the reply has, the one being written included


# What started a run: a new message, one of the edits, or a picture painted again (docs/websocket.md).
TURN_KINDS = ("send", "regenerate", "continue", "edit", "retry", "repaint")


class TurnSpeakerEvent(TypedDict):
    type: str  # "turn.speaker"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    run_id: str
    companion_id: int
    sender: str
    message_id: NotRequired[int]  # the reply being written again (regenerate); absent for a new reply


class TurnDoneEvent(TypedDict):
    type: str  # "turn.done"
    seq: NotRequired[int]  # the conversation's sequence number (docs/websocket.md, resuming)
    message_id: int  # the user's message that every chosen companion has now answered (or failed to)


SERVER_EVENTS: dict[str, type] = {
    "snapshot": SnapshotEvent,
    "message.accepted": MessageAcceptedEvent,
    "progress": ProgressEvent,
    "token": TokenEvent,
    "state": StateEvent,
    "image": ImageEvent,
    "audio": AudioEvent,
    "done": DoneEvent,
    "error": ErrorEvent,
    "pong": PongEvent,
    "message.deleted": MessageDeletedEvent,
    "message.updated": MessageUpdatedEvent,
    "conversation.branched": ConversationBranchedEvent,
    "picture.removed": PictureRemovedEvent,
    "companion.header": CompanionHeaderEvent,
    "turn.started": TurnStartedEvent,
    "group.snapshot": GroupSnapshotEvent,
    "turn.speaker": TurnSpeakerEvent,
    "turn.done": TurnDoneEvent,
}

# --- client -> server -----------------------------------------------------------


class MessageSendFrame(TypedDict):
    type: str  # "message.send"
    content: str
    image: NotRequired[bool]
    client_id: NotRequired[str]


class RunCancelFrame(TypedDict):
    type: str  # "run.cancel"
    run_id: str


class RunRetryFrame(TypedDict):
    type: str  # "run.retry"
    run_id: str


class PingFrame(TypedDict):
    type: str  # "ping"


class MessageRegenerateFrame(TypedDict):
    type: str  # "message.regenerate"
    client_id: NotRequired[str]
    message_id: NotRequired[int]  # the reply meant, refused unless it is the latest


class MessageEditFrame(TypedDict):
    type: str  # "message.edit"
    content: str
    client_id: NotRequired[str]
    # Any message of the conversation, yours or a companion's; absent: your last message.
    message_id: NotRequired[int]
    # Answer it afresh (only your last message). Default: true for your last message (the
    # older clients' "edit and resend"), false for any other (corrected in place).
    resend: NotRequired[bool]


class ConversationBranchFrame(TypedDict):
    type: str  # "conversation.branch"
    message_id: int  # the new conversation holds the history up to and including it
    client_id: NotRequired[str]


class MessageContinueFrame(TypedDict):
    type: str  # "message.continue"
    client_id: NotRequired[str]
    message_id: NotRequired[int]  # the reply meant, refused unless it is the latest


class MessageDeleteFrame(TypedDict):
    type: str  # "message.delete"
    message_id: int


class MessageAlternativeFrame(TypedDict):
    type: str  # "message.alternative"
    message_id: int


class PictureFrame(TypedDict):
    type: str  # "picture.repaint", "picture.use_as_header" or "picture.delete"
    message_id: int  # a message of this chat that shows a picture


CLIENT_FRAMES: dict[str, type] = {
    "message.send": MessageSendFrame,
    "run.cancel": RunCancelFrame,
    "run.retry": RunRetryFrame,
    "ping": PingFrame,
    "message.regenerate": MessageRegenerateFrame,
    "message.edit": MessageEditFrame,
    "message.continue": MessageContinueFrame,
    "message.delete": MessageDeleteFrame,
    "message.alternative": MessageAlternativeFrame,
    "picture.repaint": PictureFrame,
    "picture.use_as_header": PictureFrame,
    "picture.delete": PictureFrame,
    "conversation.branch": ConversationBranchFrame,
}

# Close codes (4000-4999 are the application's range).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404  # not the owner, or no such companion: the same answer
# Defined where they are decided (the socket slots; accounts ends sessions), named here too.
CLOSE_TOO_MANY_SOCKETS = socket_slots.CLOSE_TOO_MANY_SOCKETS
CLOSE_SESSION_ENDED = account_sockets.CLOSE_SESSION_ENDED

# --- builders -------------------------------------------------------------------


def progress(run_id: str, value: int, step: str, *, percent: int | None = None) -> ProgressEvent:
    event: ProgressEvent = {"type": "progress", "run_id": run_id, "progress": value, "step": step}
    if percent is not None:
        event["percent"] = percent
    return event


def token(run_id: str, text: str, offset: int) -> TokenEvent:
    return {"type": "token", "run_id": run_id, "text": text, "offset": offset}


def state(run_id: str, outfit: str, location: str, action: str) -> StateEvent:
    return {"type": "state", "run_id": run_id, "outfit": outfit, "location": location, "action": action}


def image(run_id: str, message_id: int, url: str) -> ImageEvent:
    return {"type": "image", "run_id": run_id, "message_id": message_id, "url": url}


def audio(
    run_id: str | None, message_id: int, index: int, url: str, duration_ms: int, *, last: bool
) -> AudioEvent:
    return {
        "type": "audio",
        "run_id": run_id,
        "message_id": message_id,
        "index": index,
        "url": url,
        "duration_ms": int(duration_ms),
        "last": bool(last),
    }


AUDIO_FAILED = "audio_failed"


def audio_failed(message: str, *, message_id: int, run_id: str | None = None) -> ErrorEvent:
    """The voice of a reply gave up (once per reply): the reply itself goes on as text."""
    event = error(AUDIO_FAILED, message, run_id=run_id)
    event["message_id"] = message_id
    return event


def done(
    run_id: str,
    message_id: int,
    usage: Usage,
    finish_reason: str = "",
    reasoning: str = "",
    *,
    length: int = 0,
) -> DoneEvent:
    event: DoneEvent = {
        "type": "done",
        "run_id": run_id,
        "message_id": message_id,
        "usage": usage,
        "finish_reason": finish_reason,
        "length": length,
    }
    if reasoning:
        event["reasoning"] = reasoning
    return event


def message_deleted(message_id: int) -> MessageDeletedEvent:
    return {"type": "message.deleted", "message_id": message_id}


def picture_removed(message_id: int) -> PictureRemovedEvent:
    return {"type": "picture.removed", "message_id": message_id}


def companion_header(url: str, companion_id: int) -> CompanionHeaderEvent:
    return {"type": "companion.header", "url": url, "companion_id": companion_id}


def message_updated(
    message_id: int, content: str, versions: int, *, edited: bool = False
) -> MessageUpdatedEvent:
    event: MessageUpdatedEvent = {
        "type": "message.updated",
        "message_id": message_id,
        "content": content,
        "versions": versions,
    }
    if edited:
        event["edited"] = True
    return event


def conversation_branched(client_id: str, conversation_id: int, url: str) -> ConversationBranchedEvent:
    return {
        "type": "conversation.branched",
        "client_id": client_id,
        "conversation_id": conversation_id,
        "url": url,
    }


def turn_started(
    run_id: str,
    kind: str,
    user_message: "Message",
    *,
    reply_id: int | None = None,
    versions: int | None = None,
) -> TurnStartedEvent:
    """``user_message`` is the ``chat.Message`` the run answers."""
    if kind not in TURN_KINDS:
        raise ValueError(f"unknown turn kind {kind!r}")
    event: TurnStartedEvent = {
        "type": "turn.started",
        "run_id": run_id,
        "kind": kind,
        "user_message": {
            "id": user_message.pk,
            "content": user_message.content,
            "created_at": user_message.created_at.isoformat(),
        },
        "reply_id": reply_id,
    }
    if versions is not None:
        event["versions"] = versions
    return event


def error(
    code: str, message: str, *, run_id: str | None = None, retry_after: int | None = None
) -> ErrorEvent:
    event: ErrorEvent = {"type": "error", "code": code, "message": message}
    if run_id is not None:
        event["run_id"] = run_id
    if retry_after is not None:
        event["retry_after"] = int(retry_after)
    return event


def message_accepted(client_id: str, message_id: int, run_id: str) -> MessageAcceptedEvent:
    return {"type": "message.accepted", "client_id": client_id, "message_id": message_id, "run_id": run_id}


def snapshot(companion: CompanionInfo, run: RunInfo | None, conversation: ConversationInfo) -> SnapshotEvent:
    return {"type": "snapshot", "companion": companion, "run": run, "conversation": conversation}


def group_snapshot(
    group: GroupInfo, run: RunInfo | None, speaking: Speaker | None, conversation: ConversationInfo
) -> GroupSnapshotEvent:
    return {
        "type": "group.snapshot",
        "group": group,
        "run": run,
        "speaking": speaking,
        "conversation": conversation,
    }


def turn_speaker(
    run_id: str, companion_id: int, sender: str, *, message_id: int | None = None
) -> TurnSpeakerEvent:
    event: TurnSpeakerEvent = {
        "type": "turn.speaker",
        "run_id": run_id,
        "companion_id": companion_id,
        "sender": sender,
    }
    if message_id is not None:
        event["message_id"] = message_id
    return event


def turn_done(message_id: int) -> TurnDoneEvent:
    return {"type": "turn.done", "message_id": message_id}


def conversation_group(conversation_id: int) -> str:
    """The channel group that carries one conversation's events."""
    return f"conversation.{conversation_id}"
