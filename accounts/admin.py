from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import BigIntegerField, Case, F, Value, When

from accounts import services, usage
from accounts.models import RateLimitRecord, UsageTransaction, User, UserUsage


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


@admin.register(UserUsage)
class UserUsageAdmin(admin.ModelAdmin):
    """Tokens per user, sortable; only the quota is edited here (the counters belong to the runs)."""

    list_display = ("user", "tokens_this_month", "lifetime_tokens", "quota_override", "quota_in_force")
    list_editable = ("quota_override",)
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email")
    ordering = ("-lifetime_tokens",)
    raw_id_fields = ("user",)
    fields = (
        "user",
        "quota_override",
        "period_start",
        "tokens_this_period",
        "images_this_period",
        "lifetime_tokens",
        "lifetime_images",
    )
    readonly_fields = (
        "period_start",
        "tokens_this_period",
        "images_this_period",
        "lifetime_tokens",
        "lifetime_images",
    )
    actions = None  # bulk deletion would make the totals disagree with the transactions

    def get_queryset(self, request):
        # A row from an earlier month has not rolled over yet: it counts 0 this month.
        return (
            super()
            .get_queryset(request)
            .annotate(
                current_tokens=Case(
                    When(period_start__gte=usage.month_start(), then=F("tokens_this_period")),
                    default=Value(0),
                    output_field=BigIntegerField(),
                )
            )
        )

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "user") if obj else self.readonly_fields

    @admin.display(description="tokens this month", ordering="current_tokens")
    def tokens_this_month(self, obj: UserUsage) -> int:
        return obj.current_tokens

    @admin.display(description="quota in force")
    def quota_in_force(self, obj: UserUsage) -> str:
        quota = usage.effective_quota(obj.quota_override)
        source = "site default" if obj.quota_override is None else "own limit"
        return f"{quota:,} ({source})" if quota else f"unlimited ({source})"

    def save_model(self, request, obj, form, change) -> None:
        # Write the quota alone: saving the whole row would put back counters
        # read when the form was loaded and lose tokens charged since.
        saved = usage.usage_set_quota(user=obj.user, quota=obj.quota_override)
        obj.pk = saved.pk


@admin.register(UsageTransaction)
class UsageTransactionAdmin(admin.ModelAdmin):
    """What each run cost. Read-only: rows are written by the runs that finish."""

    list_display = (
        "created_at",
        "user",
        "companion_name",
        "run_status",
        "prompt_tokens",
        "completion_tokens",
        "total",
        "image_count",
    )
    list_filter = (
        ("user", admin.RelatedOnlyFieldListFilter),
        ("companion", admin.RelatedOnlyFieldListFilter),
        "run_status",
        "created_at",
    )
    date_hierarchy = "created_at"
    search_fields = ("user__username", "companion_name")
    list_select_related = ("user",)
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="tokens")
    def total(self, obj: UsageTransaction) -> int:
        return obj.total_tokens
