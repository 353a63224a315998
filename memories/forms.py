"""The Memories page's forms: every limit says what is wrong in words the user can act on."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from companionhub.text import validate_storable_text
from memories.models import MEMORY_MAX_CHARS

SEARCH_MAX_CHARS = 200


class MemoryForm(forms.Form):
    text = forms.CharField(
        label=_("Memory"),
        max_length=MEMORY_MAX_CHARS,
        validators=[validate_storable_text],
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": MEMORY_MAX_CHARS}),
        help_text=_("One fact, in a sentence or two: “My sister is called Mara.”"),
        error_messages={
            "required": _("Write what the companion should remember."),
            "max_length": _(
                "A memory can be at most %(limit_value)d characters long (this one has %(show_value)d)."
            ),
        },
    )


class MemoryAddForm(MemoryForm):
    pinned = forms.BooleanField(
        label=_("Pin it (always in the companion's mind)"), required=False, initial=False
    )


class MemorySearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search memories"),
        required=False,
        max_length=SEARCH_MAX_CHARS,
        validators=[validate_storable_text],
        error_messages={"max_length": _("Search for at most %(limit_value)d characters.")},
    )


class PinForm(forms.Form):
    pinned = forms.BooleanField(required=False)
