"""Admin for back-end connections and sampler presets.

Connections: superusers manage them; moderators see them (docs/security.md,
"Admin roles"). The API key is written through a password input that never
renders a value; blank keeps the stored key, a checkbox removes it. Nothing
on these pages shows the key, not even to superusers: it is stored encrypted
and used only to call the server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from chat.backend_forms import PresetUploadForm
from chat.backend_models import Connection, SamplerPreset
from chat.backends import REGISTRY, breaker_for
from chat.backends.protocols import SAMPLER_FIELDS
from chat.backends.registry import BackendUnavailable, provider_choices
from chat.comfyui import WorkflowError, validate_workflow
from chat.connections import ConnectionProblem, connection_fetch_models, connection_health, connection_save
from chat.presets import PresetInvalid, preset_import_sillytavern, preset_problems

MAX_KEY_CHARS = 500


class ConnectionForm(forms.ModelForm):
    new_api_key = forms.CharField(
        label="API key",
        required=False,
        max_length=MAX_KEY_CHARS,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(label="Remove the stored API key", required=False)
    provider = forms.ChoiceField(choices=provider_choices())

    class Meta:
        model = Connection
        fields = [
            "name",
            "kind",
            "provider",
            "base_url",
            "default_model",
            "embedding_model",
            "context_length",
            "connect_timeout",
            "read_timeout",
            "workflow",
            "enabled",
            "is_default",
        ]

    def clean_base_url(self) -> str:
        value = self.cleaned_data["base_url"].strip()
        if value:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise forms.ValidationError("Enter an http:// or https:// address.")
            if parsed.username or parsed.password or parsed.query or parsed.fragment:
                # The address is shown in lists and health reports; the key field never is.
                raise forms.ValidationError(
                    "Enter the address alone (no user, password or ?query): the key has its own field."
                )
        return value

    def clean_workflow(self) -> dict[str, Any]:
        value = self.cleaned_data.get("workflow")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("A workflow is a JSON object (ComfyUI's API format), or empty.")
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        kind, provider = cleaned.get("kind"), cleaned.get("provider")
        if kind and provider and provider not in REGISTRY.get(kind, {}):
            names = ", ".join(sorted(REGISTRY.get(kind, {}))) or "none yet"
            self.add_error("provider", f"{provider} is not a provider of this kind (choose from: {names}).")
        moved = {"base_url", "provider"} & set(self.changed_data)
        key_given = cleaned.get("new_api_key") or cleaned.get("clear_api_key")
        if self.instance.pk and self.instance.api_key_sealed and moved and not key_given:
            # The stored key was given for the old server; it is never sent to a new one unasked.
            self.add_error(
                "new_api_key",
                "The address or provider changed: enter the API key for the new server, "
                "or tick the box to remove the key.",
            )
        workflow = cleaned.get("workflow")
        if provider == "comfyui" and workflow:  # a broken graph is refused here, not at the first picture
            try:
                validate_workflow(workflow)
            except WorkflowError as exc:
                self.add_error("workflow", exc.message)
        return cleaned


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = (
        "name",
        "kind",
        "provider",
        "base_url",
        "default_model",
        "enabled",
        "is_default",
        "from_env",
        "health",
        "breaker",
    )
    list_filter = ("kind", "provider", "enabled")
    search_fields = ("name", "base_url", "default_model")
    # What the site and the server wrote, shown and never edited.
    from_the_server = (
        "from_env",
        "models_list",
        "models_fetched_at",
        "last_probe_ok",
        "last_probe_at",
        "last_probe_error",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("api_key_status", *from_the_server)
    actions = ("fetch_models",)

    def get_fieldsets(self, request: HttpRequest, obj: Connection | None = None):
        key = ["api_key_status"]
        if self.has_change_permission(request, obj) or (obj is None and self.has_add_permission(request)):
            key += ["new_api_key", "clear_api_key"]
        return [
            (
                None,
                {
                    "fields": [
                        "name",
                        "kind",
                        "provider",
                        "base_url",
                        "default_model",
                        "embedding_model",
                        "enabled",
                        "is_default",
                    ]
                },
            ),
            ("API key", {"fields": key}),
            ("Limits", {"fields": ["context_length", "connect_timeout", "read_timeout"]}),
            ("ComfyUI", {"fields": ["workflow"], "classes": ["collapse"]}),
            ("From the server", {"fields": list(self.from_the_server)}),
        ]

    @admin.display(description="API key")
    def api_key_status(self, obj: Connection) -> str:
        return "stored (encrypted)" if obj.has_api_key else "none"

    @admin.display(description="health")
    def health(self, obj: Connection) -> str:
        return connection_health(obj)

    @admin.display(description="circuit breaker")
    def breaker(self, obj: Connection) -> str:
        state = breaker_for(obj, obj.kind).status()
        return state.state if state.state != "open" else f"open (retry in {state.retry_in} s)"

    # A connection decides where every conversation, and its API key, is sent: only
    # superusers add, change or delete one, whatever permissions a role holds.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Connection, form: ConnectionForm, change: bool) -> None:
        connection_save(
            connection=obj,
            api_key=form.cleaned_data.get("new_api_key", ""),
            clear_api_key=bool(form.cleaned_data.get("clear_api_key")),
        )

    def has_fetch_models_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("chat.fetch_connection_models")

    @admin.action(description="Fetch models from the server", permissions=("fetch_models",))
    def fetch_models(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset:
            try:
                names = connection_fetch_models(connection=connection)
            except (ConnectionProblem, BackendUnavailable) as exc:
                self.message_user(request, f"{connection.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{connection.name}: {len(names)} models.")


class SamplerPresetForm(forms.ModelForm):
    class Meta:
        model = SamplerPreset
        fields = ["name", "owner", *SAMPLER_FIELDS]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        for problem in preset_problems(SamplerPreset(stop=cleaned.get("stop") or [])):
            self.add_error("stop", problem)
        return cleaned


@admin.register(SamplerPreset)
class SamplerPresetAdmin(admin.ModelAdmin):
    form = SamplerPresetForm
    list_display = ("name", "owner", "source", "temperature", "top_p", "min_p", "top_k", "max_tokens")
    list_filter = ("source", ("owner", admin.EmptyFieldListFilter))
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    change_list_template = "admin/chat/samplerpreset/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="chat_samplerpreset_import"), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Import a SillyTavern preset as a shared preset (who may add presets may import them)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PresetUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                preset = preset_import_sillytavern(name=form.cleaned_data["name"], raw=form.raw(), owner=None)
            except PresetInvalid as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Imported the preset “{preset.name}”.")
                return redirect("admin:chat_samplerpreset_change", preset.pk)
        context = {**self.admin_site.each_context(request), "form": form, "opts": self.model._meta,
                   "title": "Import a SillyTavern preset"}  # fmt: skip
        return TemplateResponse(request, "admin/chat/samplerpreset/import.html", context)
