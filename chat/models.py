"""Messages and the pipeline runs that produce replies."""

from __future__ import annotations

import uuid

from django.db import models


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    companion = models.ForeignKey("companions.Companion", on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)  # no cap in the database; services cap input
    # What a reasoning model thought before it answered: never in ``content`` or the history the
    # LLM is sent, shown only on demand under the reply.
    reasoning = models.TextField(blank=True, default="")
    image = models.ForeignKey(
        "media.StoredImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # An assistant message is written while it streams; complete once the reply ends.
    is_complete = models.BooleanField(default=True)
    # "length" when the model stopped at the token limit: the reply can be continued.
    finish_reason = models.CharField(max_length=20, blank=True)
    # Earlier versions of a regenerated reply, newest last; ``content`` is the one shown.
    alternatives = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)

    class Meta:
        indexes = [models.Index(fields=["companion", "-created_at"], name="message_companion_created")]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class PipelineRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    class Mode(models.TextChoices):
        REPLY = "reply", "Reply"  # also a regenerated reply: the old text went to alternatives
        CONTINUE = "continue", "Continue"  # append to a reply cut at the length limit

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    companion = models.ForeignKey("companions.Companion", on_delete=models.CASCADE, related_name="runs")
    # A one-to-one run answers ``user_message`` with ``assistant_message``; a group run (``group``
    # set) answers ``group_user_message`` with ``group_reply``, and ``companion`` is the speaker.
    user_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    assistant_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    group = models.ForeignKey(
        "groups.GroupChat", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    group_user_message = models.ForeignKey(
        "groups.GroupMessage", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    group_reply = models.ForeignKey(
        "groups.GroupMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=30, blank=True)
    want_image = models.BooleanField(default=False)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.REPLY)
    attempts = models.PositiveSmallIntegerField(default=0)
    error_code = models.CharField(max_length=40, blank=True)
    error_text = models.TextField(blank=True)
    step_durations = models.JSONField(default=dict, blank=True)  # step -> milliseconds
    # The scene each analysis found: {"context": {...}, "reply": {...}}; update_state applies it.
    analysis = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["companion", "status", "-created_at"], name="run_companion_status_created"),
            models.Index(fields=["group", "status", "-created_at"], name="run_group_status_created"),
        ]
        ordering = ["-created_at"]
        permissions = [("reset_circuit_breakers", "Can reset the LLM and image circuit breakers")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


# Back ends as data (connections, presets, each companion's choice): their own module, one app.
from chat.backend_models import CompanionBackend, Connection, SamplerPreset  # noqa: E402

__all__ = ["CompanionBackend", "Connection", "Message", "PipelineRun", "SamplerPreset"]
