"""Companions: who they are, how they look, and where they are right now."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from companions import catalogue
from companions.config import config_problems
from companions.limits import CARD_TEXT_MAX_CHARS, NAME_MAX_CHARS

# Seeds every Stable Diffusion back end accepts (SD WebUI, Forge and ComfyUI all take 32 bits).
MAX_IMAGE_SEED = 2**32 - 1


def new_image_seed() -> int:
    return secrets.randbelow(MAX_IMAGE_SEED + 1)


class Companion(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="companions")
    name = models.CharField(max_length=NAME_MAX_CHARS)

    # Look
    style = models.CharField(max_length=20, choices=catalogue.choices("style"))
    gender = models.CharField(max_length=20, choices=catalogue.choices("gender"))
    age = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(catalogue.MIN_AGE), MaxValueValidator(catalogue.MAX_AGE)]
    )
    ethnicity = models.CharField(max_length=20, choices=catalogue.choices("ethnicity"))
    hair_color = models.CharField(max_length=20, choices=catalogue.choices("hair_color"))
    hair_style = models.CharField(max_length=20, choices=catalogue.choices("hair_style"))
    eye_color = models.CharField(max_length=20, choices=catalogue.choices("eye_color"))
    skin_tone = models.CharField(max_length=20, choices=catalogue.choices("skin_tone"))

    # Body
    body_type = models.CharField(max_length=20, choices=catalogue.choices("body_type"))
    height = models.CharField(max_length=20, choices=catalogue.choices("height"))
    chest = models.CharField(max_length=20, choices=catalogue.choices("chest"))
    distinguishing_features = models.CharField(max_length=300, blank=True)

    # Identity
    personality_traits = models.JSONField(default=list)
    hobbies = models.JSONField(default=list, blank=True)
    occupation = models.CharField(max_length=20, choices=catalogue.choices("occupation"))
    relationship = models.CharField(max_length=20, choices=catalogue.choices("relationship"))
    # A card's ``description`` and ``first_mes``; their limits are the card's (``companions.limits``).
    backstory = models.TextField(max_length=CARD_TEXT_MAX_CHARS["description"], blank=True)
    greeting = models.TextField(max_length=CARD_TEXT_MAX_CHARS["first_mes"], blank=True)
    visual_prompt = models.TextField(max_length=500, blank=True, help_text="Extra words for image prompts.")
    system_prompt = models.TextField(
        max_length=CARD_TEXT_MAX_CHARS["system_prompt"],
        blank=True,
        help_text="Custom instructions for the LLM.",
    )

    # Blank: the owner's language (accounts.language.user_language); chat.prompts states it.
    reply_language = models.CharField(
        _("reply language"),
        max_length=10,
        blank=True,
        choices=settings.LANGUAGES,
        help_text=_("The language this companion writes in. Left on “Your language”, it follows yours."),
    )

    header_image = models.ForeignKey(
        "media.StoredImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Pictures of one companion share a face and style: one fixed seed for all of them, and
    # (when chosen) the header picture as the reference they are painted from.
    image_seed = models.PositiveBigIntegerField(
        default=new_image_seed,
        validators=[MaxValueValidator(MAX_IMAGE_SEED)],
        help_text="The same seed keeps pictures alike. Change it, or re-roll, for a new look.",
    )
    use_header_as_reference = models.BooleanField(
        "Use header picture as reference",
        default=False,
        help_text="Paint every picture from the header picture, so the face and style stay the same.",
    )
    # Base64 pictures from the old product, kept only until `manage.py migrate_images` moves them.
    header_image_legacy = models.TextField(blank=True, default="")

    # Dynamic state, changed by each chat turn.
    current_outfit = models.CharField(max_length=200, default=catalogue.DEFAULT_STATE["current_outfit"])
    current_location = models.CharField(max_length=200, default=catalogue.DEFAULT_STATE["current_location"])
    current_action = models.CharField(max_length=200, default=catalogue.DEFAULT_STATE["current_action"])

    # Lorebooks that apply to this companion's replies in every chat, and the one its card
    # carried (``character_book``), given back when the card is exported.
    lorebooks = models.ManyToManyField("lorebooks.Lorebook", blank=True, related_name="companions")
    card_book = models.ForeignKey(
        "lorebooks.Lorebook", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    tokens_burned = models.BigIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    config = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "-created_at"], name="companion_owner_created")]
        ordering = ["-created_at"]
        # Moderation actions in the admin; change_companion would also let the
        # holder edit fields (even the owner), which moderation does not need.
        permissions = [
            ("wipe_companion_memory", "Can wipe a companion's memory"),
            ("remove_companion_header", "Can remove a companion's header picture"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The admin edits ``config`` as raw JSON: say what is wrong rather than store it."""
        super().clean()
        if problems := config_problems(self.config):
            raise ValidationError({"config": problems})

    @property
    def state(self) -> dict[str, str]:
        return {
            "outfit": self.current_outfit,
            "location": self.current_location,
            "action": self.current_action,
        }


class CompanionDraft(models.Model):
    """The creation wizard's work in progress, one per user.

    Kept in the database rather than the session so a reload or a second tab
    sees the same draft, and so Finish can claim it exactly once.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="companion_draft"
    )
    data = models.JSONField(default=dict)
    step = models.PositiveSmallIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Draft of {self.owner_id}"
