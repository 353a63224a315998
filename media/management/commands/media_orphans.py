"""``manage.py media_orphans [--delete] [--older-than-minutes N]``: files under MEDIA_ROOT in no row."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat

from media import orphans


class Command(BaseCommand):
    help = (
        "List files under MEDIA_ROOT that no row references (pictures, spoken clips); with --delete, "
        "remove them. Only files in the folders and shapes the site writes, older than "
        "--older-than-minutes, are considered; symbolic links and any other file are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--delete", action="store_true", help="Remove the orphan files found.")
        parser.add_argument(
            "--older-than-minutes",
            type=int,
            default=orphans.DEFAULT_MIN_AGE_MINUTES,
            help=f"Only files last written this long ago (default {orphans.DEFAULT_MIN_AGE_MINUTES}).",
        )

    def handle(
        self, *args: object, delete: bool = False, older_than_minutes: int = 60, **options: object
    ) -> None:
        if older_than_minutes < 0:
            raise CommandError("--older-than-minutes must be 0 or more.")
        report = orphans.report_orphans(older_than_minutes=older_than_minutes)
        for name in report.orphans:
            self.stdout.write(name)
        self.stdout.write(
            f"{len(report.orphans)} orphan file(s), {filesizeformat(report.bytes)}, "
            f"of {report.scanned} scanned ({report.too_new} newer than {older_than_minutes} min skipped, "
            f"{report.symlinks_skipped} symbolic link(s) and {report.foreign} file(s) "
            "the site did not write skipped)."
        )
        if delete and report.orphans:
            deleted = orphans.delete_orphans(report)
            self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} file(s)."))
        elif report.orphans:
            self.stdout.write("Run again with --delete to remove them.")
