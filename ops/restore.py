"""``backup_restore``: put an archive's database and uploads back, into an empty database only.

Order matters, and nothing changes until every check has passed:

1. the whole archive is read and checked against its manifest (sizes, sha256);
2. the archive's database vendor must be the target's (SQLite -> PostgreSQL
   is ``move_to_postgres``, which converts, not a restore);
3. the target must hold no rows beyond what ``migrate`` writes by itself;
4. the database is restored (SQLite: the file copied back through the backup
   API, so do it with the site stopped; PostgreSQL: ``pg_restore --clean
   --if-exists --no-owner`` in one transaction), then the media files;
5. row counts are compared with the manifest.
"""

from __future__ import annotations

import os
import sqlite3
import tarfile
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from ops import dbstate
from ops.archive import CHUNK, MEDIA_PREFIX, ArchiveInvalid, HashingReader, archive_verify, safe_member_name
from ops.postgres import PostgresToolError, run_tool


class RestoreRefused(Exception):
    """The restore did not start; the message says why and what to do. Nothing was changed."""


class RestoreFailed(Exception):
    """The restore started and went wrong part way; the message says what state is left."""


@dataclass
class RestoreReport:
    manifest: dict
    row_counts: dict[str, int]
    media_files: int = 0
    media_bytes: int = 0
    mismatches: list[str] = field(default_factory=list)
    pending_migrations: int = 0


def backup_check(*, archive: Path, alias: str = "default") -> dict:
    """Every check a restore makes before it changes anything; return the manifest.

    Raises ``ArchiveInvalid`` or ``RestoreRefused``.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise RestoreRefused(f"{archive} does not exist")
    manifest = archive_verify(archive)
    connection = connections[alias]
    vendor = manifest["database"]["vendor"]
    if vendor != connection.vendor:
        hint = ""
        if vendor == "sqlite" and connection.vendor == "postgresql":
            hint = (
                f" To move a SQLite install to PostgreSQL, extract its database "
                f"(tar -xzf {archive.name} {manifest['database']['file']}) and run "
                f"`manage.py move_to_postgres --from-sqlite {manifest['database']['file']}`."
            )
        raise RestoreRefused(
            f"this archive holds a {vendor} database and the target is {connection.vendor}; "
            f"a restore needs the same database kind.{hint}"
        )
    occupied = dbstate.occupied_tables(dbstate.database_counts(alias))
    if occupied:
        listed = ", ".join(f"{label} ({n} rows)" for label, n in occupied.items())
        raise RestoreRefused(
            f"the target database {connection.settings_dict['NAME']} is not empty: {listed}. "
            "Restore only into an empty database (a new one, or emptied with `manage.py flush`)."
        )
    return manifest


def backup_restore(*, archive: Path, alias: str = "default") -> RestoreReport:
    """Check, then restore ``archive`` into the empty database ``alias`` and MEDIA_ROOT."""
    manifest = backup_check(archive=archive, alias=alias)
    connection = connections[alias]
    database_member = manifest["database"]["file"]
    # Members are read in archive order (the database comes first): a gzip stream
    # cannot seek back cheaply, so no member is looked up by name.
    with tempfile.TemporaryDirectory(prefix="companionhub-restore-") as staging:
        dump = Path(staging) / Path(database_member).name
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name == database_member:
                    _extract(tar, member, dump, manifest)
                    break
        if connection.vendor == "sqlite":
            _restore_sqlite(alias, dump)
        else:
            _restore_postgres(alias, dump)
    report = RestoreReport(manifest=manifest, row_counts={})
    media_root = Path(settings.MEDIA_ROOT)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not member.name.startswith(MEDIA_PREFIX) or member.name not in manifest["files"]:
                    continue
                relative = safe_member_name(member.name[len(MEDIA_PREFIX) :])
                target = media_root.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                report.media_bytes += _extract(tar, member, target, manifest)
                report.media_files += 1
    except (OSError, tarfile.TarError, ArchiveInvalid) as exc:
        raise RestoreFailed(
            f"the database was restored but writing the media files into {media_root} failed "
            f"after {report.media_files} file(s): {exc}. Fix the cause, empty the database "
            "(`manage.py flush`) and run the restore again."
        ) from exc
    report.row_counts = dbstate.database_counts(alias)
    for label, expected in manifest["row_counts"].items():
        actual = report.row_counts.get(label)
        if actual != expected:
            report.mismatches.append(f"{label}: {expected} in the backup, {actual} after the restore")
    executor = MigrationExecutor(connection)
    report.pending_migrations = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    return report


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, manifest: dict) -> int:
    """Write ``member`` to ``target`` (via a temporary file), checking its sha256 again."""
    name = member.name
    reader = HashingReader(tar.extractfile(member))
    partial = target.with_name(f".{target.name}.restoring")
    with open(partial, "wb") as out:
        while chunk := reader.read(CHUNK):
            out.write(chunk)
    if reader.sha256.hexdigest() != manifest["files"][name]["sha256"]:
        partial.unlink()
        raise ArchiveInvalid(f"{name} changed since the archive was verified")
    os.replace(partial, target)
    return reader.size


def _restore_sqlite(alias: str, dump: Path) -> None:
    connection = connections[alias]
    target = connection.settings_dict["NAME"]
    connection.close()
    try:
        with closing(sqlite3.connect(dump)) as src, closing(sqlite3.connect(target, timeout=30)) as dst:
            src.backup(dst)
    except sqlite3.Error as exc:
        raise RestoreFailed(f"copying the database back into {target} failed: {exc}") from exc


def _restore_postgres(alias: str, dump: Path) -> None:
    connection = connections[alias]
    connection.close()  # hold no transaction open on the tables pg_restore drops
    try:
        run_tool(
            "pg_restore",
            [
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={connection.settings_dict['NAME']}",
                str(dump),
            ],
            connection.settings_dict,
        )
    except PostgresToolError as exc:
        raise RestoreFailed(f"{exc} (one transaction: the database is as it was before)") from exc
