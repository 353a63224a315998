"""Moderation of lorebooks: a book with its entries inline, searchable by owner."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy

from lorebooks.models import Lorebook, LoreEntry


class LoreEntryInline(admin.StackedInline):
    model = LoreEntry
    extra = 0
    fields = ("uid", *LoreEntry.EDITABLE, "extras")
    # What an import kept for export, and the entry's number in its file, are not edited here.
    readonly_fields = ("uid", "extras")
    show_change_link = False


@admin.register(Lorebook)
class LorebookAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "source", "entry_count", "updated_at")
    list_filter = ("source", ("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = ("source", "extras", "created_at", "updated_at")
    inlines = (LoreEntryInline,)
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_entry_count=Count("entries"))

    @admin.display(description=gettext_lazy("entries"), ordering="_entry_count")
    def entry_count(self, obj: Lorebook) -> int:
        return obj._entry_count  # type: ignore[attr-defined]
