"""A conversation written out: SillyTavern chat JSONL, Markdown, and our own JSON.

All three read the conversation once (``_load``) into plain rows, in the
order the page shows them (``created_at``, then id), so a 10,000-message
chat costs a handful of queries, not one per message.

What each format keeps is in the README ("Chat import and export"). In
short: ST's JSONL has one header line and one line per message; a reply
with several versions carries them as ``swipes`` with ``swipe_id`` the one
shown and ``mes`` its text. Our versions are kept as a rotation
(``alternatives`` then ``content``: flipping shows ``alternatives[0]``
next), so the swipes are that rotation turned until the shown version sits
at ``swipe_id``: an imported chat gets its own ``swipe_id`` back, others
show their last version. A group chat names the group (its title, else its
companions) as ``character_name``; each reply line names its speaker.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.text import slugify

from chat.models import Conversation, Message, PipelineRun
from chat.selectors import conversation_members
from chat.transcripts.dates import format_create_date, format_send_date, to_iso
from companions.models import Companion

FORMAT_NAME = "companionhub.chat"
FORMAT_VERSION = 1
# The formats a conversation exports to: the file name's extension -> its content type.
FORMATS = {
    "jsonl": "application/jsonl; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
SCENE_KEYS = ("outfit", "location", "action")


@dataclass(frozen=True, slots=True)
class Line:
    """One message as the exports need it."""

    id: int
    role: str
    sender_id: int | None
    sender_name: str
    content: str
    alternatives: list[str]
    reasoning: str
    image_id: uuid.UUID | None
    is_complete: bool
    finish_reason: str
    created_at: datetime
    edited_at: datetime | None
    state: dict[str, str] | None

    @property
    def is_user(self) -> bool:
        return self.role == Message.Role.USER


@dataclass(slots=True)
class Transcript:
    conversation: Conversation
    user_name: str
    companions: list[Companion]
    lines: list[Line] = field(default_factory=list)

    @property
    def origin(self) -> dict[str, Any]:
        origin = self.conversation.transcript_origin
        return origin if isinstance(origin, dict) else {}

    def swipe_id(self, line: Line) -> int:
        """The position of the shown version among the swipes (see the module docstring)."""
        last = len(line.alternatives)
        kept = self.origin.get("swipe_ids", {})
        position = kept.get(str(line.id), last) if isinstance(kept, dict) else last
        return position if isinstance(position, int) and 0 <= position <= last else last

    def swipes(self, line: Line) -> list[str]:
        rotation = [*line.alternatives, line.content]
        count, position = len(rotation), self.swipe_id(line)
        return [rotation[(index - position + count - 1) % count] for index in range(count)]

    @property
    def character_name(self) -> str:
        if len(self.companions) == 1 and not self.conversation.is_group:
            return self.companions[0].name
        return self.conversation.title or ", ".join(c.name for c in self.companions) or "Group"


def _load(conversation: Conversation) -> Transcript:
    owner = conversation.owner
    transcript = Transcript(
        conversation=conversation,
        user_name=owner.name_for_companions,
        companions=conversation_members(conversation),
    )
    rows = list(
        Message.objects.filter(conversation=conversation)
        .order_by("created_at", "id")
        .values_list(
            "id",
            "role",
            "sender_id",
            "content",
            "alternatives",
            "reasoning",
            "image_id",
            "is_complete",
            "finish_reason",
            "created_at",
            "edited_at",
        )
    )
    names = {c.pk: c.name for c in transcript.companions}
    missing = {row[2] for row in rows if row[2] is not None and row[2] not in names}
    if missing:  # a companion since taken out of the group still wrote its replies
        names.update(Companion.objects.filter(pk__in=missing).values_list("pk", "name"))
    states = _states(conversation)
    for (
        pk,
        role,
        sender_id,
        content,
        alternatives,
        reasoning,
        image_id,
        complete,
        finish,
        created,
        edited,
    ) in rows:
        transcript.lines.append(
            Line(
                id=pk,
                role=role,
                sender_id=sender_id,
                sender_name=transcript.user_name if sender_id is None else names.get(sender_id, ""),
                content=content,
                alternatives=[a for a in alternatives if isinstance(a, str)]
                if isinstance(alternatives, list)
                else [],
                reasoning=reasoning,
                image_id=image_id,
                is_complete=complete,
                finish_reason=finish,
                created_at=created,
                edited_at=edited,
                state=states.get(pk),
            )
        )
    return transcript


def _states(conversation: Conversation) -> dict[int, dict[str, str]]:
    """Each reply's scene as its run's analysis recorded it (what ``update_state`` applied)."""
    found: dict[int, dict[str, str]] = {}
    runs = (
        PipelineRun.objects.filter(
            conversation=conversation, status=PipelineRun.Status.COMPLETED, reply__isnull=False
        )
        .order_by("created_at")
        .values_list("reply_id", "analysis")
    )
    for reply_id, analysis in runs:
        if not isinstance(analysis, dict):
            continue
        scene = analysis.get("reply") or analysis.get("context")
        if isinstance(scene, dict) and all(isinstance(scene.get(k), str) for k in SCENE_KEYS):
            found[reply_id] = {k: scene[k] for k in SCENE_KEYS}
    return found


def _dumps(value: Any) -> str:
    # ST writes JSON.stringify's compact form and keeps non-ASCII as is; so do we.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- SillyTavern JSONL ---------------------------------------------------------------------


def export_jsonl(conversation: Conversation) -> bytes:
    """The conversation as a SillyTavern chat file: a header line, then one line per message."""
    transcript = _load(conversation)
    origin = transcript.origin
    metadata = origin.get("chat_metadata")
    header = {
        "user_name": transcript.user_name,
        "character_name": transcript.character_name,
        "create_date": origin.get("create_date") or format_create_date(conversation.created_at),
        "chat_metadata": metadata if isinstance(metadata, dict) else {},
    }
    out = [_dumps(header)]
    out.extend(_dumps(_st_message(transcript, line)) for line in transcript.lines)
    return ("\n".join(out)).encode("utf-8")


def _st_message(transcript: Transcript, line: Line) -> dict[str, Any]:
    send_date = format_send_date(line.created_at)
    message: dict[str, Any] = {
        "name": line.sender_name,
        "is_user": line.is_user,
        "is_system": False,
        "send_date": send_date,
        "mes": line.content,
        "extra": {"reasoning": line.reasoning} if line.reasoning else {},
    }
    if not line.is_user and line.alternatives:
        message["swipes"] = transcript.swipes(line)
        message["swipe_id"] = transcript.swipe_id(line)
        message["swipe_info"] = [{"send_date": send_date, "extra": {}} for _ in message["swipes"]]
    return message


# --- Markdown ------------------------------------------------------------------------------


def export_markdown(conversation: Conversation) -> bytes:
    """A transcript to read: who said what, and when (UTC)."""
    transcript = _load(conversation)
    title = conversation.title or f"Chat with {transcript.character_name}"
    names = ", ".join(c.name for c in transcript.companions) or "none"
    parts = [
        f"# {_one_line(title)}",
        "",
        f"Companions: {_one_line(names)}  ",
        f"You: {_one_line(transcript.user_name)}",
        "",
    ]
    for line in transcript.lines:
        when = line.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        heading = f"### {_one_line(line.sender_name or 'Unknown')} — {when}"
        if line.alternatives:
            heading += f" (version {transcript.swipe_id(line) + 1} of {len(line.alternatives) + 1})"
        if line.edited_at:
            heading += " (edited)"
        parts += [heading, "", line.content, ""]
        if line.image_id:
            parts += [f"*[picture {line.image_id}]*", ""]
    return "\n".join(parts).encode("utf-8")


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- our own JSON --------------------------------------------------------------------------


def export_json(conversation: Conversation) -> bytes:
    """Everything we hold about the conversation that is not a file: texts, versions, dates,
    reasoning, the scene each reply left, and pictures by their stored id (no bytes)."""
    transcript = _load(conversation)
    branched = conversation.branched_from
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "exported_at": to_iso(datetime.now(tz=UTC)),
        "user": {"name": transcript.user_name},
        "conversation": {
            "id": conversation.pk,
            "title": conversation.title,
            "kind": conversation.kind,
            "created_at": to_iso(conversation.created_at),
            "replies_per_turn": conversation.replies_per_turn,
            "companions": [{"id": c.pk, "name": c.name} for c in transcript.companions],
            "branched_from": (
                {"conversation_id": branched.conversation_id, "message_id": branched.pk} if branched else None
            ),
        },
        "messages": [_json_message(transcript, line) for line in transcript.lines],
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


def _json_message(transcript: Transcript, line: Line) -> dict[str, Any]:
    versions = transcript.swipes(line)
    return {
        "id": line.id,
        "role": line.role,
        "sender": None if line.is_user else {"id": line.sender_id, "name": line.sender_name},
        "text": line.content,
        "versions": versions,
        "selected": transcript.swipe_id(line),
        "reasoning": line.reasoning,
        "created_at": to_iso(line.created_at),
        "edited_at": to_iso(line.edited_at),
        "is_complete": line.is_complete,
        "finish_reason": line.finish_reason,
        "image": {"id": str(line.image_id)} if line.image_id else None,
        "state": line.state,
    }


# --- the file's name -----------------------------------------------------------------------


def export_filename(conversation: Conversation, fmt: str) -> str:
    """``chat-<id>-<title or companions>-<date>.<fmt>``: ASCII only, safe in any header or disk."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    names: Iterable[str] = (
        [conversation.title] if conversation.title else [c.name for c in conversation_members(conversation)]
    )
    ascii_name = unicodedata.normalize("NFKD", " ".join(names)).encode("ascii", "ignore").decode("ascii")
    slug = slugify(ascii_name)[:40].strip("-")
    stamp = conversation.created_at.astimezone(UTC).strftime("%Y-%m-%d")
    return "-".join(part for part in ("chat", str(conversation.pk), slug, stamp) if part) + f".{fmt}"
