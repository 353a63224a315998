"""The backup archive: its name, its layout, and checking it before anything trusts it.

An archive is a gzip'd tar named ``companionhub-backup-YYYYmmdd-HHMMSS.tar.gz``
(UTC; ``-N`` is appended if two are made in one second) holding::

    database/db.sqlite3 or database/db.pgdump   the database (SQLite file, or pg_dump custom format)
    media/...                                   every file under MEDIA_ROOT, same relative paths
    manifest.json                               what the rest is, with a sha256 per file

``manifest.json`` is written last because it lists the checksums of
everything before it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import zlib
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

FORMAT = "companionhub-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEDIA_PREFIX = "media/"
DATABASE_MEMBERS = {"sqlite": "database/db.sqlite3", "postgresql": "database/db.pgdump"}
ARCHIVE_NAME = re.compile(r"^companionhub-backup-(\d{8}-\d{6})(?:-\d+)?\.tar\.gz$")
STAMP_FORMAT = "%Y%m%d-%H%M%S"
CHUNK = 1024 * 1024


class ArchiveInvalid(Exception):
    """Unreadable, incomplete or tampered with: nothing may be restored from it."""


def archive_name(when: datetime, attempt: int = 0) -> str:
    stamp = when.astimezone(UTC).strftime(STAMP_FORMAT)
    return f"companionhub-backup-{stamp}{f'-{attempt}' if attempt else ''}.tar.gz"


def archive_time(name: str) -> datetime | None:
    """When an archive was made, from its name; None for any other file."""
    match = ARCHIVE_NAME.match(name)
    return datetime.strptime(match[1], STAMP_FORMAT).replace(tzinfo=UTC) if match else None


class HashingReader:
    """Wraps a binary file; the sha256 and size of what was read so far."""

    def __init__(self, fileobj) -> None:
        self.fileobj = fileobj
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.fileobj.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data


def safe_member_name(name: str) -> PurePosixPath:
    """A member path that stays inside wherever it is extracted."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
        raise ArchiveInvalid(f"unsafe path in the archive: {name!r}")
    return path


def archive_verify(path: Path) -> dict:
    """Read the whole archive and check it against its manifest; return the manifest.

    Raises ``ArchiveInvalid`` for an unreadable or truncated file, a missing or
    foreign manifest, a member that is not a plain file or directory, an unsafe
    path, a file missing from either side, or any size or sha256 mismatch.
    """
    found: dict[str, tuple[str, int]] = {}
    manifest_bytes = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            seen: set[str] = set()
            for member in tar:
                safe_member_name(member.name)
                if member.isdir():
                    continue
                if member.name in seen:  # which copy would be restored? refuse to guess
                    raise ArchiveInvalid(f"{member.name!r} appears twice in the archive")
                seen.add(member.name)
                if not member.isfile():
                    raise ArchiveInvalid(f"{member.name!r} is not a regular file")
                reader = HashingReader(tar.extractfile(member))
                if member.name == MANIFEST:
                    manifest_bytes = reader.read()
                    continue
                while reader.read(CHUNK):
                    pass
                found[member.name] = (reader.sha256.hexdigest(), reader.size)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveInvalid(f"{path} is not a readable backup archive ({exc})") from exc
    if manifest_bytes is None:
        raise ArchiveInvalid(f"{path} has no {MANIFEST}: not a CompanionHub backup")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise ArchiveInvalid(f"{MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveInvalid(f"{path} is not a CompanionHub backup (its manifest has another format)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArchiveInvalid(
            f"backup format version {manifest.get('format_version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION}): restore it with the release that made it"
        )
    expected = {name: (entry["sha256"], entry["size"]) for name, entry in manifest.get("files", {}).items()}
    problems = [f"missing from the archive: {name}" for name in sorted(expected.keys() - found.keys())]
    problems += [f"not in the manifest: {name}" for name in sorted(found.keys() - expected.keys())]
    problems += [
        f"checksum mismatch: {name}"
        for name in sorted(expected.keys() & found.keys())
        if expected[name] != found[name]
    ]
    if manifest.get("database", {}).get("file") not in expected:
        problems.append("the manifest names no database file")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ArchiveInvalid(f"{path} failed verification, nothing was restored: {shown}")
    return manifest
