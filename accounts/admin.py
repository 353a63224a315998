"""Accounts in the admin: who may change whom is decided here (docs/security.md, admin roles).

Only superusers change superusers, staff and superuser flags, groups and
permissions, or another user's password: otherwise anyone allowed to change
users could make themself superuser. Moderators deactivate with an action of
its own permission and never need ``change_user``. Deleting an account, by
the action or the delete page, goes through ``services.user_delete`` like
the owner's own deletion: every row and file goes, sessions and sockets end.

A user's page links to their conversations, messages and runs, with counts,
for those who may view them: the chat's lists filtered by owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import ActionLocation
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Case, Count, F, QuerySet, Value, When
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts import services, usage
from accounts.forms import AdminLoginForm
from accounts.models import RateLimitRecord, UsageTransaction, User, UserUsage

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# Fields that grant or take away access: a superuser's to set, shown read-only to anyone else.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


def users_deactivatable_by(actor: User, users: QuerySet[User]) -> QuerySet[User]:
    """The users ``actor`` may deactivate or delete: never themself, and superusers only by a superuser."""
    users = users.exclude(pk=actor.pk)
    return users if actor.is_superuser else users.exclude(is_superuser=True)


# What a user's page links to: (label, permission to view, changelist, owner lookup, what to count).
# By name: the chat app is a layer above this one.
CHAT_LISTS = (
    (
        _("Conversations"),
        "chat.view_conversation",
        "admin:chat_conversation_changelist",
        "owner__id__exact",
        None,
    ),
    (
        _("Messages"),
        "chat.view_message",
        "admin:chat_message_changelist",
        "conversation__owner__id__exact",
        "messages",
    ),
    (
        _("Pipeline runs"),
        "chat.view_pipelinerun",
        "admin:chat_pipelinerun_changelist",
        "conversation__owner__id__exact",
        "runs",
    ),
)


def user_chat_links(viewer: User, user: User) -> list[tuple[str, int, str]]:
    """(label, count, URL) of each list of ``user``'s chats that ``viewer`` may open.

    Counted through the conversations (a message or run is of its conversation's
    owner), the same rows the filtered list shows, groups and one-to-one alike.
    """
    links = []
    for label, permission, url_name, lookup, rows in CHAT_LISTS:
        if not viewer.has_perm(permission):
            continue
        conversations = user.conversations.all()
        count = conversations.count() if rows is None else conversations.aggregate(n=Count(rows))["n"]
        links.append((str(label), count, f"{reverse(url_name)}?{lookup}={user.pk}"))
    return links


# The admin's sign-in counts against the same limits and lockout as the site's.
admin.site.login_form = AdminLoginForm


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "display_name", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined")
    search_fields = ("username", "email", "display_name")
    ordering = ("-date_joined",)
    actions = ("deactivate", "delete_accounts")
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

    def has_deactivate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.deactivate_user")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Shown beside "History" (templates/admin/accounts/user/change_form.html).
        if obj is not None:
            context["chat_links"] = user_chat_links(request.user, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # A superuser's account is a superuser's business: for anyone else the
        # page is read-only, a POST is 403, and so is its password page.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Also refuses bulk deletion: delete_selected asks this for every row.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return readonly
        readonly += PRIVILEGE_FIELDS
        # "Active" is deactivation by another door: it needs the same permission,
        # and nobody locks themself out by a stray click.
        if obj is not None and (obj.pk == request.user.pk or not self.has_deactivate_permission(request)):
            readonly += ("is_active",)
        return readonly

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""):
        # Setting someone else's password is taking over their account.
        if not request.user.is_superuser and str(id) != str(request.user.pk):
            raise PermissionDenied
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # the new password was saved
            # Set here, a password is one someone else may have known: the API
            # tokens it let them make end with it, as on the profile page (which
            # offers to keep them; this form does not).
            services.user_password_changed(user=User.objects.get(pk=id))
        return response

    @admin.action(
        description="Deactivate: end sessions, revoke API tokens, close websockets",
        permissions=("deactivate",),
    )
    def deactivate(self, request, queryset) -> None:
        targets = list(users_deactivatable_by(request.user, queryset))
        skipped = queryset.count() - len(targets)
        for user in targets:
            services.user_deactivate(user=user)
        if targets:
            self.message_user(
                request, f"Deactivated {len(targets)}; their sessions, tokens and open sockets are closed."
            )
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped}: yourself, or superusers (only a superuser deactivates those).",
                messages.WARNING,
            )

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            services.user_deactivate(user=obj)  # unticking "active" must end what is already open

    def get_actions(self, request: HttpRequest, action_location: ActionLocation = ActionLocation.CHANGE_LIST):
        # Django's bulk delete would list every row of every account on its page and skip
        # the service; ``delete_accounts`` replaces it.
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Delete selected accounts and all their data", permissions=("delete",))
    def delete_accounts(self, request, queryset) -> TemplateResponse | None:
        deletable = users_deactivatable_by(request.user, queryset)
        targets = list(deletable)
        skipped = queryset.count() - len(targets)
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Delete accounts and all their data?",
                "targets": targets,
                "skipped": skipped,
                "opts": self.opts,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            }
            return TemplateResponse(request, "admin/accounts/user/delete_accounts.html", context)
        self.log_deletions(request, deletable)
        for user in targets:
            services.user_delete(user=user)
        if targets:
            self.message_user(request, f"Deleted {len(targets)} account(s) with all their data.")
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped}: yourself, or superusers (only a superuser deletes those).",
                messages.WARNING,
            )
        return None

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        services.user_delete(user=obj)  # the delete page: sessions and sockets end too

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.user_delete(user=user)

    def get_deleted_objects(self, objs, request: HttpRequest):
        # An account's data goes with it: ``delete_user`` is the permission for all of it,
        # so the rows that go along need no delete permission of their own. The accounts
        # themselves are still checked (a superuser's only by a superuser).
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        refused = {self.opts.verbose_name for obj in objs if not self.has_delete_permission(request, obj)}
        return deleted, counts, refused, protected


@admin.register(RateLimitRecord)
class RateLimitRecordAdmin(admin.ModelAdmin):
    list_display = ("scope", "key", "hits", "reset_at", "first_limited_at", "last_limited_at")
    list_filter = ("scope",)
    search_fields = ("key",)
    readonly_fields = ("scope", "key", "hits", "reset_at", "first_limited_at", "last_limited_at")
    actions = ("clear",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_lift_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.lift_ratelimit")

    @admin.action(description="Lift these limits now", permissions=("lift",))
    def clear(self, request, queryset) -> None:
        for record in queryset:
            services.rate_limit_clear(record=record)
        self.message_user(request, "Limits lifted.")


class MonthTokens(TypedDict):
    current_tokens: int  # annotated by UserUsageAdmin.get_queryset


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
    def tokens_this_month(self, obj: WithAnnotations[UserUsage, MonthTokens]) -> int:
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
        "served_by",
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
        "served_by",
        "created_at",
    )
    date_hierarchy = "created_at"
    search_fields = ("user__username", "companion_name", "served_by")
    list_select_related = ("user",)
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="tokens")
    def total(self, obj: UsageTransaction) -> int:
        return obj.total_tokens


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """A group's permissions are granted to its members: only superusers add, change or delete groups.

    Otherwise a moderator holding ``change_group`` could add any permission to
    the Moderators group, their own.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser
