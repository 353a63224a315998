"""Moderation of memories: read-only lists and pages; deleting (with the permission) goes
through the service, so every process's kept vectors stay right."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from memories import services
from memories.models import Memory


@admin.register(Memory)
class MemoryAdmin(admin.ModelAdmin):
    list_display = ("short_text", "companion", "owner", "pinned", "source", "user_edited", "created_at")
    list_filter = (
        ("owner", admin.RelatedOnlyFieldListFilter),
        ("companion", admin.RelatedOnlyFieldListFilter),
        "pinned",
        "source",
        "user_edited",
        "created_at",
    )
    search_fields = ("text",)
    list_select_related = ("owner", "companion")
    fields = (
        "text",
        "owner",
        "companion",
        "pinned",
        "user_edited",
        "source",
        "embedding_model",
        "created_at",
        "updated_at",
        "last_used_at",
    )
    readonly_fields = fields  # the vector itself is never shown
    date_hierarchy = "created_at"
    show_full_result_count = False  # a count of every memory is a slow query on a big site

    @admin.display(description=gettext_lazy("memory"), ordering="text")
    def short_text(self, obj: Memory) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Memory]:
        return super().get_queryset(request).defer("embedding")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # memories are the user's and their companion's, written on the site

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Memory) -> None:
        services.memories_delete_many(Memory.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Memory]) -> None:
        services.memories_delete_many(queryset)
