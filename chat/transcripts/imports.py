"""A chat file becomes a new conversation: one transaction, rows in batches.

The conversation comes out as the send path would have left it: messages in
the file's order with increasing dates, each user message with its turn
(``done``, owed to the companions whose replies follow it), replies before
the first user message (greetings) without one, no runs. So the page opens
as for any chat and the next message starts a run normally.

Who is who: a SillyTavern file goes to a one-to-one chat with the companion
the user chose; its user lines (``is_user``) become the importing user's,
whatever name the file gives them, and every other line the companion's.
Our own JSON goes the same way for a one-to-one export; a group export
becomes a new group of the user's own companions matched by name (each name
must match exactly one of them, or nothing is imported).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from chat.models import MAX_GROUP_COMPANIONS, MIN_GROUP_COMPANIONS, Conversation, Message, Participant, Turn
from chat.transcripts.reading import Entry, Transcript, TranscriptRejected, read_transcript
from companionhub import pagecache
from companions.models import Companion
from companions.selectors import companions_without_large_columns
from media.models import StoredImage

log = structlog.get_logger(__name__)

BATCH = 1000
TITLE_MAX = 100


@dataclass(frozen=True, slots=True)
class ImportResult:
    conversation: Conversation
    messages: int
    notices: list[str] = field(default_factory=list)


def conversation_import(*, user: User, data: bytes, companion: Companion | None) -> ImportResult:
    """Read ``data`` (SillyTavern JSONL or our JSON) into a new conversation of ``user``'s.

    ``companion`` (the user's own) receives a one-to-one chat; a group export
    ignores it. Raises ``TranscriptRejected`` with every problem found, and
    leaves nothing behind.
    """
    if companion is not None and companion.owner_id != user.pk:
        raise PermissionError("not the owner")
    transcript = read_transcript(data)
    if transcript.kind == Conversation.Kind.GROUP:
        members = _group_members(user, transcript)
        title = (transcript.title or _("Imported group"))[:TITLE_MAX]
    elif companion is None:
        raise TranscriptRejected([_("Choose the companion this chat is with.")])
    else:
        members = [companion]
        title = _direct_title(transcript)
    speakers = _speakers(transcript, members)
    images = _owned_images(user, transcript.entries)
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user,
            kind=transcript.kind,
            title=title,
            replies_per_turn=_replies_per_turn(transcript, members),
        )
        Participant.objects.bulk_create(
            [Participant(conversation=conversation, companion=c, position=n) for n, c in enumerate(members)]
        )
        shown_at = _write_messages(conversation, transcript.entries, speakers, images)
        origin = {"format": transcript.format, **transcript.origin}
        if shown_at:
            origin["swipe_ids"] = shown_at
        conversation.transcript_origin = origin
        conversation.save(update_fields=["transcript_origin"])
        pagecache.user_pages_changed(user.pk)
    log.info(
        "conversation_imported",
        conversation_id=conversation.pk,
        format=transcript.format,
        messages=len(transcript.entries),
    )
    return ImportResult(
        conversation=conversation, messages=len(transcript.entries), notices=transcript.notices
    )


def _direct_title(transcript: Transcript) -> str:
    if transcript.format == "sillytavern":
        return ""  # a one-to-one chat lists under its companion and date
    return transcript.title[:TITLE_MAX]


def _group_members(user: User, transcript: Transcript) -> list[Companion]:
    names = list(dict.fromkeys(transcript.companion_names))
    found: dict[str, list[Companion]] = {}
    for companion in companions_without_large_columns().filter(owner=user, name__in=names).order_by("pk"):
        found.setdefault(companion.name, []).append(companion)
    errors = []
    for name in names:
        matches = found.get(name, [])
        if not matches:
            errors.append(
                _("No companion of yours is named '%(name)s': create or rename one, then import again.")
                % {"name": name}
            )
        elif len(matches) > 1:
            errors.append(
                _("Several companions of yours are named '%(name)s': rename all but one, then import again.")
                % {"name": name}
            )
    if not errors and not MIN_GROUP_COMPANIONS <= len(names) <= MAX_GROUP_COMPANIONS:
        errors.append(
            _("A group has %(min)s to %(max)s companions.")
            % {"min": MIN_GROUP_COMPANIONS, "max": MAX_GROUP_COMPANIONS}
        )
    if errors:
        raise TranscriptRejected(errors)
    return [found[name][0] for name in names]


def _speakers(transcript: Transcript, members: Sequence[Companion]) -> list[int | None]:
    """The sender id of each entry (None: the user); a group's replies by their speaker's name."""
    if len(members) == 1 and transcript.kind == Conversation.Kind.DIRECT:
        only = members[0].pk
        return [None if e.is_user else only for e in transcript.entries]
    by_name = {c.name: c.pk for c in members}
    errors = [
        _("%(place)s: '%(name)s' is not one of the group's companions")
        % {"place": e.place, "name": e.speaker}
        for e in transcript.entries
        if not e.is_user and e.speaker not in by_name
    ]
    if errors:
        raise TranscriptRejected(errors)
    return [None if e.is_user else by_name[e.speaker] for e in transcript.entries]


def _owned_images(user: User, entries: Sequence[Entry]) -> set[str]:
    """The pictures the file names that still exist and are the user's: linked back, others left out."""
    wanted = set()
    for entry in entries:
        if entry.image_id:
            try:
                wanted.add(uuid.UUID(entry.image_id))
            except ValueError:
                continue
    if not wanted:
        return set()
    owned = StoredImage.objects.filter(pk__in=wanted, companion__owner=user).values_list("pk", flat=True)
    return {str(pk) for pk in owned}


def _replies_per_turn(transcript: Transcript, members: Sequence[Companion]) -> int | None:
    replies = transcript.replies_per_turn
    if transcript.kind != Conversation.Kind.GROUP or replies is None:
        return None
    return replies if 1 <= replies <= len(members) else None


def _write_messages(
    conversation: Conversation, entries: list[Entry], speakers: list[int | None], images: set[str]
) -> dict[str, int]:
    """Store the messages and the users' turns; return {message id: shown swipe} where it is not last."""
    now = timezone.now()  # every entry has its date by now (``reading._settle_dates``); never used
    rows = [
        Message(
            conversation=conversation,
            role=Message.Role.USER if sender is None else Message.Role.ASSISTANT,
            sender_id=sender,
            content=entry.content,
            alternatives=entry.alternatives,
            reasoning=entry.reasoning,
            image_id=entry.image_id if entry.image_id in images else None,
            is_complete=entry.is_complete,
            finish_reason=entry.finish_reason,
            created_at=entry.created_at or now,
            edited_at=entry.edited_at,
        )
        for entry, sender in zip(entries, speakers, strict=True)
    ]
    for start in range(0, len(rows), BATCH):
        Message.objects.bulk_create(rows[start : start + BATCH])
    turns: list[Turn] = []
    for index, message in enumerate(rows):
        if message.sender_id is not None:
            continue
        answered: list[int] = []
        for reply in rows[index + 1 :]:
            if reply.sender_id is None:
                break
            if reply.sender_id not in answered:
                answered.append(reply.sender_id)
        turns.append(
            Turn(
                conversation=conversation,
                message=message,
                order=answered,
                status=Turn.Status.DONE,
                created_at=message.created_at,
            )
        )
    Turn.objects.bulk_create(turns, batch_size=BATCH)
    return {
        str(message.pk): entry.shown_at
        for message, entry in zip(rows, entries, strict=True)
        if entry.shown_at is not None
    }
