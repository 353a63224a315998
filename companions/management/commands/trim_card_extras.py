"""``manage.py trim_card_extras [--dry-run]``: cards stored before the extras cap, brought within it."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from companions.cards import EXTRAS_LABELS
from companions.services import companions_trim_card_extras


class Command(BaseCommand):
    help = (
        "Leave out the least useful extras (fields we do not use, then extensions, the lorebook last) of "
        "every stored character card over CARD_EXTRAS_MAX_BYTES, as an import does. Cards imported since "
        "the cap need nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Only list the cards over the cap.")

    def handle(self, *args: object, dry_run: bool = False, **options: object) -> None:
        limit = settings.CARD_EXTRAS_MAX_BYTES
        trimmed = companions_trim_card_extras(max_bytes=limit, dry_run=dry_run)
        for companion_id, left_out in trimmed:
            names = ", ".join(str(EXTRAS_LABELS[name]) for name in left_out)
            self.stdout.write(f"companion {companion_id}: {'would leave' if dry_run else 'left'} out {names}")
        verb = "are over" if dry_run else "were over"
        self.stdout.write(f"{len(trimmed)} card(s) {verb} the {limit // 1024} KB limit for extras.")
        if dry_run and trimmed:
            self.stdout.write("Run again without --dry-run to trim them.")
