"""``manage.py restore ARCHIVE --yes``: a backup archive back into an empty database and MEDIA_ROOT."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ops.archive import ArchiveInvalid
from ops.restore import RestoreFailed, RestoreRefused, backup_check, backup_restore


class Command(BaseCommand):
    help = (
        "Verify a backup archive, then restore its database and media files into an empty database. "
        "Never prompts: --yes is required to restore, --check only verifies."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--yes", action="store_true", help="Restore (writes the database and MEDIA_ROOT)."
        )
        parser.add_argument(
            "--check", action="store_true", help="Only verify the archive and the target; change nothing."
        )

    def handle(self, *args, archive: Path, yes: bool = False, check: bool = False, **options) -> None:
        if not (yes or check):
            raise CommandError(
                "restore writes the database and MEDIA_ROOT: re-run with --yes to go ahead "
                "(or --check to only verify the archive and the target). Nothing was changed."
            )
        try:
            if check:
                manifest = backup_check(archive=archive)
                self.stdout.write(
                    f"{archive} is intact ({len(manifest['files'])} files, made {manifest['created_at']}) "
                    "and the target database is empty: it can be restored with --yes."
                )
                return
            report = backup_restore(archive=archive)
        except (ArchiveInvalid, RestoreRefused) as exc:
            raise CommandError(f"Restore refused, nothing was changed: {exc}") from exc
        except RestoreFailed as exc:
            raise CommandError(f"Restore failed: {exc}") from exc
        manifest = report.manifest
        self.stdout.write(f"Restored {archive} (made {manifest['created_at']}).")
        self.stdout.write(f"{'table':<32} {'backup':>8} {'restored':>8}")
        for label, expected in manifest["row_counts"].items():
            actual = report.row_counts.get(label)
            mark = "" if actual == expected else "  MISMATCH"
            self.stdout.write(f"{label:<32} {expected:>8} {actual if actual is not None else '-':>8}{mark}")
        self.stdout.write(f"Media: {report.media_files} files, {report.media_bytes} bytes.")
        if report.pending_migrations:
            self.stdout.write(
                f"This code has {report.pending_migrations} migration(s) the backup predates: "
                "run `manage.py migrate`."
            )
        if report.mismatches:
            raise CommandError("Row counts differ from the backup: " + "; ".join(report.mismatches))
