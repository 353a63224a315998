"""Moving the old product's base64 header pictures out of the companions table, into stored files.

A companions concern that uses media's store, so it lives here: media keeps
files for companions but imports nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from django.conf import settings
from django.db import transaction

from companions.models import Companion
from media.imaging import KIND_MAX_SIDE, ImageRejected, decode_image_input, optimize_image
from media.models import StoredImage
from media.services import store_image

log = structlog.get_logger(__name__)


@dataclass
class LegacyReport:
    migrated: int = 0
    bytes_before: int = 0  # the base64 text that sat in the database
    bytes_after: int = 0  # the optimized files written
    corrupt: list[tuple[int, str]] = field(default_factory=list)  # (companion id, reason)

    @property
    def saved_percent(self) -> float:
        if not self.bytes_before:
            return 0.0
        return round(100 * (1 - self.bytes_after / self.bytes_before), 1)


def migrate_legacy_headers(*, dry_run: bool = False, report: LegacyReport | None = None) -> LegacyReport:
    """Store every ``header_image_legacy`` value as a file and point the companion at it.

    The legacy text is cleared only in the transaction that records the new
    file, so a crash leaves either the old value or the new picture, never
    neither. Corrupt values are reported and left in place; a second run
    finds only those.
    """
    report = report or LegacyReport()
    pending = Companion.objects.exclude(header_image_legacy="").only(
        "id", "header_image_legacy", "header_image"
    )
    for companion in pending.iterator(chunk_size=100):
        legacy = companion.header_image_legacy
        try:
            if dry_run:
                raw = decode_image_input(legacy, max_bytes=settings.IMAGE_MAX_BYTES)
                size = optimize_image(
                    raw,
                    max_side=KIND_MAX_SIDE["header"],
                    max_bytes=settings.IMAGE_MAX_BYTES,
                    max_pixels=settings.IMAGE_MAX_PIXELS,
                ).byte_size
            else:
                size = _migrate_one(companion, legacy)
        except ImageRejected as exc:
            report.corrupt.append((companion.pk, exc.message))
            log.warning("legacy_image_corrupt", companion_id=companion.pk, reason=exc.code)
            continue
        report.migrated += 1
        report.bytes_before += len(legacy.encode())
        report.bytes_after += size
    return report


def _migrate_one(companion: Companion, legacy: str) -> int:
    with transaction.atomic():
        old_header = companion.header_image
        image = store_image(legacy, companion, StoredImage.Kind.HEADER)
        companion.header_image = image
        companion.header_image_legacy = ""
        companion.save(update_fields=["header_image", "header_image_legacy"])
        if old_header is not None:
            old_header.delete()
    log.info("legacy_image_migrated", companion_id=companion.pk, byte_size=image.byte_size)
    return image.byte_size
