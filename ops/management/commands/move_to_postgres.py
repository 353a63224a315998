"""``manage.py move_to_postgres [--from-sqlite PATH]``: an embedded-default install into PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from ops.move import MoveMismatch, MoveRefused, MoveReport, move_sqlite_to_postgres


class Command(BaseCommand):
    help = (
        "Copy every row of the SQLite database into the empty PostgreSQL database DATABASE_URL names, "
        "keeping primary keys, then compare row counts and a checksum per table. Stop the site first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--from-sqlite",
            type=Path,
            metavar="PATH",
            help="The SQLite database file (default: the embedded default's, VAR_DIR/db.sqlite3).",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Target alias (default: default).")

    def handle(self, *args, from_sqlite: Path | None = None, database: str = DEFAULT_DB_ALIAS, **options):
        source = Path(from_sqlite or Path(settings.VAR_DIR) / "db.sqlite3")
        try:
            report = move_sqlite_to_postgres(source=source, target_alias=database)
        except MoveRefused as exc:
            raise CommandError(f"Nothing was copied: {exc}") from exc
        except MoveMismatch as exc:
            self.print_tables(exc.report)
            raise CommandError(
                f"Source and target differ in {exc}: the copy was rolled back, the target holds no rows."
            ) from exc
        self.print_tables(report)
        if report.missing_files:
            for name in report.missing_files:
                self.stdout.write(f"missing from MEDIA_ROOT: {name}")
            raise CommandError(
                f"Every row was copied, but {len(report.missing_files)} file(s) the rows name are not in "
                f"{settings.MEDIA_ROOT} (they were missing before the move too)."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Moved {sum(t.target_rows for t in report.tables)} rows in {len(report.tables)} tables from "
                f"{source}; every count and checksum matches and every media file is present."
            )
        )

    def print_tables(self, report: MoveReport) -> None:
        self.stdout.write(
            f"{'table':<34} {'sqlite':>8} {'postgres':>8}  {'sha256 (sqlite / postgres)':<27} check"
        )
        for check in report.tables:
            same = check.source_sha256 == check.target_sha256
            sums = check.source_sha256[:12] + (" =" if same else f" / {check.target_sha256[:12]}")
            status = "ok" if check.ok else "MISMATCH"
            self.stdout.write(
                f"{check.label:<34} {check.source_rows:>8} {check.target_rows:>8}  {sums:<27} {status}"
            )
