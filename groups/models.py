"""Group chats: the user and several of their companions in one conversation."""

from __future__ import annotations

from django.conf import settings
from django.db import models

MIN_COMPANIONS = 2
MAX_COMPANIONS = 6


class GroupChat(models.Model):
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="group_chats"
    )
    title = models.CharField(max_length=100)
    # Only the creator's own companions; checked by the form and again by groups.services.
    companions = models.ManyToManyField("companions.Companion", related_name="group_chats")
    # How many companions answer each message; None means every member.
    replies_per_turn = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["creator", "-created_at"], name="groupchat_creator_created")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class GroupMessage(models.Model):
    group = models.ForeignKey(GroupChat, on_delete=models.CASCADE, related_name="messages")
    # The user's own words have no companion; a reply names the companion that wrote it.
    sender = models.ForeignKey(
        "companions.Companion", null=True, blank=True, on_delete=models.CASCADE, related_name="group_messages"
    )
    is_bot = models.BooleanField(default=False)
    content = models.TextField(blank=True)  # no cap in the database; services cap input
    image = models.ForeignKey(
        "media.StoredImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="group_messages"
    )
    # A reply is written while it streams; complete once it ends.
    is_complete = models.BooleanField(default=True)
    # On a user's message: the companions picked to answer it, in order (ids).
    reply_order = models.JSONField(default=list, blank=True)
    # On a reply: earlier versions of it, newest last, as on ``chat.Message``; ``content`` is shown.
    alternatives = models.JSONField(default=list, blank=True)
    # On a reply: "length" when the model stopped at the token limit, so it can be continued.
    finish_reason = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["group", "created_at"], name="groupmessage_group_created"),
            models.Index(fields=["group", "sender", "created_at"], name="groupmessage_group_sender"),
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.content[:40]
