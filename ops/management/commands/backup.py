"""``manage.py backup [--output-dir DIR] [--keep-days N]``: one archive of the database and uploads."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from ops.backup import BackupError, backup_create, backups_prune


def at_least_one(value: str) -> int:
    days = int(value)
    if days < 1:
        raise ValueError(value)
    return days


class Command(BaseCommand):
    help = (
        "Write a timestamped archive of the database, the uploads and a manifest; optionally prune old ones."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output-dir", type=Path, help="Where to write (default: BACKUP_DIR).")
        parser.add_argument(
            "--keep-days",
            type=at_least_one,
            metavar="N",
            help="Afterwards, delete backup archives in the output directory older than N days (N >= 1).",
        )

    def handle(self, *args, output_dir: Path | None = None, keep_days: int | None = None, **options) -> None:
        output_dir = Path(output_dir or settings.BACKUP_DIR)
        try:
            result = backup_create(output_dir=output_dir)
        except (BackupError, OSError) as exc:
            raise CommandError(f"Backup failed, no archive written: {exc}") from exc
        manifest = result.manifest
        rows, tables = sum(manifest["row_counts"].values()), len(manifest["row_counts"])
        self.stdout.write(
            f"Wrote {result.path} ({filesizeformat(result.path.stat().st_size)}): "
            f"{manifest['database']['vendor']} database, {rows} rows in {tables} tables, "
            f"{manifest['media']['files']} media files ({filesizeformat(manifest['media']['bytes'])})."
        )
        if keep_days is not None:
            removed = backups_prune(directory=output_dir, keep_days=keep_days)
            self.stdout.write(f"Removed {len(removed)} backup(s) older than {keep_days} day(s).")
            for path in removed:
                self.stdout.write(f"  {path.name}")
