"""Long-term memories: short facts a companion keeps about its user across all their chats.

A memory is written by the pipeline's memory step (a fact the LLM extracted from a finished
turn) or by the user on the Memories page. Every query filters by ``owner`` (the companion's
owner, kept on the row) as well as by companion. ``embedding`` holds the vector the LLM
connection's ``/v1/embeddings`` gave for ``text`` (float32, little-endian), with the model
that made it: vectors of different models are never compared. Without one, retrieval ranks
by full-text search (``memories.retrieval``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

MEMORY_MAX_CHARS = 1000


class Memory(models.Model):
    class Source(models.TextChoices):
        EXTRACTED = "extracted", "Remembered from a chat"
        MANUAL = "manual", "Added by you"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    companion = models.ForeignKey("companions.Companion", on_delete=models.CASCADE, related_name="memories")
    text = models.TextField(max_length=MEMORY_MAX_CHARS)
    pinned = models.BooleanField(default=False)  # always goes into the prompt
    user_edited = models.BooleanField(default=False)  # the memory step never overwrites it
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.EXTRACTED)
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["companion", "-created_at"], name="memory_companion_created"),
            models.Index(fields=["owner"], name="memory_owner"),
        ]
        verbose_name_plural = "memories"

    def __str__(self) -> str:
        return self.text[:80]
