"""Writes to lorebooks: create, import, edit, delete. Each takes the owner's objects (the views
fetch them with ``lorebooks.selectors``' access helpers) and changes rows in one transaction."""

from __future__ import annotations

import json
from typing import IO, Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from accounts.models import User
from lorebooks import formats
from lorebooks.formats import LorebookRejected, ParsedBook
from lorebooks.models import Lorebook, LoreEntry

log = structlog.get_logger(__name__)

ENTRY_FIELDS = formats.ENTRY_COLUMNS
BOOK_FIELDS = formats.BOOK_COLUMNS


def import_limits() -> formats.Limits:
    """The settings' limits on one import."""
    return formats.Limits(
        max_entries=settings.LOREBOOK_MAX_ENTRIES,
        entry_max_chars=settings.LOREBOOK_ENTRY_MAX_CHARS,
        max_keys=settings.LOREBOOK_MAX_KEYS,
        key_max_chars=settings.LOREBOOK_KEY_MAX_CHARS,
    )


def too_large_message(limit: int) -> str:
    return _("The file is larger than %(size)s MB, the most a lorebook may be.") % {
        "size": f"{limit / (1024 * 1024):g}"
    }


def read_upload(upload: IO[bytes] | bytes, *, size: int | None = None) -> bytes:
    """At most ``LOREBOOK_IMPORT_MAX_BYTES`` of the file; a larger one is refused unparsed."""
    limit = settings.LOREBOOK_IMPORT_MAX_BYTES
    if size is not None and size > limit:
        raise LorebookRejected("too_large", too_large_message(limit))
    data = upload if isinstance(upload, bytes) else upload.read(limit + 1)
    if len(data) > limit:
        raise LorebookRejected("too_large", too_large_message(limit))
    return data


def parse_json(data: bytes) -> Any:
    """The file's JSON, or a refusal saying it is not JSON."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise LorebookRejected(
            "not_json", _("The file is not JSON: a SillyTavern World Info file (.json) was expected.")
        ) from None


@transaction.atomic
def lorebook_save_parsed(*, owner: User, book: ParsedBook) -> Lorebook:
    """A new book of ``owner`` with ``book``'s entries (all or none)."""
    lorebook = Lorebook.objects.create(
        owner=owner,
        source=book.source,
        extras=book.extras,
        **{name: getattr(book, name) for name in BOOK_FIELDS},
    )
    LoreEntry.objects.bulk_create(
        [
            LoreEntry(lorebook=lorebook, extras=e.extras, **{name: getattr(e, name) for name in ENTRY_FIELDS})
            for e in book.entries
        ],
        batch_size=500,
    )
    return lorebook


def lorebook_import(owner: User, upload: IO[bytes] | bytes, name: str | None = None) -> Lorebook:
    """A World Info file or a bare character book (bytes or an uploaded file) as a new book.

    The file is read only up to the byte limit, checked whole before anything is stored,
    and stored in one transaction: a refused file leaves nothing behind. Raises
    ``LorebookRejected`` with a message naming the first problems.
    """
    size = getattr(upload, "size", None)
    data = parse_json(read_upload(upload, size=size))
    file_name = getattr(upload, "name", "") or ""
    default = (name or file_name.rsplit("/", 1)[-1].removesuffix(".json") or _("Imported lorebook"))[:200]
    book = formats.read_any(data, limits=import_limits(), default_name=default)
    if name:
        book.name = name[:200]
    lorebook = lorebook_save_parsed(owner=owner, book=book)
    log.info("lorebook_imported", lorebook_id=lorebook.pk, user_id=owner.pk, entries=len(book.entries))
    return lorebook


def lorebook_create(*, owner: User, name: str, description: str = "", **settings_: Any) -> Lorebook:
    """A new empty book made here."""
    fields = {k: v for k, v in settings_.items() if k in BOOK_FIELDS}
    lorebook = Lorebook.objects.create(owner=owner, name=name, description=description, **fields)
    log.info("lorebook_created", lorebook_id=lorebook.pk, user_id=owner.pk)
    return lorebook


def lorebook_update(*, lorebook: Lorebook, **changes: Any) -> Lorebook:
    """Change the book's settings (name, description, scan depth, budgets, defaults)."""
    fields = [name for name in changes if name in BOOK_FIELDS]
    for name in fields:
        setattr(lorebook, name, changes[name])
    lorebook.save(update_fields=[*fields, "updated_at"])
    return lorebook


def lorebook_delete(*, lorebook: Lorebook) -> None:
    """Delete the book and its entries; companions and chats it was attached to lose it."""
    lorebook_id = lorebook.pk
    lorebook.delete()
    log.info("lorebook_deleted", lorebook_id=lorebook_id)


def _next_uid(lorebook: Lorebook) -> int:
    top = LoreEntry.objects.filter(lorebook=lorebook).aggregate(top=Max("uid"))["top"]
    return 0 if top is None else top + 1


def _touch(lorebook: Lorebook) -> None:
    lorebook.save(update_fields=["updated_at"])


@transaction.atomic
def entry_create(*, lorebook: Lorebook, **values: Any) -> LoreEntry:
    """A new entry at the end of the book (the next free uid)."""
    if lorebook.entries.count() >= settings.LOREBOOK_MAX_ENTRIES:
        raise LorebookRejected(
            "too_many_entries",
            _("The lorebook already has %(limit)s entries, the most allowed.")
            % {"limit": settings.LOREBOOK_MAX_ENTRIES},
        )
    Lorebook.objects.select_for_update().filter(pk=lorebook.pk).first()  # one uid per new entry
    fields = {k: v for k, v in values.items() if k in ENTRY_FIELDS and k != "uid"}
    entry = LoreEntry.objects.create(lorebook=lorebook, uid=_next_uid(lorebook), **fields)
    _touch(lorebook)
    return entry


def entry_update(*, entry: LoreEntry, **values: Any) -> LoreEntry:
    """Change an entry's fields; what an import kept in ``extras`` stays for export."""
    fields = [k for k in values if k in ENTRY_FIELDS and k != "uid"]
    for name in fields:
        setattr(entry, name, values[name])
    with transaction.atomic():
        entry.save(update_fields=fields)
        _touch(entry.lorebook)
    return entry


def entry_delete(*, entry: LoreEntry) -> None:
    with transaction.atomic():
        entry.delete()
        _touch(entry.lorebook)
