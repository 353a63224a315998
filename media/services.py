"""Store, delete and count images. Every stored image goes through here.

``store_image`` validates and optimizes (``media.imaging``), writes through
Django's storage API under a generated name, and records a ``StoredImage``
row so serving can check ownership. Files are removed when their row is
deleted, however it is deleted (see ``media.signals``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import structlog
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db.models import Count, Sum

from companionhub import pagecache
from media.imaging import KIND_MAX_SIDE, ImageRejected, decode_image_input, optimize_image
from media.models import StoredImage
from media.storage import KIND_FOLDERS, storage_name

log = structlog.get_logger(__name__)

__all__ = ["ImageRejected", "delete_image", "image_open", "image_read", "storage_stats", "store_image"]


class PictureCompanion(Protocol):
    """What storing needs of the companion a picture belongs to (media imports nothing of companions)."""

    @property
    def pk(self) -> int: ...
    @property
    def owner_id(self) -> int: ...


def store_image(
    data: bytes | str, companion: PictureCompanion, kind: str, *, prompt: str = ""
) -> StoredImage:
    """Validate, optimize and store an image for ``companion``.

    ``data`` is raw bytes or base64 text (with or without a ``data:`` URL
    prefix). Raises ``ImageRejected`` with a user-facing message when the
    input is too big, not an image, a decompression bomb or an unsupported
    format; nothing is written in that case.
    """
    if kind not in KIND_FOLDERS:
        raise ValueError(f"unknown image kind {kind!r}")
    raw = decode_image_input(data, max_bytes=settings.IMAGE_MAX_BYTES)
    optimized = optimize_image(
        raw,
        max_side=KIND_MAX_SIDE[kind],
        max_bytes=settings.IMAGE_MAX_BYTES,
        max_pixels=settings.IMAGE_MAX_PIXELS,
    )
    name = default_storage.save(storage_name(companion.pk, kind), ContentFile(optimized.data))
    try:
        image = StoredImage.objects.create(
            companion_id=companion.pk,
            kind=kind,
            file=name,
            width=optimized.width,
            height=optimized.height,
            byte_size=optimized.byte_size,
            original_size=optimized.original_size,
            prompt=prompt[:2000],
        )
    except BaseException:
        default_storage.delete(name)  # a failed store leaves no file behind
        raise
    pagecache.user_pages_changed(companion.owner_id)  # a new header or gallery picture
    log.info(
        "image_stored",
        image_id=str(image.pk),
        companion_id=companion.pk,
        kind=kind,
        width=image.width,
        height=image.height,
        byte_size=image.byte_size,
        original_size=image.original_size,
        ratio=round(image.compression_ratio, 3),
    )
    return image


def image_open(image: StoredImage) -> File:
    """The stored file, open for reading (``FileNotFoundError`` when it is gone)."""
    if not image.file.name:  # never so for a row store_image wrote
        raise FileNotFoundError(f"image {image.pk} has no file")
    return default_storage.open(image.file.name, "rb")


def image_read(image: StoredImage) -> bytes:
    """The stored file's bytes (``FileNotFoundError`` when the file is gone or unreadable)."""
    try:
        with image_open(image) as handle:
            return handle.read()
    except OSError as exc:
        raise FileNotFoundError(image.file.name) from exc


def delete_image(image: StoredImage) -> None:
    """Delete the row; its file goes once the transaction commits."""
    image.delete()


@dataclass(frozen=True)
class StorageStats:
    images: int
    bytes: int
    companions_with_images: int


def storage_stats() -> StorageStats:
    row = StoredImage.objects.aggregate(
        images=Count("id"), bytes=Sum("byte_size"), companions=Count("companion", distinct=True)
    )
    return StorageStats(
        images=row["images"] or 0, bytes=row["bytes"] or 0, companions_with_images=row["companions"] or 0
    )
