"""Reading a chat file into plain entries, every line checked, nothing written.

Two formats: SillyTavern chat JSONL (a header line, then one JSON object per
message) and our own JSON (``chat.transcripts.exports.export_json``). Which
one a file is, is read from its content, not its name: a single JSON object
naming our format is ours, anything else is read as JSONL.

Every problem is collected with where it is ("line 7: not JSON", "message
3: 'text' should be text") and the file is refused as a whole
(``TranscriptRejected``), so the user can fix every line at once and an
import never stops half-way. Text the database cannot store (NUL, lone
surrogates from ``\\ud800`` escapes) is scrubbed while the JSON is parsed.

Decisions, documented in the README:

* ST lines with ``is_system: true`` (narrator notes, messages hidden from the
  prompt) are left out and counted in a notice: the app has no messages
  outside the prompt.
* A reply's versions are ``swipes``; ``mes`` is the one shown and wins over
  ``swipes[swipe_id]`` if the two differ. The versions keep their rotation
  (the one after the shown version is the next one flipping shows).
* Dates: every form ST reads (``chat.transcripts.dates``). A message without
  one takes the one before it; dates never go backwards (the file's order is
  the chat's order) and never past the time of the import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat.transcripts.dates import parse_st_date
from chat.transcripts.exports import FORMAT_NAME, FORMAT_VERSION
from companionhub.errors import AppError
from companionhub.text import scrub

MAX_REPORTED = 20  # problems shown to the user; the rest are counted
MAX_VERSIONS = 100  # versions (swipes) of one reply
METADATA_MAX_BYTES = 64 * 1024  # ST's chat_metadata kept to give back on export
FINISH_REASON_MAX = 20  # Message.finish_reason's column


class TranscriptRejected(AppError):
    """The file was refused as a whole; ``errors`` are the first problems, each with its place."""

    def __init__(self, errors: list[str], *, total: int | None = None) -> None:
        total = len(errors) if total is None else total
        shown = errors[:MAX_REPORTED]
        if total > len(shown):
            message = _(
                "Nothing was imported: the file has %(count)s problems (the first %(shown)s are listed)."
            ) % {"count": total, "shown": len(shown)}
        else:
            message = ngettext(
                "Nothing was imported: the file has %(count)s problem.",
                "Nothing was imported: the file has %(count)s problems.",
                total,
            ) % {"count": total}
        super().__init__("transcript_rejected", message)
        self.errors = shown
        self.total = total


@dataclass(slots=True)
class Entry:
    """One message to import. ``place`` says where it came from, for errors."""

    place: str
    is_user: bool
    speaker: str
    content: str
    alternatives: list[str] = field(default_factory=list)
    # Where the shown version stood among the file's versions: given back on export.
    shown_at: int | None = None
    reasoning: str = ""
    created_at: datetime | None = None
    edited_at: datetime | None = None
    is_complete: bool = True
    finish_reason: str = ""
    image_id: str | None = None


@dataclass(slots=True)
class Transcript:
    """A file read: its messages and what the new conversation needs to know."""

    format: str  # "sillytavern" | FORMAT_NAME
    entries: list[Entry]
    kind: str = "direct"
    title: str = ""
    companion_names: list[str] = field(default_factory=list)
    replies_per_turn: int | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


class _Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.total = 0

    def add(self, place: str, text: str) -> None:
        self.total += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(
                _("%(place)s: %(problem)s") % {"place": place, "problem": text} if place else text
            )

    def raise_if_any(self) -> None:
        if self.total:
            raise TranscriptRejected(self.errors, total=self.total)


def _line(number: int) -> str:
    """Where a problem is: a line of a SillyTavern file."""
    return _("line %(number)s") % {"number": number}


def _too_many_messages(limit: int) -> str:
    return _("The file has more than %(count)s messages.") % {
        "count": number_format(limit, force_grouping=True)
    }


def read_transcript(data: bytes) -> Transcript:
    """The file's messages, or ``TranscriptRejected`` listing what is wrong with it."""
    limit = settings.CHAT_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise TranscriptRejected(
            [_("The file is larger than %(size)s MB.") % {"size": limit // (1024 * 1024)}]
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = _("%(place)s: %(problem)s") % {"place": _line(line), "problem": _("not UTF-8 text")}
        raise TranscriptRejected([problem]) from exc
    if not text.strip():
        raise TranscriptRejected([_("The file is empty.")])
    document = _whole_document(text)
    if isinstance(document, dict) and "format" in document:
        transcript = _read_ours(document)
    else:
        transcript = _read_sillytavern(text)
    if not transcript.entries:
        raise TranscriptRejected([_("The file has no messages to import.")])
    _settle_dates(transcript.entries)
    return transcript


def _whole_document(text: str) -> Any:
    """The file as one JSON value if it is one (our format), else None."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        return _loads(text)
    except ValueError:
        return None


def _scrubbed_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {scrub(key): _scrubbed(value) for key, value in pairs}


def _scrubbed(value: Any) -> Any:
    # Objects are already scrubbed by their own hook; strings and lists are done here.
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    return value


def _loads(text: str) -> Any:
    """``json.loads`` with storable strings. Only ``\\u`` escapes can make a NUL or a lone
    surrogate (a raw one is invalid JSON or invalid UTF-8), so other text takes the fast path."""
    try:
        if "\\u" not in text:
            return json.loads(text)
        return _scrubbed(json.loads(text, object_pairs_hook=_scrubbed_pairs))
    except RecursionError as exc:  # nested deeper than the parser goes
        raise ValueError("nested too deeply") from exc


# --- SillyTavern JSONL ---------------------------------------------------------------------


def _read_sillytavern(text: str) -> Transcript:
    problems = _Problems()
    transcript = Transcript(format="sillytavern", entries=[])
    max_messages = settings.CHAT_IMPORT_MAX_MESSAGES
    system_lines = 0
    first = True
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue  # ST skips blank lines too (a file may end with one)
        try:
            line = _loads(raw)
        except ValueError:
            problems.add(_line(number), _("not JSON"))
            first = False
            continue
        place = _line(number)
        if not isinstance(line, dict):
            problems.add(place, _("should be a JSON object"))
        elif first and "mes" not in line:
            _read_header(line, place, transcript, problems)
        elif line.get("is_system") is True:
            system_lines += 1
        elif len(transcript.entries) >= max_messages:
            problems.add("", _too_many_messages(max_messages))
            break
        else:
            entry = _read_st_message(line, place, problems)
            if entry is not None:
                transcript.entries.append(entry)
        first = False
    problems.raise_if_any()
    if system_lines:
        transcript.notices.append(
            ngettext(
                "%(count)s system line was left out (notes hidden from the companion).",
                "%(count)s system lines were left out (notes hidden from the companion).",
                system_lines,
            )
            % {"count": system_lines}
        )
    return transcript


def _read_header(line: dict[str, Any], place: str, transcript: Transcript, problems: _Problems) -> None:
    """ST's first line: optional, but when there, its fields must have their types."""
    for key in ("user_name", "character_name"):
        if key in line and not isinstance(line[key], str):
            problems.add(place, _("'%(key)s' should be text") % {"key": key})
    if not any(key in line for key in ("user_name", "character_name", "chat_metadata", "create_date")):
        problems.add(place, _("neither a chat header nor a message (no '%(key)s')") % {"key": "mes"})
        return
    create_date = line.get("create_date")
    if create_date is not None:
        if not isinstance(create_date, str | int | float) or isinstance(create_date, bool):
            problems.add(place, _("'%(key)s' should be text") % {"key": "create_date"})
        else:
            transcript.origin["create_date"] = create_date
    metadata = line.get("chat_metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            problems.add(place, _("'%(key)s' should be a JSON object") % {"key": "chat_metadata"})
        elif len(json.dumps(metadata, ensure_ascii=False).encode()) > METADATA_MAX_BYTES:
            transcript.notices.append(
                _("The chat's settings (chat_metadata) are larger than %(size)s KB and were left out.")
                % {"size": METADATA_MAX_BYTES // 1024}
            )
        else:
            transcript.origin["chat_metadata"] = metadata
    name = line.get("character_name")
    if isinstance(name, str) and name.strip():
        transcript.title = name.strip()


def _read_st_message(line: dict[str, Any], place: str, problems: _Problems) -> Entry | None:
    before = problems.total
    mes = _text(line, "mes", place, problems)
    is_user = line.get("is_user", False)
    if not isinstance(is_user, bool):
        problems.add(place, _("'%(key)s' should be true or false") % {"key": "is_user"})
    name = line.get("name", "")
    if not isinstance(name, str):
        problems.add(place, _("'%(key)s' should be text") % {"key": "name"})
    created_at = _date(line.get("send_date"), place, "send_date", problems)
    extra = line.get("extra", {})
    reasoning = ""
    if not isinstance(extra, dict):
        problems.add(place, _("'%(key)s' should be a JSON object") % {"key": "extra"})
    elif "reasoning" in extra:
        reasoning = _text(extra, "reasoning", place, problems, label="extra.reasoning")
    versions: list[str] | None = None
    shown = 0
    if "swipes" in line and not is_user:
        versions = _versions(line.get("swipes"), place, "swipes", problems)
        shown = line.get("swipe_id", 0)
        if versions is not None and not _is_position(shown, versions):
            problems.add(
                place,
                _("'%(key)s' should be a position in '%(other)s'") % {"key": "swipe_id", "other": "swipes"},
            )
    if problems.total != before:
        return None
    entry = Entry(place=place, is_user=bool(is_user), speaker=str(name), content=mes, reasoning=reasoning)
    entry.created_at = created_at
    if versions:
        _set_versions(entry, versions, shown)
    return entry


# --- our own JSON --------------------------------------------------------------------------


def _read_ours(document: dict[str, Any]) -> Transcript:
    problems = _Problems()
    if document.get("format") != FORMAT_NAME:
        raise TranscriptRejected(
            [_("'format' should be '%(name)s': this is not a chat exported here.") % {"name": FORMAT_NAME}]
        )
    version = document.get("version")
    if version != FORMAT_VERSION:
        raise TranscriptRejected(
            [
                _("'version' %(version)s is not one this site reads (it reads %(supported)s).")
                % {"version": repr(version), "supported": FORMAT_VERSION}
            ]
        )
    conversation = document.get("conversation")
    messages = document.get("messages")
    if not isinstance(conversation, dict):
        problems.add("", _("'%(key)s' should be a JSON object") % {"key": "conversation"})
        conversation = {}
    if not isinstance(messages, list):
        problems.add("", _("'%(key)s' should be a list") % {"key": "messages"})
        messages = []
    transcript = Transcript(format=FORMAT_NAME, entries=[])
    kind = conversation.get("kind", "direct")
    if kind not in ("direct", "group"):
        problems.add(
            _("conversation"),
            _("'%(key)s' should be '%(other)s' or '%(third)s'")
            % {"key": "kind", "other": "direct", "third": "group"},
        )
    transcript.kind = kind if kind in ("direct", "group") else "direct"
    title = conversation.get("title", "")
    if not isinstance(title, str):
        problems.add(_("conversation"), _("'%(key)s' should be text") % {"key": "title"})
    transcript.title = title.strip() if isinstance(title, str) else ""
    transcript.companion_names = _companion_names(conversation, problems)
    replies = conversation.get("replies_per_turn")
    if replies is not None and (not isinstance(replies, int) or isinstance(replies, bool)):
        problems.add(_("conversation"), _("'%(key)s' should be a number") % {"key": "replies_per_turn"})
    transcript.replies_per_turn = (
        replies if isinstance(replies, int) and not isinstance(replies, bool) else None
    )
    max_messages = settings.CHAT_IMPORT_MAX_MESSAGES
    if len(messages) > max_messages:
        problems.add("", _too_many_messages(max_messages))
        messages = []
    for number, message in enumerate(messages, start=1):
        entry = _read_our_message(message, _("message %(number)s") % {"number": number}, problems)
        if entry is not None:
            transcript.entries.append(entry)
    problems.raise_if_any()
    return transcript


def _companion_names(conversation: dict[str, Any], problems: _Problems) -> list[str]:
    companions = conversation.get("companions", [])
    names: list[str] = []
    if not isinstance(companions, list):
        problems.add(_("conversation"), _("'%(key)s' should be a list") % {"key": "companions"})
        return names
    for companion in companions:
        name = companion.get("name") if isinstance(companion, dict) else None
        if not isinstance(name, str) or not name.strip():
            problems.add(
                _("conversation"),
                _("each of '%(key)s' should have a '%(other)s'") % {"key": "companions", "other": "name"},
            )
        else:
            names.append(name.strip())
    return names


def _read_our_message(message: Any, place: str, problems: _Problems) -> Entry | None:
    if not isinstance(message, dict):
        problems.add(place, _("should be a JSON object"))
        return None
    before = problems.total
    role = message.get("role")
    if role not in ("user", "assistant"):
        problems.add(
            place,
            _("'%(key)s' should be '%(other)s' or '%(third)s'")
            % {"key": "role", "other": "user", "third": "assistant"},
        )
    text = _text(message, "text", place, problems)
    speaker = ""
    if role == "assistant":
        sender = message.get("sender")
        name = sender.get("name") if isinstance(sender, dict) else None
        if isinstance(name, str):
            speaker = name
        else:
            problems.add(
                place, _("a reply's '%(key)s' should have a '%(other)s'") % {"key": "sender", "other": "name"}
            )
    versions = None
    shown = message.get("selected", 0)
    if message.get("versions") not in (None, []):
        versions = _versions(message.get("versions"), place, "versions", problems)
        if versions is not None and not _is_position(shown, versions):
            problems.add(
                place,
                _("'%(key)s' should be a position in '%(other)s'") % {"key": "selected", "other": "versions"},
            )
    reasoning = _text(message, "reasoning", place, problems) if message.get("reasoning") is not None else ""
    created_at = _date(message.get("created_at"), place, "created_at", problems)
    edited_at = _date(message.get("edited_at"), place, "edited_at", problems)
    complete = message.get("is_complete", True)
    if not isinstance(complete, bool):
        problems.add(place, _("'%(key)s' should be true or false") % {"key": "is_complete"})
    finish = message.get("finish_reason") or ""
    if not isinstance(finish, str) or len(finish) > FINISH_REASON_MAX:
        problems.add(
            place,
            _("'%(key)s' should be text of at most %(count)s characters")
            % {"key": "finish_reason", "count": FINISH_REASON_MAX},
        )
    image = message.get("image")
    image_id = image.get("id") if isinstance(image, dict) else None
    if problems.total != before:
        return None
    entry = Entry(
        place=place,
        is_user=role == "user",
        speaker=speaker.strip(),
        content=text,
        reasoning=reasoning,
        created_at=created_at,
        edited_at=edited_at,
        is_complete=bool(complete),
        finish_reason=str(finish),
        image_id=image_id if isinstance(image_id, str) else None,
    )
    if versions and role == "assistant":
        _set_versions(entry, versions, shown)
    return entry


# --- shared checks -------------------------------------------------------------------------


def _text(source: dict[str, Any], key: str, place: str, problems: _Problems, *, label: str = "") -> str:
    value = source.get(key)
    label = label or key
    if not isinstance(value, str):
        problems.add(place, _("'%(key)s' should be text") % {"key": label})
        return ""
    limit = settings.CHAT_IMPORT_MAX_MESSAGE_CHARS
    if len(value) > limit:
        problems.add(
            place,
            _("'%(key)s' is longer than %(count)s characters")
            % {"key": label, "count": number_format(limit, force_grouping=True)},
        )
    return value


def _versions(value: Any, place: str, key: str, problems: _Problems) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(place, _("'%(key)s' should be a list of texts") % {"key": key})
        return None
    if len(value) > MAX_VERSIONS:
        problems.add(
            place, _("'%(key)s' has more than %(count)s versions") % {"key": key, "count": MAX_VERSIONS}
        )
        return None
    limit = settings.CHAT_IMPORT_MAX_MESSAGE_CHARS
    if any(len(v) > limit for v in value):
        problems.add(
            place,
            _("a version in '%(key)s' is longer than %(count)s characters")
            % {"key": key, "count": number_format(limit, force_grouping=True)},
        )
        return None
    return value


def _is_position(value: Any, versions: list[str]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < max(len(versions), 1)


def _set_versions(entry: Entry, versions: list[str], shown: int) -> None:
    """The versions as our rotation: after the shown one come those after it in the file."""
    if len(versions) < 2:
        return
    entry.alternatives = [*versions[shown + 1 :], *versions[:shown]]
    entry.shown_at = shown if shown != len(versions) - 1 else None


def _date(value: Any, place: str, key: str, problems: _Problems) -> datetime | None:
    if value is None or value == "":
        return None
    moment = parse_st_date(value)
    if moment is None:
        problems.add(
            place,
            _("'%(key)s' is not a date (ISO 8601, epoch milliseconds, or as SillyTavern writes)")
            % {"key": key},
        )
    return moment


def _settle_dates(entries: list[Entry]) -> None:
    """Fill missing dates from the one before; never backwards, never in the future."""
    now = datetime.now(tz=UTC)
    known = next((e.created_at for e in entries if e.created_at is not None), now)
    previous = min(known, now)
    for entry in entries:
        moment = entry.created_at or previous
        moment = min(max(moment, previous), now)
        entry.created_at = previous = moment
        if entry.edited_at is not None:
            entry.edited_at = min(max(entry.edited_at, moment), now)
