"""The user model, custom from the first migration so it can grow."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

USERNAME_PATTERN = r"^[a-z0-9_]{3,20}$"
username_validator = RegexValidator(
    USERNAME_PATTERN,
    _("Use 3 to 20 characters: lowercase letters, digits and underscores."),
    code="invalid_username",
)


class CompanionHubUserManager(UserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        # Usernames are stored lowercase (User.save); admin and createsuperuser log in with any case.
        return self.get(username=(username or "").lower())


class User(AbstractUser):
    """A person with an account. Logs in by username or email, in any letter case."""

    username = models.CharField(
        _("username"),
        max_length=20,
        unique=True,
        validators=[username_validator],
        help_text=_("3 to 20 characters: lowercase letters, digits and underscores."),
        error_messages={"unique": _("That username is taken.")},
    )
    email = models.EmailField(_("email address"), max_length=254)
    display_name = models.CharField(
        _("display name"),
        max_length=50,
        blank=True,
        help_text=_("How your companions address you. Up to 50 characters."),
    )

    appearance = models.CharField(
        _("appearance"),
        max_length=300,
        blank=True,
        help_text=_("How you look, for pictures of scenes that include you (optional)."),
    )
    # Blank: follow the browser (the language cookie, then Accept-Language); see accounts.language.
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        choices=settings.LANGUAGES,
        help_text=_("The language of the site and, unless a companion is set otherwise, of its replies."),
    )

    class VoiceActions(models.TextChoices):
        SKIP = "skip", _("Skip them")
        READ = "read", _("Read them aloud")

    # Speak the replies of companions whose voice is on (each companion's setting decides
    # whether it has a voice; this is the listener's own switch).
    read_aloud = models.BooleanField(
        _("read replies aloud"),
        default=True,
        help_text=_("Companions with a voice speak their replies as they write them."),
    )
    # What is done with *actions* between asterisks when a reply is spoken.
    voice_actions = models.CharField(
        _("actions in spoken replies"), max_length=4, choices=VoiceActions.choices, default=VoiceActions.SKIP
    )

    objects: ClassVar[CompanionHubUserManager] = CompanionHubUserManager()

    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_unique",
                violation_error_message=_("An account with that email already exists."),
            ),
        ]
        # Deactivating is moderation; change_user would also hand out profile
        # edits, so it is a permission of its own (docs/security.md, admin roles).
        permissions = [("deactivate_user", "Can deactivate accounts")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Normalisation, not business logic: every path that stores a user
        # (forms, admin, createsuperuser, shell) must store the same form.
        self.username = self.username.lower()
        self.email = self.email.strip()
        super().save(*args, **kwargs)

    @property
    def name_for_companions(self) -> str:
        return self.display_name or self.username


class ApiToken(models.Model):
    """A personal token for websocket clients. Only its SHA-256 is stored; the secret is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=50)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_created")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class RateLimitRecord(models.Model):
    """A limit that was hit: who, which scope, how often, until when. For moderators."""

    scope = models.CharField(max_length=40)
    key = models.CharField(max_length=300, help_text="What the limit counts (user, address, account tried).")
    hits = models.PositiveIntegerField(default=0, help_text="Attempts counted in the window so far.")
    reset_at = models.DateTimeField(help_text="When the window ends and the limit lifts by itself.")
    first_limited_at = models.DateTimeField(auto_now_add=True)
    last_limited_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["reset_at"], name="ratelimit_reset_at")]
        constraints = [
            models.UniqueConstraint(fields=["scope", "key", "reset_at"], name="ratelimit_scope_key_window")
        ]
        ordering = ["-last_limited_at"]
        permissions = [("lift_ratelimit", "Can lift a rate limit before its window ends")]

    def __str__(self) -> str:
        return f"{self.scope}: {self.key}"


class UserUsage(models.Model):
    """One per user: tokens spent this calendar month (UTC) and ever, and an optional quota.

    ``tokens_this_period`` belongs to the month starting ``period_start``; a
    row whose ``period_start`` is an earlier month is rolled over lazily (on
    the next write or read), so no scheduled job is needed.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="usage")
    period_start = models.DateField(help_text="First day (UTC) of the month the period counter belongs to.")
    tokens_this_period = models.BigIntegerField(default=0)
    lifetime_tokens = models.BigIntegerField(default=0)
    images_this_period = models.PositiveIntegerField(default=0)
    lifetime_images = models.PositiveIntegerField(default=0)
    quota_override = models.PositiveBigIntegerField(
        "monthly token quota",
        null=True,
        blank=True,
        help_text=(
            "Leave empty to use the site default (USAGE_MONTHLY_TOKEN_QUOTA). "
            "0 = unlimited for this user; any other number is this user's own monthly limit."
        ),
    )

    class Meta:
        verbose_name = "usage"
        verbose_name_plural = "usage per user"

    def __str__(self) -> str:
        return f"usage of {self.user}"


class UsageTransaction(models.Model):
    """The tokens and pictures one finished run cost: written once per run, never changed."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="usage_transactions")
    companion = models.ForeignKey(
        "companions.Companion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    companion_name = models.CharField(max_length=50, blank=True, help_text="Kept when the companion goes.")
    run = models.ForeignKey(
        "chat.PipelineRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run_status = models.CharField(max_length=10, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    image_count = models.PositiveSmallIntegerField(default=0)
    # Which connection and model served the run ("<connection name> / <model>", or "demo"):
    # text, not a key to chat's rows -- accounts imports nothing of ours, and the record
    # must outlive a connection deleted later.
    served_by = models.CharField(max_length=200, blank=True)
    # Characters turned into speech ("voice" rows, one per spoken clip; 0 for any other row).
    speech_chars = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"], name="usage_user_created"),
            models.Index(fields=["created_at"], name="usage_created"),
        ]
        constraints = [
            # The second line of defence behind the run's guarded status update:
            # a run is charged at most once, whatever retries or re-deliveries do.
            models.UniqueConstraint(fields=["run"], name="usage_one_per_run"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user}: {self.total_tokens} tokens ({self.companion_name})"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
