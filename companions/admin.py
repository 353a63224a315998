"""Moderation of companions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpRequest
from django.utils.translation import gettext_lazy, ngettext

from companions import services
from companions.models import Companion, CompanionDraft


@admin.register(Companion)
class CompanionAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "style", "message_count", "tokens_burned", "created_at")
    list_filter = ("style", "created_at")
    search_fields = ("name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "header_image")
    readonly_fields = ("tokens_burned", "version", "created_at", "updated_at", "header_image_legacy")
    # chat.admin adds "wipe memory" (the chats are chat's).
    actions: tuple[str, ...] = ("remove_header_image",)
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_message_count=Count("messages"))

    @admin.display(description=gettext_lazy("replies"), ordering="_message_count")
    def message_count(self, obj: Companion) -> int:
        # An annotation over the messages relation: moved out by the one-conversation refactor.
        return obj._message_count  # type: ignore[attr-defined]

    def has_remove_header_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("companions.remove_companion_header")

    @admin.action(description=gettext_lazy("Remove the header picture"), permissions=("remove_header",))
    def remove_header_image(self, request, queryset):
        count = 0
        for companion in queryset.filter(header_image__isnull=False):
            services.companion_remove_header(companion=companion)
            count += 1
        self.message_user(
            request,
            ngettext("Removed %(count)s header picture.", "Removed %(count)s header pictures.", count)
            % {"count": count},
            messages.SUCCESS,
        )


@admin.register(CompanionDraft)
class CompanionDraftAdmin(admin.ModelAdmin):
    list_display = ("owner", "step", "updated_at")
    raw_id_fields = ("owner",)
