"""The search page's form: the words and the filters, every id one of the user's own."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from chat.search import MAX_OFFSET, MAX_QUERY_CHARS, PAGE_SIZE, Author
from chat.selectors import conversations_for_user
from companions.selectors import companions_without_large_columns

MAX_PAGE = MAX_OFFSET // PAGE_SIZE + 1
# Fields naming a row: a value that is not one of the user's own rows is a 404, not a form error.
ID_FIELDS = ("companion", "conversation", "author")


class ConversationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        if obj.title:
            return str(obj.title)
        return ", ".join(member.name for member in obj.members) or str(obj)


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Search"), max_length=MAX_QUERY_CHARS, required=False, strip=True)
    companion: forms.ModelChoiceField = forms.ModelChoiceField(
        label=_("Companion"), queryset=None, required=False, empty_label=_("All companions")
    )
    conversation = ConversationChoiceField(
        label=_("Conversation"), queryset=None, required=False, empty_label=_("All conversations")
    )
    author = forms.ChoiceField(label=_("Written by"), required=False)
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    page = forms.IntegerField(min_value=1, max_value=MAX_PAGE, required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        companions = companions_without_large_columns().filter(owner=user).order_by("name", "pk")
        self.fields["companion"].queryset = companions  # type: ignore[attr-defined]
        self.fields["conversation"].queryset = conversations_for_user(user)  # type: ignore[attr-defined]
        self.fields["author"].choices = [  # type: ignore[attr-defined]
            ("", _("Anyone")),
            ("me", _("Me")),
            ("companions", _("My companions")),
            *((f"c{companion.pk}", companion.name) for companion in companions),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", _("The end date is before the start date."))
        return data

    def names_foreign_ids(self) -> bool:
        """True when a filter names a row that is not one of the user's own (or none at all)."""
        return any(
            error.code == "invalid_choice"
            for name in ID_FIELDS
            for error in self.errors.as_data().get(name, [])
        )

    def search_args(self) -> dict[str, Any]:
        """``message_search``'s keyword arguments from the cleaned form (dates in the user's
        time zone, ``until`` through the end of its day)."""
        data = self.cleaned_data
        author: Author | None = None
        if data["author"] in ("me", "companions"):
            author = data["author"]
        elif data["author"]:
            author = int(data["author"][1:])
        page = data.get("page") or 1
        return {
            "query": data["q"],
            "companion_id": data["companion"].pk if data["companion"] else None,
            "conversation_id": data["conversation"].pk if data["conversation"] else None,
            "author": author,
            "since": _day_start(data["since"]) if data["since"] else None,
            "until": _day_start(data["until"] + datetime.timedelta(days=1)) if data["until"] else None,
            "limit": PAGE_SIZE,
            "offset": (page - 1) * PAGE_SIZE,
        }


def _day_start(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
