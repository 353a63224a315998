"""Conversations, their messages and turns, and the pipeline runs that write replies.

One model for every chat: a conversation has participants (one companion, or
two to six for a group), one message table, turns (a user's message and the
replies it is owed) and runs (one reply being written by one companion).
*Where* a reply goes is data, not a second code path.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

MIN_GROUP_COMPANIONS = 2
MAX_GROUP_COMPANIONS = 6


class Conversation(models.Model):
    class Kind(models.TextChoices):
        DIRECT = "direct", "One-to-one"
        GROUP = "group", "Group"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DIRECT)
    # A one-to-one chat may have no title of its own (the list shows the companion and the date).
    title = models.CharField(max_length=100, blank=True)
    companions = models.ManyToManyField(
        "companions.Companion", through="Participant", related_name="conversations"
    )
    # Groups: how many companions answer each message; None means every member.
    replies_per_turn = models.PositiveSmallIntegerField(null=True, blank=True)
    # A branch: the message of another conversation this one was copied up to.
    branched_from = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="branches"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # An imported chat: what its file said that no column holds, given back on export
    # (chat/transcripts: the file's format, ST's header ``create_date`` and ``chat_metadata``,
    # and which swipe each reply showed). Empty for a chat started here.
    transcript_origin = models.JSONField(default=dict, blank=True)
    # The last activity (a message written, a reply finished): lists are sorted by it.
    updated_at = models.DateTimeField(default=timezone.now)
    # Lorebooks that apply to every speaker of this chat (each companion's own apply too).
    lorebooks = models.ManyToManyField("lorebooks.Lorebook", blank=True, related_name="conversations")
    # The rolling summary of the messages too old to fit the prompt: it covers every message up
    # to ``summary_upto`` (chat.summaries writes it). A summary the user edited is extended by
    # later passes, never rewritten (``summary_edited_at``).
    summary = models.TextField(blank=True)
    summary_upto = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    summary_updated_at = models.DateTimeField(null=True, blank=True)
    summary_edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_updated")]
        ordering = ["-updated_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(replies_per_turn__isnull=True)
                | Q(replies_per_turn__gte=1, replies_per_turn__lte=MAX_GROUP_COMPANIONS),
                name="conversation_replies_per_turn_range",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"Chat {self.pk}"

    @property
    def is_group(self) -> bool:
        return self.kind == self.Kind.GROUP


class Participant(models.Model):
    """A companion in a conversation; ``position`` is the standing (round-robin) order."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="participants")
    companion = models.ForeignKey(
        "companions.Companion", on_delete=models.CASCADE, related_name="participations"
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "companion"], name="participant_once"),
        ]

    def __str__(self) -> str:
        return f"{self.companion_id} in {self.conversation_id}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    # The companion that wrote a reply; None for the user's own words.
    sender = models.ForeignKey(
        "companions.Companion", null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    content = models.TextField(blank=True)  # no cap in the database; services cap input
    # What a reasoning model thought before it answered: never in ``content`` or the history the
    # LLM is sent, shown only on demand under the reply.
    reasoning = models.TextField(blank=True, default="")
    image = models.ForeignKey(
        "media.StoredImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # A reply is written while it streams; complete once the reply ends.
    is_complete = models.BooleanField(default=True)
    # "length" when the model stopped at the token limit: the reply can be continued.
    finish_reason = models.CharField(max_length=20, blank=True)
    # Earlier versions of a regenerated reply (or a greeting's alternates), newest last;
    # ``content`` is the one shown.
    alternatives = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)  # corrected in place by the user

    class Meta:
        indexes = [
            models.Index(fields=["conversation", "-created_at", "-id"], name="message_conversation_latest")
        ]
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(role="user", sender__isnull=True) | Q(role="assistant", sender__isnull=False),
                name="message_sender_matches_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    @property
    def versions(self) -> int:
        return len(self.alternatives) + 1


class Turn(models.Model):
    """A message of the user and the replies it is owed, in order."""

    class Status(models.TextChoices):
        OPEN = "open", "Being answered"
        DONE = "done", "Answered"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="turn")
    # The companion ids that answer, in order; cut to those that did when the turn is stopped.
    order = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["conversation", "-created_at"], name="turn_conversation_latest")]
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"turn {self.pk} ({self.status})"


class PipelineRunManager(models.Manager["PipelineRun"]):
    """Runs without ``prompt_record`` (up to a whole context of text each): every list,
    snapshot, step and admin page loads runs, and only the prompt view reads the record
    (by ``values_list``, or an explicit ``only``/``defer`` it asks for)."""

    def get_queryset(self) -> models.QuerySet[PipelineRun]:
        return super().get_queryset().defer("prompt_record")


class PipelineRun(models.Model):
    """One reply being written by one companion (``companion`` is the speaker)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        # A group reply queued behind another reply of the same companion; started when it ends.
        WAITING = "waiting", "Waiting for the companion"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    LIVE = (Status.QUEUED, Status.WAITING, Status.RUNNING)
    ENDED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    class Mode(models.TextChoices):
        REPLY = "reply", "Reply"  # also a regenerated reply: the old text went to alternatives
        CONTINUE = "continue", "Continue"  # append to a reply cut at the length limit

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="runs")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="runs")
    companion = models.ForeignKey("companions.Companion", on_delete=models.CASCADE, related_name="runs")
    reply = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=30, blank=True)
    want_image = models.BooleanField(default=False)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.REPLY)
    # A continued reply keeps its first ``continue_from`` characters.
    continue_from = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error_code = models.CharField(max_length=40, blank=True)
    error_text = models.TextField(blank=True)
    step_durations = models.JSONField(default=dict, blank=True)  # step -> milliseconds
    # The scene each analysis found ({"context": ..., "reply": ...}), who served the reply, and
    # a "paint again" order; update_state applies the scene.
    analysis = models.JSONField(default=dict, blank=True)
    # Exactly what the reply step sent the LLM, for the owner's prompt view: the messages, the
    # budget's allocation per part, the lorebook entries that fired and the memories used
    # (chat.prompt_assembly). Large: deferred by the manager, loaded only by the prompt view.
    prompt_record = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False)  # some tokens were counted, not reported
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # While a step runs: renewed by its worker (chat.leases); a lapsed lease means the worker died.
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    objects = PipelineRunManager()

    class Meta:
        indexes = [
            models.Index(fields=["companion", "status", "-created_at"], name="run_companion_status_created"),
            models.Index(fields=["conversation", "-created_at"], name="run_conversation_created"),
            models.Index(
                fields=["lease_expires_at"], condition=Q(status="running"), name="run_running_lease"
            ),
        ]
        ordering = ["-created_at"]
        permissions = [("reset_circuit_breakers", "Can reset the LLM and image circuit breakers")]
        constraints = [
            # One reply at a time per companion (it moves one outfit, location and action) and
            # per conversation (a group's companions answer one after another).
            models.UniqueConstraint(
                fields=["companion"],
                condition=Q(status__in=["queued", "running"]),
                name="run_one_active_per_companion",
            ),
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status__in=["queued", "running"]),
                name="run_one_active_per_conversation",
            ),
            models.CheckConstraint(
                condition=~Q(mode="continue") | Q(continue_from__isnull=False), name="run_continue_has_offset"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


# Back ends as data (connections, presets, each companion's choice): their own module, one app.
from chat.backend_models import CompanionBackend, Connection, SamplerPreset  # noqa: E402
from chat.speech_models import SpeechClip  # noqa: E402

__all__ = [
    "CompanionBackend",
    "Connection",
    "Conversation",
    "Message",
    "Participant",
    "PipelineRun",
    "SamplerPreset",
    "SpeechClip",
    "Turn",
]
