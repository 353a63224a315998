"""Moderation of group chats and their messages."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from groups.models import MAX_COMPANIONS, MIN_COMPANIONS, GroupChat, GroupMessage


class GroupChatAdminForm(forms.ModelForm):
    """The same membership rule as the site's form: only the creator's own companions, 2-6."""

    class Meta:
        model = GroupChat
        fields = ["title", "creator", "companions", "replies_per_turn"]

    def clean(self):
        cleaned = super().clean()
        creator, companions = cleaned.get("creator"), cleaned.get("companions")
        if creator is not None and companions is not None:
            strangers = [c.name for c in companions if c.owner_id != creator.pk]
            if strangers:
                self.add_error("companions", f"Not the creator's companions: {', '.join(strangers)}.")
            if not MIN_COMPANIONS <= len(companions) <= MAX_COMPANIONS:
                self.add_error("companions", f"Choose {MIN_COMPANIONS} to {MAX_COMPANIONS} companions.")
        return cleaned


class GroupMessageInline(admin.TabularInline):
    """The conversation, read-only: moderators read it here and delete whole groups or messages."""

    model = GroupMessage
    fields = ("created_at", "sender", "is_bot", "content", "image", "is_complete")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("created_at", "id")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GroupChat)
class GroupChatAdmin(admin.ModelAdmin):
    form = GroupChatAdminForm
    list_display = ("title", "creator", "member_count", "replies_per_turn", "created_at")
    list_filter = ("created_at",)
    search_fields = ("title", "creator__username", "creator__email")
    list_select_related = ("creator",)
    raw_id_fields = ("creator",)
    filter_horizontal = ("companions",)
    date_hierarchy = "created_at"
    inlines = (GroupMessageInline,)

    @admin.display(description="companions")
    def member_count(self, obj: GroupChat) -> int:
        return obj.companions.count()


@admin.register(GroupMessage)
class GroupMessageAdmin(admin.ModelAdmin):
    list_display = ("short_content", "group", "sender_name", "is_bot", "is_complete", "created_at")
    list_filter = ("is_bot", "is_complete", "created_at")
    search_fields = ("content", "group__title", "group__creator__username", "sender__name")
    list_select_related = ("group", "group__creator", "sender")
    raw_id_fields = ("group", "sender", "image")
    date_hierarchy = "created_at"

    @admin.display(description="content")
    def short_content(self, obj: GroupMessage) -> str:
        return obj.content[:80]

    @admin.display(description="sender", ordering="sender__name")
    def sender_name(self, obj: GroupMessage) -> str:
        return obj.sender.name if obj.sender_id else obj.group.creator.get_username()
