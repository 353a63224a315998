"""``backup_create``: one archive holding the database, the uploads and a manifest; and retention.

The database copy is consistent while the site runs: SQLite through its
online backup API (one step, under a read lock), PostgreSQL through pg_dump
on a snapshot exported from a REPEATABLE READ transaction, in which the row
counts and migration state for the manifest are read too, so the manifest
describes exactly the dump.

The archive is written to a hidden staging directory next to its final place
and renamed only once complete and flushed to disk: a crash leaves no file
with a backup's name, and retention never sees a half archive.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
import tempfile
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from ops import dbstate
from ops.archive import (
    DATABASE_MEMBERS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MEDIA_PREFIX,
    HashingReader,
    archive_name,
    archive_time,
)
from ops.postgres import PostgresToolError, run_tool


class BackupError(Exception):
    """The backup could not be made; the message says why. No archive was written."""


@dataclass(frozen=True)
class Snapshot:
    """What the database dump holds, read from the same snapshot as the dump."""

    vendor: str
    migrations: dict[str, str]
    row_counts: dict[str, int]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict


def backup_create(*, output_dir: Path, alias: str = "default", now: datetime | None = None) -> BackupResult:
    """Write ``companionhub-backup-<UTC time>.tar.gz`` into ``output_dir``; return its path and manifest."""
    now = now or timezone.now()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    connection = connections[alias]
    if connection.vendor not in DATABASE_MEMBERS:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {connection.vendor}")
    database_member = DATABASE_MEMBERS[connection.vendor]
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".companionhub-backup-") as staging:
        dump = Path(staging) / Path(database_member).name
        if connection.vendor == "sqlite":
            snapshot = _dump_sqlite(connection.settings_dict["NAME"], dump)
        else:
            snapshot = _dump_postgres(alias, dump)
        partial = Path(staging) / "archive.tar.gz"
        files: dict[str, dict] = {}
        with tarfile.open(partial, "w:gz") as tar:
            files[database_member] = _add_file(tar, dump, database_member)
            media_files = media_bytes = 0
            for path, relative in _media_files(Path(settings.MEDIA_ROOT), skip=output_dir):
                try:
                    entry = _add_file(tar, path, MEDIA_PREFIX + relative)
                except FileNotFoundError:  # deleted by the running site since the listing
                    continue
                files[MEDIA_PREFIX + relative] = entry
                media_files += 1
                media_bytes += entry["size"]
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "created_at": now.isoformat(),
                "database": {"vendor": snapshot.vendor, "file": database_member},
                "migrations": snapshot.migrations,
                "row_counts": snapshot.row_counts,
                "media": {"files": media_files, "bytes": media_bytes},
                "files": files,
            }
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode(), now)
        with open(partial, "rb") as archive:
            os.fsync(archive.fileno())
        partial.chmod(0o600)  # password hashes, sessions and private pictures
        final = _free_name(output_dir, now)
        os.replace(partial, final)
    _fsync_dir(output_dir)
    return BackupResult(path=final, manifest=manifest)


def backups_prune(*, directory: Path, keep_days: int, now: datetime | None = None) -> list[Path]:
    """Delete backup archives in ``directory`` made more than ``keep_days`` days before ``now``.

    Only files named like an archive are considered, and their age comes from
    the name (a copy or ``touch`` does not change it). Returns what was removed.
    """
    cutoff = (now or timezone.now()) - timedelta(days=keep_days)
    removed = []
    for entry in sorted(Path(directory).iterdir()):
        made = archive_time(entry.name)
        if made is not None and made < cutoff and entry.is_file() and not entry.is_symlink():
            entry.unlink()
            removed.append(entry)
    return removed


def _dump_sqlite(source: str, dump: Path) -> Snapshot:
    if not Path(source).is_file():
        raise BackupError(f"there is no SQLite database at {source}")
    # A separate connection sees committed data only; one backup step holds the
    # read lock for the whole copy, so writers wait and the copy is consistent.
    with closing(sqlite3.connect(source, timeout=30)) as src, closing(sqlite3.connect(dump)) as dst:
        src.backup(dst)
        # The copy stands alone: no -wal file next to it when it is opened later.
        dst.execute("PRAGMA journal_mode=DELETE")
        cursor = dst.cursor()
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        tables = {row[0] for row in cursor.fetchall()}
        return Snapshot(
            vendor="sqlite",
            migrations=dbstate.latest_migrations(dbstate.applied_migrations(cursor, tables)),
            row_counts=dbstate.count_rows(cursor, tables),
        )


def _dump_postgres(alias: str, dump: Path) -> Snapshot:
    connection = connections[alias]
    if connection.in_atomic_block:
        raise BackupError("a backup must start outside any transaction (it opens its own snapshot)")
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot_id = cursor.fetchone()[0]
        tables = set(connection.introspection.table_names(cursor))
        snapshot = Snapshot(
            vendor="postgresql",
            migrations=dbstate.latest_migrations(dbstate.applied_migrations(cursor, tables)),
            row_counts=dbstate.count_rows(cursor, tables),
        )
        # pg_dump reads the very snapshot the counts came from, while this transaction holds it.
        try:
            run_tool(
                "pg_dump",
                ["--format=custom", f"--file={dump}", f"--snapshot={snapshot_id}"],
                connection.settings_dict,
            )
        except PostgresToolError as exc:
            raise BackupError(str(exc)) from exc
    return snapshot


def _media_files(root: Path, *, skip: Path):
    """(path, posix path relative to root) for every regular file under root, sorted."""
    if not root.is_dir():
        return
    skip = skip.resolve()
    for directory, subdirs, names in os.walk(root):
        here = Path(directory)
        subdirs[:] = sorted(d for d in subdirs if (here / d).resolve() != skip)
        for name in sorted(names):
            path = here / name
            if path.is_file() and not path.is_symlink():
                yield path, path.relative_to(root).as_posix()


def _add_file(tar: tarfile.TarFile, path: Path, arcname: str) -> dict:
    with open(path, "rb") as fileobj:
        info = tar.gettarinfo(arcname=arcname, fileobj=fileobj)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o600
        reader = HashingReader(fileobj)
        tar.addfile(info, reader)
    return {"sha256": reader.sha256.hexdigest(), "size": reader.size}


def _add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes, when: datetime) -> None:
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(when.timestamp())
    tar.addfile(info, io.BytesIO(data))


def _free_name(directory: Path, now: datetime) -> Path:
    for attempt in range(100):
        candidate = directory / archive_name(now, attempt)
        if not candidate.exists():
            return candidate
    raise BackupError(f"too many backups named for {now:%Y-%m-%d %H:%M:%S} in {directory}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
