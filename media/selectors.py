"""Reads of stored images, always scoped to who is asking."""

from __future__ import annotations

from django.db.models import Min, QuerySet
from django.shortcuts import get_object_or_404

from media.models import StoredImage


def image_get_for_user(user, image_id) -> StoredImage:
    """The image if ``user`` owns its companion (staff see all); 404 otherwise."""
    images = StoredImage.objects.select_related("companion")
    if not user.is_staff:
        images = images.filter(companion__owner=user)
    return get_object_or_404(images, pk=image_id)


def gallery_for_user(user) -> QuerySet[StoredImage]:
    return (
        StoredImage.objects.filter(companion__owner=user, kind=StoredImage.Kind.GENERATED)
        .select_related("companion")
        .annotate(message_id=Min("messages__id"))
        .order_by("-created_at")
    )
