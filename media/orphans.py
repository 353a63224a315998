"""Orphan files: on disk under ``MEDIA_ROOT`` but referenced by no row.

They appear when a process dies between writing a file and creating its
row, when a file delete after commit fails, or when rows are removed behind
Django's back (a restored database, SQL by hand). ``find_orphans`` lists
them; ``delete_orphans`` removes them. Both are used by the periodic report
(``media.report_orphans``, counting only) and ``manage.py media_orphans``.

Whose files are whose: each kind of file the site writes has a ``FileOwner``
that recognises its names and says which of them rows reference. Media's own
pictures are built in; a higher app registers its files from its
``AppConfig.ready`` (``register_file_owner``), since media imports no app
above it: chat registers spoken clips (``audio/<conversation id>/...``).

Safety rules:

* only files in the places and shape a registered owner writes (pictures:
  ``companions/<id>/headers|generated/*.jpg``) are considered; anything
  else under ``MEDIA_ROOT`` (a backup, a note, files nobody registered) is
  counted as foreign and never touched;
* only files whose modification time is older than ``older_than_minutes``
  are considered, so a file being written right now (its row not yet
  committed) is never an orphan;
* symbolic links are never followed, nor deleted: a link is outside what
  this site wrote, and could point out of ``MEDIA_ROOT``;
* each path is checked to resolve inside ``MEDIA_ROOT`` before it is
  touched, and rows are looked up again just before deleting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from django.conf import settings

from media.models import StoredImage
from media.storage import is_site_name

log = structlog.get_logger(__name__)

BATCH = 500
DEFAULT_MIN_AGE_MINUTES = 60  # older than any write in progress


@dataclass(frozen=True)
class FileOwner:
    """One kind of file the site writes under ``MEDIA_ROOT``, and the rows that point at them."""

    label: str  # for logs, and a re-registration replaces the owner of the same label
    owns: Callable[[str], bool]  # is this storage name in the shape this owner writes?
    referenced: Callable[[list[str]], set[str]]  # those of the names a row references


def _pictures_referenced(names: list[str]) -> set[str]:
    return set(StoredImage.objects.filter(file__in=names).values_list("file", flat=True))


_OWNERS: dict[str, FileOwner] = {"pictures": FileOwner("pictures", is_site_name, _pictures_referenced)}


def register_file_owner(
    label: str, *, owns: Callable[[str], bool], referenced: Callable[[list[str]], set[str]]
) -> None:
    """Make another app's files known (from its ``AppConfig.ready``): names ``owns`` accepts are
    candidates, and those ``referenced`` does not return are orphans. ``owns`` must accept only
    names that app writes, and no other owner's."""
    _OWNERS[label] = FileOwner(label, owns, referenced)


def owner_of(name: str) -> FileOwner | None:
    """The owner whose shape ``name`` has, or None: a file the site did not write."""
    return next((owner for owner in _OWNERS.values() if owner.owns(name)), None)


@dataclass
class OrphanReport:
    orphans: list[str] = field(default_factory=list)  # storage names, relative to MEDIA_ROOT
    bytes: int = 0
    scanned: int = 0
    too_new: int = 0
    foreign: int = 0  # files the site did not write; never orphans
    symlinks_skipped: int = 0
    deleted: int = 0


def _candidates(root: Path, *, cutoff: float, report: OrphanReport) -> Iterator[tuple[str, int]]:
    """(storage name, size) of every regular file under ``root`` older than ``cutoff``."""
    real_root = root.resolve()
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(directory)
        # os.walk does not descend into linked directories with followlinks=False; count them.
        report.symlinks_skipped += sum(1 for d in dirnames if (base / d).is_symlink())
        for filename in filenames:
            path = base / filename
            try:
                info = path.lstat()
            except FileNotFoundError:  # removed while we looked
                continue
            if path.is_symlink():
                report.symlinks_skipped += 1
                continue
            if not path.is_file() or not path.resolve().is_relative_to(real_root):
                continue
            name = path.relative_to(root).as_posix()
            if owner_of(name) is None:
                report.foreign += 1
                continue
            report.scanned += 1
            if info.st_mtime > cutoff:
                report.too_new += 1
                continue
            yield name, info.st_size


def _unreferenced(names: list[str]) -> set[str]:
    """Those of ``names`` (each in some owner's shape) that no row of their owner references."""
    by_owner: dict[str, list[str]] = {}
    for name in names:
        owner = owner_of(name)
        if owner is not None:
            by_owner.setdefault(owner.label, []).append(name)
    referenced: set[str] = set()
    for label, owned in by_owner.items():
        referenced |= _OWNERS[label].referenced(owned)
    return set(names) - referenced


def find_orphans(*, older_than_minutes: int = 60, root: Path | None = None) -> OrphanReport:
    """Every site-written file under ``MEDIA_ROOT``, older than ``older_than_minutes``, in no row
    of its owner."""
    root = Path(root or settings.MEDIA_ROOT)
    report = OrphanReport()
    if not root.is_dir():
        return report
    cutoff = time.time() - older_than_minutes * 60
    batch: list[tuple[str, int]] = []

    def flush() -> None:
        orphaned = _unreferenced([name for name, _ in batch])
        for name, size in batch:
            if name in orphaned:
                report.orphans.append(name)
                report.bytes += size
        batch.clear()

    for candidate in _candidates(root, cutoff=cutoff, report=report):
        batch.append(candidate)
        if len(batch) >= BATCH:
            flush()
    flush()
    report.orphans.sort()
    return report


def delete_orphans(report: OrphanReport, *, root: Path | None = None) -> int:
    """Delete the files ``report`` found, re-checking each one first; return how many went."""
    root = Path(root or settings.MEDIA_ROOT)
    real_root = root.resolve()
    deleted = 0
    for start in range(0, len(report.orphans), BATCH):
        names = report.orphans[start : start + BATCH]
        for name in sorted(_unreferenced(names)):  # a row may have appeared since the scan
            path = root / name
            if owner_of(name) is None or path.is_symlink() or not path.resolve().is_relative_to(real_root):
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("orphan_delete_failed", name=name, error=str(exc))
                continue
            deleted += 1
    report.deleted = deleted
    log.info("orphan_images_deleted", deleted=deleted)
    return deleted


def report_orphans(*, older_than_minutes: int = 60) -> OrphanReport:
    """Find orphans and log one line with the count (the periodic task)."""
    report = find_orphans(older_than_minutes=older_than_minutes)
    log_method = log.warning if report.orphans else log.info
    log_method(
        "orphan_images",
        count=len(report.orphans),
        bytes=report.bytes,
        scanned=report.scanned,
        too_new=report.too_new,
        foreign=report.foreign,
        symlinks_skipped=report.symlinks_skipped,
        sample=report.orphans[:5],
    )
    return report
