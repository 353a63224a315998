"""Moderation of stored images, with storage totals on the list page."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from media.models import StoredImage
from media.services import storage_stats


@admin.register(StoredImage)
class StoredImageAdmin(admin.ModelAdmin):
    list_display = ("preview", "companion", "kind", "width", "height", "byte_size", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("companion__name", "companion__owner__username")
    list_select_related = ("companion",)
    readonly_fields = ("preview", "file", "width", "height", "byte_size", "original_size", "created_at")
    raw_id_fields = ("companion",)

    # The picture itself is private: without media.view_any_image the row is
    # listed without it (the image view would refuse it anyway).
    def get_list_display(self, request: HttpRequest):
        if request.user.has_perm("media.view_any_image"):
            return self.list_display
        return tuple(field for field in self.list_display if field != "preview")

    def get_readonly_fields(self, request: HttpRequest, obj: StoredImage | None = None):
        if request.user.has_perm("media.view_any_image"):
            return self.readonly_fields
        return tuple(field for field in self.readonly_fields if field != "preview")

    @admin.display(description="picture")
    def preview(self, obj: StoredImage) -> str:
        return format_html('<img src="{}" alt="" width="64" height="64" class="admin-thumb">', obj.url)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "storage_stats": storage_stats()}
        return super().changelist_view(request, extra_context=extra_context)
