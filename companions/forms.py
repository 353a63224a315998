"""Forms of the creation wizard (one per step) and of the settings page.

Every choice comes from ``companions.catalogue``; the widgets render as
cards/chips in the templates, and validation accepts only catalogue values.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from companions import catalogue
from companions.card_forms import CardTextField, add_limit_help
from companions.config import (
    DEFAULTS,
    IMAGE_MODES,
    MAX_REPLY_TOKENS_LIMITS,
    TEMPERATURE_LIMITS,
    VOICE_SPEED_LIMITS,
)
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
            raise forms.ValidationError(
                _("Pick at least %(count)s."), code="too_few", params={"count": self.min_picks}
            )
        if len(value) > self.max_picks:
            raise forms.ValidationError(
                _("Pick at most %(count)s."), code="too_many", params={"count": self.max_picks}
            )


# The companion's fields as the forms name them (the model's verbose names stay English: the
# admin's, and changing them would need a migration).
LABELS = {
    "name": gettext_lazy("Name"),
    "style": gettext_lazy("Style"),
    "gender": gettext_lazy("Gender"),
    "age": gettext_lazy("Age"),
    "ethnicity": gettext_lazy("Ethnicity"),
    "skin_tone": gettext_lazy("Skin tone"),
    "hair_color": gettext_lazy("Hair colour"),
    "hair_style": gettext_lazy("Hair style"),
    "eye_color": gettext_lazy("Eye colour"),
    "body_type": gettext_lazy("Body type"),
    "height": gettext_lazy("Height"),
    "chest": gettext_lazy("Chest / breasts"),
    "distinguishing_features": gettext_lazy("Distinguishing features"),
    "personality_traits": gettext_lazy("Personality traits"),
    "hobbies": gettext_lazy("Hobbies"),
    "occupation": gettext_lazy("Occupation"),
    "relationship": gettext_lazy("Relationship"),
    "backstory": gettext_lazy("Backstory"),
    "greeting": gettext_lazy("Greeting"),
    "visual_prompt": gettext_lazy("Visual prompt"),
    "system_prompt": gettext_lazy("System prompt"),
    "image_seed": gettext_lazy("Picture seed"),
    "reply_language": gettext_lazy("Reply language"),
    "use_header_as_reference": gettext_lazy("Use header picture as reference"),
}
HELP_TEXTS = {
    "visual_prompt": gettext_lazy("Extra words for image prompts."),
    "system_prompt": gettext_lazy("Custom instructions for the LLM."),
    "image_seed": gettext_lazy("The same seed keeps pictures alike. Change it, or re-roll, for a new look."),
    "use_header_as_reference": gettext_lazy(
        "Paint every picture from the header picture, so the face and style stay the same."
    ),
}

SELECT_PROMPT = gettext_lazy("- Select an option -")
RADIO_FIELDS = [field for field in catalogue.SINGLE_CHOICE if field not in ("occupation", "relationship")]


class CatalogueForm(forms.ModelForm):
    """Single choices as radio cards; several choices as checkbox chips; labels in the user's language."""

    multi_fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name in RADIO_FIELDS and isinstance(field, forms.ChoiceField):
                # The catalogue's options as radio cards, without the blank choice of a select
                # (setting a field's choices sets its widget's too).
                field.widget = forms.RadioSelect()
                field.choices = catalogue.choices(name)
            elif name in catalogue.SINGLE_CHOICE and isinstance(field, forms.ChoiceField):
                # A select keeps its blank choice, with a label of ours: Django's own
                # catalogues have no German or Spanish words for its "- Select an option -".
                field.choices = [("", SELECT_PROMPT), *catalogue.choices(name)]
        for name in self.multi_fields:
            if name in self.fields:
                self.fields[name] = MultiChoiceField(name, label=self.fields[name].label)
        self._ask_for_gender()

    def _gender(self) -> str:
        """The gender the answers are for: as posted with this form, else the draft's (a wizard
        step after the gender's) or the companion's."""
        if "gender" in self.fields and self.is_bound:
            return str(self.data.get(self.add_prefix("gender")) or "")
        return str(self.initial.get("gender") or self.instance.gender or "")

    def _ask_for_gender(self) -> None:
        """Body questions that make no sense for the gender (``catalogue.NOT_ASKED_FOR``): a
        wizard step leaves them out; a form with the gender on it (settings) does not require
        them and marks them for the page's script to hide while such a gender is chosen."""
        gender = self._gender()
        for name, genders in catalogue.NOT_ASKED_FOR.items():
            if name not in self.fields:
                continue
            if "gender" not in self.fields:
                if not catalogue.asks(name, gender):
                    del self.fields[name]
                continue
            self.fields[name].required = self.fields[name].required and catalogue.asks(name, gender)
            self.fields[name].widget.attrs["data-not-for"] = " ".join(sorted(genders))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        gender = str(cleaned.get("gender") or "") if "gender" in self.fields else self._gender()
        for name in catalogue.NOT_ASKED_FOR:
            if name in self.fields and not catalogue.asks(name, gender):
                cleaned[name] = ""  # an answer posted anyway is not kept
        return cleaned


class StyleStep(CatalogueForm):
    class Meta:
        model = Companion
        fields = ("style", "gender")
        labels = LABELS


class LookStep(CatalogueForm):
    class Meta:
        model = Companion
        fields = ("age", "ethnicity", "skin_tone", "hair_color", "hair_style", "eye_color")
        labels = LABELS
        widgets = {"age": forms.NumberInput(attrs={"min": catalogue.MIN_AGE, "max": catalogue.MAX_AGE})}


class BodyStep(CatalogueForm):
    class Meta:
        model = Companion
        fields = ("body_type", "height", "chest", "distinguishing_features")
        labels = LABELS
        widgets = {
            "distinguishing_features": forms.TextInput(
                attrs={"placeholder": gettext_lazy("freckles, a small scar…")}
            )
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
        labels = LABELS
        help_texts = HELP_TEXTS
        widgets = {
            "backstory": forms.Textarea(attrs={"rows": 4}),
            "greeting": forms.Textarea(attrs={"rows": 2}),
            "visual_prompt": forms.Textarea(attrs={"rows": 2}),
            "system_prompt": forms.Textarea(attrs={"rows": 4}),
        }


class HeaderImageForm(forms.Form):
    header_image = forms.FileField(
        required=False,
        label=gettext_lazy("Picture"),
        help_text=gettext_lazy("JPEG, PNG, WebP or GIF, up to 10 MB. Cropped to a square."),
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
                ngettext(
                    "Choose at most %(count)s file at once.",
                    "Choose at most %(count)s files at once.",
                    self.max_files,
                ),
                code="too_many_files",
                params={"count": self.max_files},
            )
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class CardImportForm(forms.Form):
    card = MultipleFileField(
        label=gettext_lazy("Character cards"),
        max_files=CARD_IMPORT_MAX_FILES,
        widget=MultipleFileInput(
            attrs={"accept": ".png,.json,.charx,image/png,application/json,application/zip"}
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built per form, in the request's language: a lazy string cannot take its number at import.
        self.fields["card"].help_text = _(
            "PNG character cards, cards' JSON files (Character Card V1, V2 or V3) or CHARX files;"
            " up to %(count)s at once, 10 MB in all."
        ) % {"count": CARD_IMPORT_MAX_FILES}


# The wizard: step number -> (slug, title, form class or None for Finish)
WIZARD_STEPS: list[tuple[str, Promise, type[forms.ModelForm] | None]] = [
    ("style", gettext_lazy("Style"), StyleStep),
    ("look", gettext_lazy("Look"), LookStep),
    ("body", gettext_lazy("Body"), BodyStep),
    ("identity", gettext_lazy("Identity"), IdentityStep),
    ("finish", gettext_lazy("Finish"), None),
]
DATA_STEPS = [form for _slug, _title, form in WIZARD_STEPS if form is not None]


class ConfigForm(forms.Form):
    temperature = forms.FloatField(
        label=gettext_lazy("Temperature"),
        min_value=TEMPERATURE_LIMITS[0],
        max_value=TEMPERATURE_LIMITS[1],
        initial=DEFAULTS["temperature"],
        help_text=gettext_lazy("Higher is more surprising, lower is more predictable (0 to 2)."),
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    max_reply_tokens = forms.IntegerField(
        label=gettext_lazy("Maximum reply length (tokens)"),
        min_value=MAX_REPLY_TOKENS_LIMITS[0],
        max_value=MAX_REPLY_TOKENS_LIMITS[1],
        initial=DEFAULTS["max_reply_tokens"],
    )
    image_mode = forms.ChoiceField(
        label=gettext_lazy("Pictures"), choices=IMAGE_MODES, widget=forms.RadioSelect
    )


# The voices offered while typing when the text-to-speech server lists none: OpenAI's names,
# which most servers of its API shape also take. Any name the server knows may be typed.
SUGGESTED_VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
VOICE_NAME_MAX_CHARS = 64
# Voice names are ids on the server: "nova", "af_bella", "en_US-lessac-medium", "af_sky+af_bella".
VOICE_NAME = RegexValidator(
    r"^[\w.:+-]+$", gettext_lazy("Use letters, digits and . _ - + : only, as the voice list writes them.")
)


class VoiceForm(forms.Form):
    """The companion's voice, kept in ``Companion.config`` beside the advanced settings.

    Its keys (``voice_enabled``, ``voice``, ``voice_speed``) are the ones
    ``companions.config`` reads back, defaults and clamping included.
    """

    voice_enabled = forms.BooleanField(
        label=gettext_lazy("Speak replies aloud"),
        required=False,
        help_text=gettext_lazy("Each sentence is spoken as soon as it is written."),
    )
    voice = forms.CharField(
        label=gettext_lazy("Voice"),
        required=False,
        max_length=VOICE_NAME_MAX_CHARS,
        validators=[VOICE_NAME],
        help_text=gettext_lazy("A voice of the speech server, e.g. nova. Empty: the server's default."),
        widget=forms.TextInput(attrs={"list": "voice-names", "autocomplete": "off", "spellcheck": "false"}),
    )
    voice_speed = forms.FloatField(
        label=gettext_lazy("Speed"),
        min_value=VOICE_SPEED_LIMITS[0],
        max_value=VOICE_SPEED_LIMITS[1],
        initial=1.0,
        required=False,  # empty (or a page from before the field): the speed stays as it is
        help_text=gettext_lazy("1 is normal; from 0.5 (slower) to 2 (faster)."),
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )

    def clean_voice(self) -> str:
        return self.cleaned_data["voice"].strip()

    def config(self) -> dict[str, Any]:
        """The values to store in the companion's config (an empty speed changes nothing)."""
        return {name: value for name, value in self.cleaned_data.items() if value is not None}


def voice_initial(config: dict[str, Any]) -> dict[str, Any]:
    """The form's starting values from a companion's effective config (defaults where unset)."""
    return {
        "voice_enabled": bool(config.get("voice_enabled", DEFAULTS["voice_enabled"])),
        "voice": config.get("voice") if isinstance(config.get("voice"), str) else "",
        "voice_speed": config.get("voice_speed", DEFAULTS["voice_speed"]),
    }


# Shown in the settings page's "Picture" card rather than with the wizard's fields.
PICTURE_FIELDS = ("image_seed", "use_header_as_reference")
# The settings page's sections (the ids are the page's anchors) and the companion fields each
# shows; a field named in none is shown in ``identity``. The card's other texts are
# ``CardFieldsForm``'s (``companions.card_forms.CARD_SECTIONS``).
SETTINGS_SECTIONS: dict[str, tuple[str, ...]] = {
    "identity": (),
    "personality": ("personality_traits", "hobbies", "backstory"),
    "greetings": ("greeting",),
    "examples": (),
    "prompts": ("system_prompt",),
    "notes": (),
    "model": ("reply_language",),
}
IDENTITY_FIRST = ("name", "occupation", "relationship")
# Columns that hold a card's text: edited as card text (line ends kept as cards keep them).
CARD_TEXT_COLUMNS = ("backstory", "greeting", "system_prompt")


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
        widgets: dict[str, forms.Widget] = {
            **LookStep.Meta.widgets,
            **BodyStep.Meta.widgets,
            **IdentityStep.Meta.widgets,
            "backstory": forms.Textarea(attrs={"rows": 10}),
            "greeting": forms.Textarea(attrs={"rows": 6}),
            "system_prompt": forms.Textarea(attrs={"rows": 6}),
        }
        field_classes = dict.fromkeys(CARD_TEXT_COLUMNS, CardTextField)
        labels = {
            **LABELS,
            "backstory": gettext_lazy("Description (backstory)"),
            "greeting": gettext_lazy("First message (greeting)"),
        }
        help_texts = {
            **HELP_TEXTS,
            "backstory": gettext_lazy("Who the character is: a card's description."),
            "greeting": gettext_lazy("The companion's first message in a new chat."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Blank keeps the current seed: a page saved from before the field existed changes nothing.
        self.fields["image_seed"].required = False
        # Blank is a real choice (follow the owner's language), not "pick one".
        reply_language = cast(forms.ChoiceField, self.fields["reply_language"])
        reply_language.choices = [("", _("Your language")), *settings.LANGUAGES]
        for name in CARD_TEXT_COLUMNS:
            if name in self.fields:
                add_limit_help(self.fields[name])

    def clean_image_seed(self) -> int:
        seed = self.cleaned_data.get("image_seed")
        return self.instance.image_seed if seed is None else seed

    def companion_fields(self) -> list:
        return [field for field in self if field.name not in PICTURE_FIELDS]

    def picture_fields(self) -> list:
        return [self[name] for name in PICTURE_FIELDS]

    def sections(self) -> dict[str, list]:
        """The companion's fields by settings section (``SETTINGS_SECTIONS``), in the form's order."""
        placed = {name for names in SETTINGS_SECTIONS.values() for name in names}
        shown = [field for field in self if field.name not in PICTURE_FIELDS]
        sections = {
            section: [field for field in shown if field.name in names]
            for section, names in SETTINGS_SECTIONS.items()
        }
        rest = [field for field in shown if field.name not in placed]
        # Who they are before how they look.
        sections["identity"] = sorted(rest, key=lambda field: field.name not in IDENTITY_FIRST)
        return sections
