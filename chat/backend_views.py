"""A companion's model page: which AI server, model, sampler preset and picture server it uses."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedHttpRequest
from chat.backend_forms import CompanionBackendForm, PresetUploadForm
from chat.backend_models import Connection
from chat.connections import companion_backend_of, companion_backend_set, connections_for_choice
from chat.presets import PresetInvalid, preset_import_sillytavern
from companionhub import ratelimits
from companions.selectors import companion_get_for_user


@login_required
@require_http_methods(["GET", "POST"])
def companion_model(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)  # 404 for anyone but the owner
    choice = companion_backend_of(companion.pk)
    initial = (
        {
            "llm_connection": choice.llm_connection_id,
            "model": choice.model,
            "preset": choice.preset_id,
            "image_connection": choice.image_connection_id,
        }
        if choice
        else {}
    )
    importing = request.method == "POST" and "import" in request.POST
    form = CompanionBackendForm(
        request.POST if request.method == "POST" and not importing else None,
        initial=initial,
        user=request.user,
    )
    upload = PresetUploadForm(request.POST if importing else None, request.FILES if importing else None)
    if request.method == "POST":
        ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
    if importing and upload.is_valid():
        try:
            preset = preset_import_sillytavern(
                name=upload.cleaned_data["name"], raw=upload.raw(), owner=request.user
            )
        except PresetInvalid as exc:
            upload.add_error(None, exc.message)
        else:
            messages.success(
                request, _("Imported the preset “%(name)s”: choose it below.") % {"name": preset.name}
            )
            return redirect("chat:model", companion_id=companion.pk)
    elif request.method == "POST" and not importing and form.is_valid():
        companion_backend_set(companion_id=companion.pk, **form.cleaned_data)
        messages.success(request, _("Saved: the next reply uses these."))
        return redirect("chat:model", companion_id=companion.pk)
    model_names = sorted(
        {name for c in connections_for_choice(Connection.Kind.LLM) for name in c.models_list}
    )
    context = {"companion": companion, "form": form, "upload": upload, "model_names": model_names}
    return render(request, "chat/model.html", context)
