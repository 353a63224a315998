"""Forms of the chat pages: a group (title, members — only your own companions —, replies per
turn) and a chat's title."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from chat.models import MAX_GROUP_COMPANIONS as MAX_COMPANIONS
from chat.models import MIN_GROUP_COMPANIONS as MIN_COMPANIONS
from chat.models import Conversation
from chat.summaries import SUMMARY_MAX_CHARS
from companions.models import Companion
from companions.selectors import companions_without_large_columns


class GroupForm(forms.ModelForm):
    companions = forms.ModelMultipleChoiceField(
        queryset=Companion.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("Companions"),
    )
    replies_per_turn = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_COMPANIONS,
        label=gettext_lazy("Replies per turn"),
        help_text=gettext_lazy("How many companions answer each message. Leave empty for all of them."),
    )

    class Meta:
        model = Conversation
        fields = ["title", "companions", "replies_per_turn"]

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["title"].required = True
        self.fields["title"].label = _("Title")
        # Set per form (the numbers are filled in, in the request's language).
        self.fields["companions"].help_text = _("Choose %(min)s to %(max)s of your companions.") % {
            "min": MIN_COMPANIONS,
            "max": MAX_COMPANIONS,
        }
        if self.instance.pk:
            self.initial["companions"] = [c.pk for c in self.instance.companions.all()]
        # Another user's companion is not a choice: posting its id is "not a valid choice".
        cast(forms.ModelMultipleChoiceField, self.fields["companions"]).queryset = (
            companions_without_large_columns().filter(owner=user).order_by("name", "pk")
        )

    def clean_companions(self) -> QuerySet[Companion]:
        companions = self.cleaned_data["companions"]
        if not MIN_COMPANIONS <= len(companions) <= MAX_COMPANIONS:
            raise forms.ValidationError(
                _("Choose %(min)s to %(max)s companions.") % {"min": MIN_COMPANIONS, "max": MAX_COMPANIONS}
            )
        return companions

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        replies, companions = cleaned.get("replies_per_turn"), cleaned.get("companions")
        if replies is not None and companions is not None and replies > len(companions):
            self.add_error(
                "replies_per_turn",
                _("At most %(count)s: the number of companions in the group.") % {"count": len(companions)},
            )
        return cleaned


class RenameForm(forms.Form):
    title = forms.CharField(max_length=100, required=False, strip=True, label=gettext_lazy("Title"))


class SummaryForm(forms.Form):
    """The conversation's summary, as the user rewrites it; empty clears it."""

    summary = forms.CharField(
        max_length=SUMMARY_MAX_CHARS,
        required=False,
        strip=True,
        label=gettext_lazy("Summary of earlier messages"),
        widget=forms.Textarea(attrs={"rows": 6}),
        error_messages={
            "max_length": gettext_lazy(
                "The summary can be at most %(limit_value)d characters long (this one has %(show_value)d)."
            )
        },
    )


class ChatImportForm(forms.Form):
    """A chat file and the companion it is with. The companion is a plain id, looked up by the
    view as the user's own (another user's id is a 404, like everywhere else)."""

    file = forms.FileField(
        label=gettext_lazy("Chat file"),
        help_text=gettext_lazy("A SillyTavern chat (.jsonl) or a chat exported here as JSON."),
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.json,application/json,application/jsonl"}),
    )
    companion = forms.IntegerField(
        required=False,
        min_value=1,
        label=gettext_lazy("With"),
        help_text=gettext_lazy(
            "The companion the chat is with (a group export finds its companions by name)."
        ),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", _("Choose a companion"))] + [
            (c.pk, c.name)
            for c in companions_without_large_columns().filter(owner=user).order_by("name", "pk")
        ]
        self.fields["companion"].widget = forms.Select(choices=choices)


class WipeMemoryForm(forms.Form):
    clear_memories = forms.BooleanField(
        label=gettext_lazy("Forget the long-term memories too"),
        required=False,
        initial=False,
        help_text=gettext_lazy("Left unticked, the facts on the Memories page are kept."),
    )
