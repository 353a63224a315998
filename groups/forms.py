"""The group form: title, members (only your own companions) and replies per turn."""

from __future__ import annotations

from django import forms

from companions.models import Companion
from companions.selectors import companions_without_large_columns
from groups.models import MAX_COMPANIONS, MIN_COMPANIONS, GroupChat


class GroupChatForm(forms.ModelForm):
    companions = forms.ModelMultipleChoiceField(
        queryset=Companion.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text=f"Choose {MIN_COMPANIONS} to {MAX_COMPANIONS} of your companions.",
    )
    replies_per_turn = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_COMPANIONS,
        help_text="How many companions answer each message. Leave empty for all of them.",
    )

    class Meta:
        model = GroupChat
        fields = ["title", "companions", "replies_per_turn"]

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Another user's companion is not a choice: posting its id is "not a valid choice".
        self.fields["companions"].queryset = (
            companions_without_large_columns().filter(owner=user).order_by("name", "pk")
        )

    def clean_companions(self):
        companions = self.cleaned_data["companions"]
        if not MIN_COMPANIONS <= len(companions) <= MAX_COMPANIONS:
            raise forms.ValidationError(f"Choose {MIN_COMPANIONS} to {MAX_COMPANIONS} companions.")
        return companions

    def clean(self):
        cleaned = super().clean()
        replies, companions = cleaned.get("replies_per_turn"), cleaned.get("companions")
        if replies is not None and companions is not None and replies > len(companions):
            self.add_error(
                "replies_per_turn", f"At most {len(companions)}: the number of companions in the group."
            )
        return cleaned
