"""An account's export: one zip of everything the account owns, built in the background."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class AccountExport(models.Model):
    """One export of one account; its zip is a private file only the owner downloads.

    At most one export per account is being built at a time (a constraint),
    and a ready one expires after ``EXPORT_TTL_SECONDS``; the periodic sweep
    then deletes the row, and its file goes with it (``portability.signals``).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Being built"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    # A storage name we generated (exports/<random>.zip), never input.
    file = models.CharField(max_length=255, blank=True)
    byte_size = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)  # objects exported, by type (the manifest's)
    error_text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="export_owner_created"),
            models.Index(fields=["expires_at"], name="export_expires"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner"],
                condition=Q(status__in=["queued", "running"]),
                name="export_one_active_per_owner",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="export_progress_range"),
            models.CheckConstraint(
                condition=~Q(status="ready") | (Q(expires_at__isnull=False) & ~Q(file="")),
                name="export_ready_has_file_and_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.status})"
