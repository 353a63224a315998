"""Spoken replies: one row per clip (a sentence of a reply), so every file has an owner to check.

Imported by ``chat.models`` so Django registers the model with the chat app.
The file is private, like a picture: served by ``chat:speech_clip`` to the
conversation's owner only (``chat.voice_views``), never under ``MEDIA_URL``,
and deleted when its row goes, however the row goes (``chat.signals``).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.urls import reverse


class SpeechClip(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="speech_clips")
    # The run that spoke it (None: spoken on demand later, or the run's row is gone).
    run = models.ForeignKey(
        "chat.PipelineRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    index = models.PositiveSmallIntegerField()  # the sentence's place in the reply, from 0
    text = models.TextField()  # what was spoken
    # A storage name we generated (audio/<conversation id>/<random>.<ext>), never input.
    file = models.FileField(max_length=255)
    content_type = models.CharField(max_length=30)
    duration_ms = models.PositiveIntegerField()
    chars = models.PositiveIntegerField()  # characters synthesised (what the usage row charges)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "index"]
        constraints = [
            models.UniqueConstraint(fields=["message", "index"], name="speech_clip_one_per_sentence")
        ]
        # Seeing a row is not hearing it: another user's private audio takes this permission.
        permissions = [("view_any_speech", "Can listen to any user's spoken replies")]

    def __str__(self) -> str:
        return f"clip {self.index} of message {self.message_id}"

    @property
    def url(self) -> str:
        return reverse("chat:speech_clip", args=[self.pk])
