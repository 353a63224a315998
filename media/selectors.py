"""Reads of stored images, always scoped to who is asking."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.core.paginator import Paginator
from django.db.models import Min, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from companionhub import pagecache
from media.models import StoredImage


def image_get_for_user(user: User, image_id: uuid.UUID) -> StoredImage:
    """The image if ``user`` owns its companion, or may see anyone's pictures; 404 otherwise.

    Being staff is not enough: staff accounts hold only the permissions they
    were given, and another user's private picture takes ``media.view_any_image``.
    """
    images = StoredImage.objects.select_related("companion")
    if not user.has_perm("media.view_any_image"):
        images = images.filter(companion__owner=user)
    return get_object_or_404(images, pk=image_id)


def gallery_for_user(user: User) -> QuerySet[StoredImage]:
    return (
        StoredImage.objects.filter(companion__owner=user, kind=StoredImage.Kind.GENERATED)
        .select_related("companion")
        .annotate(message_id=Min("messages__id"), conversation_id=Min("messages__conversation_id"))
        .order_by("-created_at")
    )


@dataclass(frozen=True, slots=True)
class GalleryItem:
    pk: object  # the StoredImage's UUID
    url: str
    width: int
    height: int
    companion_id: int
    companion_name: str
    message_id: int | None
    conversation_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class GalleryPage:
    """One gallery page as plain values (cached per user), shaped like a ``Page`` for templates."""

    items: list[GalleryItem]
    number: int
    num_pages: int

    def __iter__(self) -> Iterator[GalleryItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def has_other_pages(self) -> bool:
        return self.num_pages > 1

    def previous_page_number(self) -> int:
        return self.number - 1

    def next_page_number(self) -> int:
        return self.number + 1


MAX_GALLERY_PAGE = 10_000  # keeps cache keys bounded whatever ?page= says


def gallery_page_for_user(user: User, page: str | None, *, per_page: int) -> GalleryPage:
    """Page ``page`` of the user's gallery (a bad number is page 1, past the end the last page)."""
    try:
        number = min(max(int(page or 1), 1), MAX_GALLERY_PAGE)
    except (TypeError, ValueError):
        number = 1

    def build() -> GalleryPage:
        current = Paginator(gallery_for_user(user), per_page).get_page(number)
        items = [
            GalleryItem(
                pk=image.pk,
                url=image.url,
                width=image.width,
                height=image.height,
                companion_id=image.companion_id,
                companion_name=image.companion.name,
                # Annotations of gallery_for_user (the messages relation), unknown to the type checker.
                message_id=image.message_id,  # type: ignore[attr-defined]
                conversation_id=image.conversation_id,  # type: ignore[attr-defined]
                created_at=image.created_at,
            )
            for image in current
        ]
        return GalleryPage(items=items, number=current.number, num_pages=current.paginator.num_pages)

    return pagecache.user_data("gallery", user.pk, f"page:{number}:{per_page}", build)
