"""Moderation of conversations, messages and pipeline runs; the back-end connections and presets.

Moderators read a conversation (one-to-one or group) on its page, messages
inline and read-only, and delete whole conversations or single messages.
Membership of a conversation is the owner's business: the admin shows it,
it does not edit it (a companion of another user must never join).

One user's conversations, messages and runs are lists filtered by owner, from
links on the user's page: ``?owner__id__exact=<id>`` on conversations,
``?conversation__owner__id__exact=<id>`` on messages and runs, the same for
a companion (``conversation__companions__id__exact``, ``companion__id__exact``)
and a conversation. Group and one-to-one messages are found the same way: by
their conversation's owner and members, not the sender (a user's message has
none). The owner's username (``conversation__owner__username``,
``companion__owner__username``) works as a lookup too, and the search boxes
match the owner's username and the companions' names as well as the text.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from chat import admin_backends  # noqa: F401  (registers the connection and preset admins)
from chat.backends import all_breakers
from chat.connections import breakers_reset_all
from chat.conversations import companion_wipe_memory
from chat.models import Conversation, Message, Participant, PipelineRun
from chat.search import message_search_ids_all
from chat.voice import message_clips_drop
from companionhub.admin_filters import ChosenRelatedFilter
from companionhub.errors import AppError
from companions.admin import CompanionAdmin
from companions.models import Companion

# Lookups by name that moderators type or paste; ids come through the list filters.
OWNER_NAME_LOOKUPS = frozenset({"conversation__owner__username", "companion__owner__username"})


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ParticipantInline(ReadOnlyInline):
    model = Participant
    fields = ("position", "companion")
    readonly_fields = fields
    ordering = ("position",)


class MessageInline(ReadOnlyInline):
    """The conversation, read-only: moderators read it here and delete it or single messages."""

    model = Message
    fields = ("created_at", "role", "sender", "content", "image", "is_complete")
    readonly_fields = fields
    show_change_link = True
    ordering = ("created_at", "id")


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "owner", "updated_at", "created_at")
    list_filter = (
        ("owner", ChosenRelatedFilter),
        ("companions", ChosenRelatedFilter),
        "kind",
        "created_at",
    )
    search_fields = ("title", "owner__username", "owner__email", "companions__name")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "branched_from")
    readonly_fields = ("kind", "owner", "branched_from", "created_at", "updated_at")
    fields = ("title", "kind", "owner", "replies_per_turn", "branched_from", "created_at", "updated_at")
    date_hierarchy = "created_at"
    inlines = (ParticipantInline, MessageInline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations start on the site, with their greeting and members


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("short_content", "role", "sender", "conversation", "owner", "created_at")
    list_filter = (
        ("conversation__owner", ChosenRelatedFilter),
        ("conversation__companions", ChosenRelatedFilter),
        ("conversation", ChosenRelatedFilter),
        ("sender", ChosenRelatedFilter),
        "conversation__kind",
        "role",
        "created_at",
    )
    search_fields = ("content",)  # the full-text index, the owner and companions: get_search_results
    list_select_related = ("sender", "conversation", "conversation__owner")
    raw_id_fields = ("conversation", "sender", "image")
    date_hierarchy = "created_at"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        """The site's full-text search (every user's messages: this list is for moderators),
        its best matches, and every message of an owner or companion whose name contains the
        term; the list's filters and permissions apply as for any search."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_name = Q(conversation__owner__username__icontains=term) | Q(
            conversation__companions__name__icontains=term
        )
        # A group has several companions: the join may list a message once per member.
        return queryset.filter(Q(pk__in=message_search_ids_all(term)) | by_name), True

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        return lookup in OWNER_NAME_LOOKUPS or super().lookup_allowed(lookup, value, request)

    def save_model(self, request: HttpRequest, obj: Message, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "content" in form.changed_data:
            message_clips_drop(obj.pk)  # its spoken clips say the old text

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]

    @admin.display(description="owner", ordering="conversation__owner__username")
    def owner(self, obj: Message):
        return obj.conversation.owner


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "companion",
        "conversation",
        "status",
        "step",
        "progress",
        "error_code",
        "created_at",
        "finished_at",
    )
    list_filter = (
        ("conversation__owner", ChosenRelatedFilter),
        ("companion", ChosenRelatedFilter),
        ("conversation", ChosenRelatedFilter),
        "conversation__kind",
        "status",
        "step",
        "want_image",
        "created_at",
    )
    search_fields = ("id", "companion__name", "conversation__owner__username", "error_text")
    list_select_related = ("companion", "conversation")
    raw_id_fields = ("companion", "conversation", "turn", "reply")
    readonly_fields = ("step_durations", "error_text", "prompt_tokens", "completion_tokens", "prompt_record")
    actions = ("reset_circuit_breakers",)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        return lookup in OWNER_NAME_LOOKUPS or super().lookup_allowed(lookup, value, request)

    def changelist_view(self, request, extra_context=None):
        """Show each back end's circuit breaker above the runs: why runs may be failing fast."""
        breakers = [breaker.status() for breaker in all_breakers()]
        return super().changelist_view(request, {**(extra_context or {}), "breakers": breakers})

    def has_reset_breakers_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("chat.reset_circuit_breakers")

    @admin.action(
        description="Reset every connection's circuit breaker (try the back ends again now)",
        permissions=("reset_breakers",),
    )
    def reset_circuit_breakers(self, request: HttpRequest, queryset: QuerySet[PipelineRun]) -> None:
        breakers_reset_all()
        self.message_user(request, "Circuit breakers reset.")


class CompanionWithChatsAdmin(CompanionAdmin):
    """The companions' admin with what needs the chats: wiping a companion's memory."""

    actions = (*CompanionAdmin.actions, "wipe_memory")

    def has_wipe_memory_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("companions.wipe_companion_memory")

    @admin.action(
        description="Wipe memory (delete one-to-one chats, runs and generated pictures)",
        permissions=("wipe_memory",),
    )
    def wipe_memory(self, request: HttpRequest, queryset: QuerySet[Companion]) -> None:
        wiped, busy = 0, []
        for companion in queryset:
            try:
                companion_wipe_memory(companion=companion)
            except AppError:
                busy.append(companion.name)
            else:
                wiped += 1
        self.message_user(request, f"Wiped the memory of {wiped} companion(s).", messages.SUCCESS)
        if busy:
            self.message_user(request, f"Still replying, not wiped: {', '.join(busy)}.", messages.WARNING)


admin.site.unregister(Companion)
admin.site.register(Companion, CompanionWithChatsAdmin)
