"""Moderation of messages and pipeline runs; the back-end connections and sampler presets."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from chat import admin_backends  # noqa: F401  (registers the connection and preset admins)
from chat.backends import all_breakers
from chat.connections import breakers_reset_all
from chat.models import Message, PipelineRun


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("short_content", "role", "companion", "owner", "created_at")
    list_filter = ("role", "created_at")
    search_fields = ("content",)
    list_select_related = ("companion", "companion__owner")
    raw_id_fields = ("companion", "image")
    date_hierarchy = "created_at"

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]

    @admin.display(description="owner", ordering="companion__owner__username")
    def owner(self, obj: Message):
        return obj.companion.owner


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "companion",
        "group",
        "status",
        "step",
        "progress",
        "error_code",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "step", "want_image", "created_at")
    search_fields = ("id", "companion__name", "error_text")
    list_select_related = ("companion", "group")
    raw_id_fields = (
        "companion",
        "user_message",
        "assistant_message",
        "group",
        "group_user_message",
        "group_reply",
    )
    readonly_fields = ("step_durations", "error_text", "prompt_tokens", "completion_tokens")
    actions = ("reset_circuit_breakers",)

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
    def reset_circuit_breakers(self, request, queryset) -> None:
        breakers_reset_all()
        self.message_user(request, "Circuit breakers reset.")
