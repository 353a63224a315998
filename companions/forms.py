"""Forms of the creation wizard (one per step) and of the settings page.

Every choice comes from ``companions.catalogue``; the widgets render as
cards/chips in the templates, and validation accepts only catalogue values.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from companions import catalogue
from companions.config import DEFAULTS, IMAGE_MODES, MAX_REPLY_TOKENS_LIMITS, TEMPERATURE_LIMITS
from companions.models import Companion


class MultiChoiceField(forms.MultipleChoiceField):
    """A several-choice catalogue field with a minimum and maximum number of picks."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, catalogue_field: str, **kwargs: Any) -> None:
        options, self.min_picks, self.max_picks = catalogue.MULTI_CHOICE[catalogue_field]
        kwargs.setdefault("required", self.min_picks > 0)
        super().__init__(choices=[(o.value, o.label) for o in options], **kwargs)

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) < self.min_picks:
            raise forms.ValidationError(f"Pick at least {self.min_picks}.", code="too_few")
        if len(value) > self.max_picks:
            raise forms.ValidationError(f"Pick at most {self.max_picks}.", code="too_many")


RADIO_FIELDS = [field for field in catalogue.SINGLE_CHOICE if field not in ("occupation", "relationship")]


class CatalogueForm(forms.ModelForm):
    """Single choices as radio cards; several choices as checkbox chips."""

    multi_fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name in RADIO_FIELDS and isinstance(field, forms.ChoiceField):
                # The catalogue's options as radio cards, without the blank choice of a select
                # (setting a field's choices sets its widget's too).
                field.widget = forms.RadioSelect()
                field.choices = catalogue.choices(name)
        for name in self.multi_fields:
            if name in self.fields:
                self.fields[name] = MultiChoiceField(name, label=self.fields[name].label)


class StyleStep(CatalogueForm):
    class Meta:
        model = Companion
        fields = ("style", "gender")


class LookStep(CatalogueForm):
    class Meta:
        model = Companion
        fields = ("age", "ethnicity", "skin_tone", "hair_color", "hair_style", "eye_color")
        widgets = {"age": forms.NumberInput(attrs={"min": catalogue.MIN_AGE, "max": catalogue.MAX_AGE})}


class BodyStep(CatalogueForm):
    class Meta:
        model = Companion
        fields = ("body_type", "height", "chest", "distinguishing_features")
        labels = {"chest": "Chest / breasts"}
        widgets = {
            "distinguishing_features": forms.TextInput(attrs={"placeholder": "freckles, a small scar…"})
        }


class IdentityStep(CatalogueForm):
    multi_fields = ("personality_traits", "hobbies")

    class Meta:
        model = Companion
        fields = (
            "name",
            "personality_traits",
            "hobbies",
            "occupation",
            "relationship",
            "backstory",
            "greeting",
            "visual_prompt",
            "system_prompt",
        )
        widgets = {
            "backstory": forms.Textarea(attrs={"rows": 4}),
            "greeting": forms.Textarea(attrs={"rows": 2}),
            "visual_prompt": forms.Textarea(attrs={"rows": 2}),
            "system_prompt": forms.Textarea(attrs={"rows": 4}),
        }


class HeaderImageForm(forms.Form):
    header_image = forms.FileField(
        required=False,
        label="Picture",
        help_text="JPEG, PNG, WebP or GIF, up to 10 MB. Cropped to a square.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}),
    )


# Files one import request may carry (their bytes together are capped by the upload limit).
CARD_IMPORT_MAX_FILES = 20


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented pattern); cleans to a list."""

    def __init__(self, *args: Any, max_files: int, **kwargs: Any) -> None:
        self.max_files = max_files
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        items = list(data) if isinstance(data, (list, tuple)) else [data]
        if not items:
            items = [None]  # nothing chosen: the usual "This field is required"
        if len(items) > self.max_files:
            raise forms.ValidationError(
                f"Choose at most {self.max_files} files at once.", code="too_many_files"
            )
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class CardImportForm(forms.Form):
    card = MultipleFileField(
        label="Character cards",
        max_files=CARD_IMPORT_MAX_FILES,
        help_text=(
            "PNG character cards, cards' JSON files (Character Card V1, V2 or V3) or CHARX files;"
            f" up to {CARD_IMPORT_MAX_FILES} at once, 10 MB in all."
        ),
        widget=MultipleFileInput(
            attrs={"accept": ".png,.json,.charx,image/png,application/json,application/zip"}
        ),
    )


# The wizard: step number -> (slug, title, form class or None for Finish)
WIZARD_STEPS: list[tuple[str, str, type[forms.ModelForm] | None]] = [
    ("style", "Style", StyleStep),
    ("look", "Look", LookStep),
    ("body", "Body", BodyStep),
    ("identity", "Identity", IdentityStep),
    ("finish", "Finish", None),
]
DATA_STEPS = [form for _, _, form in WIZARD_STEPS if form is not None]


class ConfigForm(forms.Form):
    temperature = forms.FloatField(
        min_value=TEMPERATURE_LIMITS[0],
        max_value=TEMPERATURE_LIMITS[1],
        initial=DEFAULTS["temperature"],
        help_text="Higher is more surprising, lower is more predictable (0 to 2).",
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    max_reply_tokens = forms.IntegerField(
        label="Maximum reply length (tokens)",
        min_value=MAX_REPLY_TOKENS_LIMITS[0],
        max_value=MAX_REPLY_TOKENS_LIMITS[1],
        initial=DEFAULTS["max_reply_tokens"],
    )
    image_mode = forms.ChoiceField(label="Pictures", choices=IMAGE_MODES, widget=forms.RadioSelect)


# Shown in the settings page's "Picture" card rather than with the wizard's fields.
PICTURE_FIELDS = ("image_seed", "use_header_as_reference")


class CompanionSettingsForm(CatalogueForm):
    """Everything from the wizard on one page, and how the companion's pictures are kept alike."""

    multi_fields = ("personality_traits", "hobbies")

    class Meta:
        model = Companion
        fields = (
            *(
                name
                for form in DATA_STEPS
                for name in form._meta.fields  # type: ignore[union-attr]
            ),
            "reply_language",
            *PICTURE_FIELDS,
        )
        widgets = {
            **LookStep.Meta.widgets,
            **BodyStep.Meta.widgets,
            **IdentityStep.Meta.widgets,
        }
        labels = BodyStep.Meta.labels

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Blank keeps the current seed: a page saved from before the field existed changes nothing.
        self.fields["image_seed"].required = False
        self.fields["image_seed"].label = "Picture seed"
        # Blank is a real choice (follow the owner's language), not "pick one".
        reply_language = cast(forms.ChoiceField, self.fields["reply_language"])
        reply_language.choices = [("", _("Your language")), *settings.LANGUAGES]

    def clean_image_seed(self) -> int:
        seed = self.cleaned_data.get("image_seed")
        return self.instance.image_seed if seed is None else seed

    def companion_fields(self) -> list:
        return [field for field in self if field.name not in PICTURE_FIELDS]

    def picture_fields(self) -> list:
        return [self[name] for name in PICTURE_FIELDS]
