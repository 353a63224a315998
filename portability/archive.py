"""Build an account's export: one zip of everything the account owns, with a manifest.

Layout (``manifest.json`` lists every file and the count of each type)::

    manifest.json                      format, version, when, whose, counts, files
    account.json                       the account, its settings, API tokens (names and dates only)
    companions/<id>-<slug>.json        each companion as a Character Card V3
    companions/<id>-<slug>.png         the same card inside its header picture
    lorebooks/<id>-<slug>.json         each lorebook as a SillyTavern World Info file (a card's
                                       book is also inside that companion's card)
    conversations/chat-<id>-<slug>-<date>.json   each conversation as our JSON, SillyTavern's
                                       JSONL (.jsonl) and Markdown (.md), named as the chat
                                       page's Export menu names it
    pictures/<image id>.<ext>          every stored picture, the bytes as stored
    usage/usage.json                   the usage counters and every usage transaction
    memories/<id>-<slug>.json          each companion's long-term memories (text, pinned, source,
                                       dates; never the vectors, which only this site can use)
    audio/chat-<id>-<slug>-<date>/reply-<message id>-<index>.<ext>   each spoken reply's clips,
                                       one per sentence (index from 000), in the conversation's
                                       folder named as its transcripts are

Names in the zip come from ids and ``slugify`` only: nothing a user typed is
ever a path. Rows are read in batches and the progress is written every few
percent, not per row; audio files are copied in chunks, never held whole. A
stored file that has gone (pictures, audio) is counted in the manifest
(``pictures_missing``, ``audio_missing``) and does not fail the export. A new
kind of data is one more function in ``SECTIONS`` that writes its files and
counts them.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any

import structlog
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_noop

from accounts.models import ApiToken, UsageTransaction, User, UserUsage
from chat import transcripts
from chat.models import Conversation, Message, SamplerPreset, SpeechClip
from companions.cards import build_card, build_card_png
from companions.models import Companion
from companions.selectors import companion_header_bytes
from lorebooks.formats import to_world_info
from lorebooks.models import Lorebook
from lorebooks.selectors import parsed_book
from media.models import StoredImage
from media.services import image_read
from memories.models import Memory
from portability import services
from portability.models import AccountExport

log = structlog.get_logger(__name__)

FORMAT = "companionhub-account-export"
FORMAT_VERSION = 1
BATCH = 100  # rows read per query
PROGRESS_STEP = 5  # percent between two progress writes
# Failure texts are stored in English (a task has no user language) and translated when shown
# (portability/exports.html); gettext_noop puts them in the catalogue.
FAILED_TEXT = gettext_noop(
    "The export could not be built because of a problem on our side. Please try again."
)
COPY_CHUNK = 64 * 1024  # bytes read at a time from a stored file into the zip


class ExportGone(Exception):
    """The export stopped running while it was built (its account was deleted): stop quietly."""


@dataclass
class Progress:
    """Counts units of work and writes the export's progress every ``PROGRESS_STEP`` percent."""

    export_id: str
    total: int
    done: int = 0
    reported: int = 0

    def advance(self, units: int = 1) -> None:
        self.done += units
        percent = min(99, self.done * 100 // max(self.total, 1))
        if percent - self.reported >= PROGRESS_STEP:
            if not services.export_set_progress(self.export_id, progress=percent):
                raise ExportGone
            self.reported = percent


@dataclass
class ArchiveWriter:
    """Writes files into the zip and remembers them (and the counts) for the manifest."""

    archive: zipfile.ZipFile
    files: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add_bytes(self, path: str, data: bytes, *, compress: bool = True) -> None:
        _check_path(path)
        info = zipfile.ZipInfo(path, date_time=timezone.now().timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        self.archive.writestr(info, data)
        self.files.append({"path": path, "bytes": len(data)})

    def add_stream(self, path: str, source: IO[bytes], *, compress: bool = True) -> None:
        """Copy ``source`` into the zip a chunk at a time (a file is never held whole)."""
        _check_path(path)
        info = zipfile.ZipInfo(path, date_time=timezone.now().timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        size = 0
        with self.archive.open(info, "w") as target:
            while chunk := source.read(COPY_CHUNK):
                target.write(chunk)
                size += len(chunk)
        self.files.append({"path": path, "bytes": size})

    def add_json(self, path: str, value: Any) -> None:
        self.add_bytes(path, to_json(value))

    def add_folder(self, path: str) -> None:
        _check_path(path.rstrip("/"))
        self.archive.writestr(zipfile.ZipInfo(path.rstrip("/") + "/"), b"")

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


def to_json(value: Any) -> bytes:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode("utf-8")


def _check_path(path: str) -> None:
    """A programming error if a name could leave the zip's root or name a folder above it."""
    parts = PurePosixPath(path).parts
    if path.startswith("/") or "\\" in path or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"unsafe path in an export: {path!r}")


def stem(pk: object, text: str, fallback: str) -> str:
    """``<id>-<slug>``: the id keeps names unique, the slug (never path-like) makes them readable."""
    return f"{pk}-{slugify(text)[:40].strip('-') or fallback}"


# --- sections ---------------------------------------------------------------------------


def _account(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    tokens = ApiToken.objects.filter(user=user).order_by("created_at", "pk")
    presets = SamplerPreset.objects.filter(owner=user).order_by("name", "pk")
    writer.add_json(
        "account.json",
        {
            "username": user.username,
            "email": user.email,
            "display_name": user.display_name,
            "appearance": user.appearance,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
            # Names and dates only: a token's hash or prefix is part of a credential.
            "api_tokens": list(tokens.values("name", "created_at", "last_used_at", "revoked_at")),
            "sampler_presets": list(
                presets.values(
                    "name",
                    "temperature",
                    "top_p",
                    "min_p",
                    "top_k",
                    "repetition_penalty",
                    "frequency_penalty",
                    "presence_penalty",
                    "max_tokens",
                    "stop",
                    "created_at",
                    "updated_at",
                )
            ),
        },
    )
    writer.count("api_tokens", tokens.count())
    writer.count("sampler_presets", presets.count())
    progress.advance()


def _companions(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    writer.count("companions", 0)
    companions = Companion.objects.filter(owner=user).select_related("header_image").order_by("pk")
    for companion in companions.iterator(chunk_size=BATCH):
        name = stem(companion.pk, companion.name, "companion")
        card = build_card(companion)
        writer.add_json(f"companions/{name}.json", card)
        png = build_card_png(card, companion_header_bytes(companion))
        writer.add_bytes(f"companions/{name}.png", png, compress=False)
        writer.count("companions")
        progress.advance()


def _lorebooks(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    """Each of the user's lorebooks as a World Info file, which SillyTavern imports as it is."""
    writer.count("lorebooks", 0)
    for book in Lorebook.objects.filter(owner=user).order_by("pk").iterator(chunk_size=BATCH):
        name = stem(book.pk, book.name, "lorebook")
        writer.add_json(f"lorebooks/{name}.json", to_world_info(parsed_book(book)))
        writer.count("lorebooks")
        progress.advance()


# Each conversation in every format ``chat.transcripts`` writes, named as the chat page names it.
CONVERSATION_FORMATS = (
    ("json", transcripts.export_json),
    ("jsonl", transcripts.export_jsonl),
    ("md", transcripts.export_markdown),
)


def _conversations(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    writer.count("conversations", 0)
    writer.count("messages", Message.objects.filter(conversation__owner=user).count())
    conversations = Conversation.objects.filter(owner=user).select_related("owner").order_by("pk")
    for conversation in conversations.iterator(chunk_size=BATCH):
        for fmt, export in CONVERSATION_FORMATS:
            writer.add_bytes(
                f"conversations/{transcripts.export_filename(conversation, fmt)}", export(conversation)
            )
        writer.count("conversations")
        progress.advance()


def _pictures(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    writer.count("pictures", 0)
    missing: list[str] = []
    images = StoredImage.objects.filter(companion__owner=user).order_by("created_at", "pk")
    for image in images.iterator(chunk_size=BATCH):
        try:
            data = image_read(image)
        except FileNotFoundError:
            missing.append(str(image.pk))  # counted in the manifest, not a reason to fail
        else:
            extension = PurePosixPath(image.file.name or "").suffix.lstrip(".").lower() or "jpg"
            writer.add_bytes(f"pictures/{image.pk}.{slugify(extension) or 'jpg'}", data, compress=False)
            writer.count("pictures")
        progress.advance()
    if missing:
        writer.count("pictures_missing", len(missing))


def _usage(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    counters = (
        UserUsage.objects.filter(user=user)
        .values(
            "period_start",
            "tokens_this_period",
            "lifetime_tokens",
            "images_this_period",
            "lifetime_images",
            "quota_override",
        )
        .first()
    )
    transactions = (
        UsageTransaction.objects.filter(user=user)
        .order_by("created_at", "pk")
        .values(
            "created_at",
            "companion_id",
            "companion_name",
            "run_status",
            "prompt_tokens",
            "completion_tokens",
            "image_count",
            "served_by",
        )
    )
    rows = list(transactions.iterator(chunk_size=1000))
    writer.add_json("usage/usage.json", {"counters": counters, "transactions": rows})
    writer.count("usage_transactions", len(rows))
    progress.advance()


MEMORY_FIELDS = ("text", "pinned", "source", "user_edited", "created_at", "updated_at", "last_used_at")


def _memories(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    """One file per companion with memories, oldest first."""
    writer.add_folder("memories")
    writer.count("memories", 0)
    companions = Companion.objects.filter(owner=user, memories__isnull=False).distinct().order_by("pk")
    for companion in companions.only("pk", "name").iterator(chunk_size=BATCH):
        rows = list(
            Memory.objects.filter(owner=user, companion=companion)
            .order_by("created_at", "pk")
            .values(*MEMORY_FIELDS)
            .iterator(chunk_size=1000)
        )
        name = stem(companion.pk, companion.name, "companion")
        writer.add_json(f"memories/{name}.json", {"companion": companion.name, "memories": rows})
        writer.count("memories", len(rows))
    progress.advance()


def _open_stored(name: str | None) -> IO[bytes] | None:
    """A stored file open for reading, or None when it is gone or unreadable. Its first byte is
    read (and the file rewound) because some storages only find out when read."""
    if not name:
        return None
    try:
        source = default_storage.open(name, "rb")
    except OSError:
        return None
    try:
        source.read(1)
        source.seek(0)
    except OSError:
        source.close()
        return None
    return source


def conversation_folder(conversation: Conversation) -> str:
    """The conversation's name in the zip without its extension, as its transcripts are named."""
    return transcripts.export_filename(conversation, "json").removesuffix(".json")


def _audio(writer: ArchiveWriter, user: User, progress: Progress) -> None:
    """Each spoken reply's clips, under its conversation's folder, in the order they are heard."""
    writer.add_folder("audio")
    writer.count("audio", 0)
    missing = 0
    conversations = (
        Conversation.objects.filter(owner=user, messages__speech_clips__isnull=False)
        .distinct()
        .select_related("owner")
        .order_by("pk")
    )
    for conversation in conversations.iterator(chunk_size=BATCH):
        folder = f"audio/{conversation_folder(conversation)}"
        clips = (
            SpeechClip.objects.filter(message__conversation=conversation)
            .order_by("message__created_at", "message_id", "index")
            .only("message_id", "index", "file")
        )
        for clip in clips.iterator(chunk_size=BATCH):
            extension = slugify(PurePosixPath(clip.file.name or "").suffix.lstrip(".").lower()) or "wav"
            path = f"{folder}/reply-{clip.message_id}-{clip.index:03d}.{extension}"
            source = _open_stored(clip.file.name)
            if source is None:
                missing += 1  # counted in the manifest, not a reason to fail
            else:
                with closing(source):
                    # WAV is raw samples and shrinks; MP3 and Ogg are compressed already.
                    writer.add_stream(path, source, compress=extension == "wav")
                writer.count("audio")
            progress.advance()
    if missing:
        writer.count("audio_missing", missing)


Section = Callable[[ArchiveWriter, User, Progress], None]
SECTIONS: tuple[Section, ...] = (
    _account,
    _companions,
    _lorebooks,
    _conversations,
    _pictures,
    _usage,
    _memories,
    _audio,
)


def _units_of_work(user: User) -> int:
    """What the progress counts: each companion, lorebook, conversation, picture and spoken clip,
    and the three small sections."""
    return (
        Companion.objects.filter(owner=user).count()
        + Lorebook.objects.filter(owner=user).count()
        + Conversation.objects.filter(owner=user).count()
        + StoredImage.objects.filter(companion__owner=user).count()
        + SpeechClip.objects.filter(message__conversation__owner=user).count()
        + 3
    )


def write_archive(archive: zipfile.ZipFile, user: User, progress: Progress) -> dict[str, Any]:
    """Write every section and the manifest into ``archive``; return the manifest."""
    writer = ArchiveWriter(archive)
    for section in SECTIONS:
        section(writer, user, progress)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": timezone.now(),
        "user": {"id": user.pk, "username": user.username},
        "counts": writer.counts,
        "files": writer.files,
    }
    writer.add_json("manifest.json", manifest)
    return manifest


def export_build(export_id: str) -> None:
    """Build the export's zip into private storage and mark it ready (the Celery task's work).

    Does nothing unless the export is queued (a re-delivered task finds it
    running or done). Any failure marks it failed with a message the owner
    can act on; nothing is left behind in storage.
    """
    if not services.export_claim(export_id):
        log.info("export_not_queued", export_id=export_id)
        return
    export = AccountExport.objects.select_related("owner").filter(pk=export_id).first()
    if export is None:  # its account was deleted just now
        log.info("export_gone", export_id=export_id)
        return
    user = export.owner
    try:
        with tempfile.TemporaryFile(suffix=".zip") as temp:
            with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                manifest = write_archive(archive, user, Progress(export_id, _units_of_work(user)))
            size = temp.tell()
            temp.seek(0)
            name = default_storage.save(services.export_file_name(), File(temp))
        services.export_mark_ready(export_id, file=name, byte_size=size, counts=manifest["counts"])
    except ExportGone:
        log.info("export_gone", export_id=export_id)
    except Exception:
        log.exception("export_crashed", export_id=export_id)
        services.export_mark_failed(export_id, text=FAILED_TEXT)
