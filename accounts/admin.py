from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts import services
from accounts.models import RateLimitRecord, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "display_name", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined")
    search_fields = ("username", "email", "display_name")
    ordering = ("-date_joined",)
    actions = ("deactivate",)
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("display_name", "email", "first_name", "last_name")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
    )

    @admin.action(description="Deactivate: end sessions, revoke API tokens, close websockets")
    def deactivate(self, request, queryset) -> None:
        for user in queryset.exclude(pk=request.user.pk):
            services.user_deactivate(user=user)
        self.message_user(request, "Deactivated; their sessions, tokens and open sockets are closed.")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            services.user_deactivate(user=obj)  # unticking "active" must end what is already open


@admin.register(RateLimitRecord)
class RateLimitRecordAdmin(admin.ModelAdmin):
    list_display = ("scope", "key", "hits", "reset_at", "first_limited_at", "last_limited_at")
    list_filter = ("scope",)
    search_fields = ("key",)
    readonly_fields = ("scope", "key", "hits", "reset_at", "first_limited_at", "last_limited_at")
    actions = ("clear",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Lift these limits now")
    def clear(self, request, queryset) -> None:
        for record in queryset:
            services.rate_limit_clear(record=record)
        self.message_user(request, "Limits lifted.")
