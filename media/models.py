"""Stored images: one row per file, so every file has an owner to check."""

from __future__ import annotations

import uuid

from django.db import models
from django.urls import reverse


class StoredImage(models.Model):
    class Kind(models.TextChoices):
        HEADER = "header", "Header picture"
        GENERATED = "generated", "Generated picture"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    companion = models.ForeignKey("companions.Companion", on_delete=models.CASCADE, related_name="images")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # A storage name we generated (companions/<id>/<kind>s/<random>.jpg), never input.
    file = models.FileField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    original_size = models.PositiveIntegerField()
    prompt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["companion", "kind", "-created_at"], name="image_companion_kind")]
        ordering = ["-created_at"]
        # Seeing a row (view_storedimage) is not seeing the picture: the file
        # is private to its owner, so looking at it takes this permission.
        permissions = [("view_any_image", "Can view any user's private pictures")]

    def __str__(self) -> str:
        return self.file.name or ""

    @property
    def url(self) -> str:
        return reverse("media:image", args=[self.pk])

    @property
    def compression_ratio(self) -> float:
        return self.byte_size / self.original_size if self.original_size else 1.0
