"""Forms of the lorebook pages: a book's settings, one entry, an import."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from lorebooks import formats
from lorebooks.models import Lorebook, LoreEntry

INHERIT_CHOICES = [
    ("", gettext_lazy("As the book says")),
    ("yes", gettext_lazy("Yes")),
    ("no", gettext_lazy("No")),
]


class LorebookForm(forms.ModelForm):
    class Meta:
        model = Lorebook
        fields = [
            "name",
            "description",
            "scan_depth",
            "token_budget",
            "recursion_depth",
            "case_sensitive",
            "match_whole_words",
        ]
        labels = {
            "name": gettext_lazy("Name"),
            "description": gettext_lazy("Description"),
            "scan_depth": gettext_lazy("Messages scanned"),
            "token_budget": gettext_lazy("Token budget"),
            "recursion_depth": gettext_lazy("Recursion depth"),
            "case_sensitive": gettext_lazy("Keys match case by default"),
            "match_whole_words": gettext_lazy("Keys match whole words by default"),
        }
        help_texts = {
            "scan_depth": gettext_lazy(
                "How many of the latest messages are searched for keys (0: constant entries only)."
            ),
            "token_budget": gettext_lazy(
                "The most tokens this book's entries may add to a prompt (0: the site's budget)."
            ),
            "recursion_depth": gettext_lazy(
                "How many times an entry's text may trigger further entries (0: never)."
            ),
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def clean_scan_depth(self) -> int:
        value = self.cleaned_data["scan_depth"]
        if value > formats.MAX_DEPTH:
            raise forms.ValidationError(_("At most %(limit)s messages."), params={"limit": formats.MAX_DEPTH})
        return value

    def clean_recursion_depth(self) -> int:
        value = self.cleaned_data["recursion_depth"]
        if value > 10:
            raise forms.ValidationError(_("At most %(limit)s passes."), params={"limit": 10})
        return value


def _tristate(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"


class KeysField(forms.CharField):
    """Keys, comma-separated or one a line (a ``/pattern/flags`` key may hold commas: one a line)."""

    widget = forms.Textarea(attrs={"rows": 2})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = (super().to_python(value) or "").strip()
        if "\n" in text:
            parts = text.splitlines()
        elif formats.regex_key(text):
            parts = [text]
        else:
            parts = text.split(",")
        return [part.strip() for part in parts if part.strip()]

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
        return value

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if len(value) > settings.LOREBOOK_MAX_KEYS:
            raise forms.ValidationError(
                _("At most %(limit)s keys."), code="too_many", params={"limit": settings.LOREBOOK_MAX_KEYS}
            )
        for key in value:
            if len(key) > settings.LOREBOOK_KEY_MAX_CHARS:
                raise forms.ValidationError(
                    _("A key may have at most %(limit)s characters."),
                    code="too_long",
                    params={"limit": settings.LOREBOOK_KEY_MAX_CHARS},
                )


def _check_patterns(keys: list[str], every_key: bool) -> None:
    for key in keys:
        parsed = formats.regex_key(key)
        if parsed is None and not every_key:
            continue
        pattern, flags = parsed if parsed else (key, "")
        try:
            formats.compile_regex_key(pattern, flags)
        except Exception as exc:  # re2.error: the pattern is refused, say why
            raise forms.ValidationError(
                _("The regular expression %(key)s cannot be used: %(reason)s"),
                code="bad_regex",
                params={"key": key[:80], "reason": str(exc)[:120]},
            ) from None


class LoreEntryForm(forms.ModelForm):
    keys = KeysField(
        label=gettext_lazy("Keys"),
        required=False,
        help_text=gettext_lazy(
            "Words that bring the entry in, one a line or separated by commas. Write /pattern/i for a"
            " regular expression."
        ),
    )
    secondary_keys = KeysField(
        label=gettext_lazy("Secondary keys"),
        required=False,
        help_text=gettext_lazy("Checked as the logic below says, once a key matched. Leave empty to ignore."),
    )
    case_sensitive = forms.ChoiceField(
        label=gettext_lazy("Match case"), choices=INHERIT_CHOICES, required=False
    )
    match_whole_words = forms.ChoiceField(
        label=gettext_lazy("Match whole words"), choices=INHERIT_CHOICES, required=False
    )

    class Meta:
        model = LoreEntry
        fields = list(LoreEntry.EDITABLE)
        labels = {
            "comment": gettext_lazy("Title"),
            "selective_logic": gettext_lazy("Secondary key logic"),
            "content": gettext_lazy("Content"),
            "constant": gettext_lazy("Always in (constant)"),
            "enabled": gettext_lazy("Enabled"),
            "order": gettext_lazy("Insertion order"),
            "position": gettext_lazy("Position"),
            "depth": gettext_lazy("Depth"),
            "probability": gettext_lazy("Probability (%)"),
            "use_regex": gettext_lazy("Every key is a regular expression"),
            "exclude_recursion": gettext_lazy("Other entries' text cannot trigger it"),
            "prevent_recursion": gettext_lazy("Its text triggers no other entry"),
        }
        help_texts = {
            "order": gettext_lazy("Higher goes later, nearer the chat, and is kept first when over budget."),
            "depth": gettext_lazy("For “in the chat”: this many messages from the end."),
        }
        widgets = {"content": forms.Textarea(attrs={"rows": 6})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        content = cast(forms.CharField, self.fields["content"])
        content.max_length = settings.LOREBOOK_ENTRY_MAX_CHARS
        content.validators.append(MaxLengthValidator(settings.LOREBOOK_ENTRY_MAX_CHARS))
        cast(forms.ChoiceField, self.fields["selective_logic"]).choices = [
            (LoreEntry.Logic.AND_ANY, _("and any secondary key")),
            (LoreEntry.Logic.AND_ALL, _("and all secondary keys")),
            (LoreEntry.Logic.NOT_ANY, _("and no secondary key")),
            (LoreEntry.Logic.NOT_ALL, _("and not all secondary keys")),
        ]
        cast(forms.ChoiceField, self.fields["position"]).choices = [
            (LoreEntry.Position.BEFORE_CHAR, _("Before the character")),
            (LoreEntry.Position.AFTER_CHAR, _("After the character")),
            (LoreEntry.Position.AT_DEPTH, _("In the chat, this many messages from the end")),
        ]
        if self.instance.pk and not self.is_bound:
            self.initial["case_sensitive"] = _tristate(self.instance.case_sensitive)
            self.initial["match_whole_words"] = _tristate(self.instance.match_whole_words)

    def clean_case_sensitive(self) -> bool | None:
        return {"yes": True, "no": False}.get(self.cleaned_data.get("case_sensitive") or "")

    def clean_match_whole_words(self) -> bool | None:
        return {"yes": True, "no": False}.get(self.cleaned_data.get("match_whole_words") or "")

    def clean_depth(self) -> int:
        value = self.cleaned_data["depth"]
        if value > formats.MAX_DEPTH:
            raise forms.ValidationError(_("At most %(limit)s messages."), params={"limit": formats.MAX_DEPTH})
        return value

    def clean_probability(self) -> int:
        value = self.cleaned_data["probability"]
        if value > 100:
            raise forms.ValidationError(_("A percentage: from 0 to 100."))
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        every = bool(data.get("use_regex"))
        for name in ("keys", "secondary_keys"):
            if name in data:
                try:
                    _check_patterns(data[name], every)
                except forms.ValidationError as exc:
                    self.add_error(name, exc)
        if not data.get("constant") and "keys" in data and not data["keys"]:
            self.add_error("keys", _("Give at least one key, or make the entry constant."))
        return data

    def values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class LorebookImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Lorebook file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    name = forms.CharField(label=gettext_lazy("Name (optional)"), max_length=200, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = _(
            "A SillyTavern World Info file (.json) or a character book; up to %(size)s MB."
        ) % {"size": f"{settings.LOREBOOK_IMPORT_MAX_BYTES / (1024 * 1024):g}"}


class LorebookChoiceForm(forms.Form):
    """Which of the owner's lorebooks apply (to a companion, or to a chat); only their own are choices,
    so another user's book id is refused as an invalid choice."""

    lorebooks = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Lorebooks"),
        queryset=Lorebook.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ModelMultipleChoiceField, self.fields["lorebooks"])
        field.queryset = Lorebook.objects.filter(owner=owner).order_by("name", "pk")
