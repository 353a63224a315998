"""``manage.py migrate_images [--dry-run]``: move base64 header pictures to files."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser
from django.template.defaultfilters import filesizeformat

from companions.legacy import migrate_legacy_headers


class Command(BaseCommand):
    help = "Move every companion's base64 header_image_legacy value to a stored, optimized file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Validate and measure; write nothing.")

    def handle(self, *args: object, dry_run: bool = False, **options: object) -> None:
        report = migrate_legacy_headers(dry_run=dry_run)
        verb = "Would migrate" if dry_run else "Migrated"
        self.stdout.write(
            f"{verb} {report.migrated} picture(s): {filesizeformat(report.bytes_before)} in the database "
            f"-> {filesizeformat(report.bytes_after)} on disk ({report.saved_percent}% saved)."
        )
        for companion_id, reason in report.corrupt:
            self.stdout.write(self.style.WARNING(f"Skipped companion {companion_id}: {reason}"))
        if report.corrupt:
            self.stdout.write(self.style.WARNING(f"{len(report.corrupt)} corrupt value(s) left in place."))
        elif not report.migrated:
            self.stdout.write("Nothing to migrate.")
