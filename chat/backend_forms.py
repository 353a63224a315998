"""The forms of a companion's model page: its connection, model and preset; a preset import."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from chat.backend_models import Connection
from chat.connections import connections_for_choice, presets_for_user
from chat.presets import MAX_PRESET_BYTES


class CompanionBackendForm(forms.Form):
    llm_connection = forms.ModelChoiceField(
        queryset=Connection.objects.none(),
        required=False,
        empty_label=gettext_lazy("The site's default"),
        label=gettext_lazy("AI server"),
    )
    model = forms.CharField(
        required=False,
        max_length=200,
        label=gettext_lazy("Model"),
        help_text=gettext_lazy("Blank: the server's default model."),
        widget=forms.TextInput(attrs={"list": "model-names", "autocomplete": "off"}),
    )
    preset = forms.ModelChoiceField(
        queryset=Connection.objects.none(),
        required=False,
        empty_label=gettext_lazy("None: the companion's own temperature and reply length"),
        label=gettext_lazy("Sampler preset"),
    )
    image_connection = forms.ModelChoiceField(
        queryset=Connection.objects.none(),
        required=False,
        empty_label=gettext_lazy("The site's default"),
        label=gettext_lazy("Picture server"),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ``fields`` holds copies of the fields declared above: these three are model choices.
        llm, image, preset = (
            cast(forms.ModelChoiceField, self.fields[name])
            for name in ("llm_connection", "image_connection", "preset")
        )
        llm.queryset = connections_for_choice(Connection.Kind.LLM)
        image.queryset = connections_for_choice(Connection.Kind.IMAGE)
        preset.queryset = presets_for_user(user)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        connection, model = cleaned.get("llm_connection"), (cleaned.get("model") or "").strip()
        if model and connection is None:
            self.add_error("model", _("Choose an AI server first: the site's default uses its own model."))
        elif (
            model
            and connection is not None
            and connection.models_list
            and model not in connection.models_list
        ):
            self.add_error("model", _("%(name)s offers no model of that name.") % {"name": connection.name})
        cleaned["model"] = model
        return cleaned


class PresetUploadForm(forms.Form):
    name = forms.CharField(max_length=80, label=gettext_lazy("Preset name"))
    file = forms.FileField(
        required=False,
        label=gettext_lazy("File"),
        help_text=gettext_lazy("A SillyTavern chat-completion preset (.json)."),
    )
    text = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), label=gettext_lazy("…or paste its JSON")
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if not cleaned.get("file") and not cleaned.get("text"):
            raise forms.ValidationError(_("Choose a file or paste the preset's JSON."))
        return cleaned

    def raw(self) -> bytes | str:
        upload = self.cleaned_data.get("file")
        # At most one byte over the limit is read: enough for the size check to refuse it.
        return upload.read(MAX_PRESET_BYTES + 1) if upload else self.cleaned_data["text"]
