"""Companion pages: list, creation wizard, settings, wipe, delete, gallery."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.forms.models import model_to_dict
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from companionhub import ratelimits
from companions import services
from companions.config import effective_config
from companions.forms import WIZARD_STEPS, CompanionSettingsForm, ConfigForm, HeaderImageForm
from companions.selectors import companion_get_for_user, companion_list_for_user
from companions.summary import companion_summary
from media.imaging import ImageRejected
from media.selectors import gallery_for_user

GALLERY_PAGE_SIZE = 24


@login_required
def companion_list(request: HttpRequest) -> HttpResponse:
    companions = companion_list_for_user(request.user)
    return render(request, "companions/list.html", {"companions": companions})


@login_required
def wizard_start(request: HttpRequest) -> HttpResponse:
    draft = services.draft_get_or_create(user=request.user)
    return redirect("companions:wizard", step=min(draft.step, len(WIZARD_STEPS)))


@login_required
@require_http_methods(["GET", "POST"])
def wizard(request: HttpRequest, step: int) -> HttpResponse:
    if not 1 <= step <= len(WIZARD_STEPS):
        raise Http404("no such step")
    draft = services.draft_get_or_create(user=request.user)
    if step > draft.step:  # no skipping ahead of what was filled in
        return redirect("companions:wizard", step=draft.step)
    slug, title, form_class = WIZARD_STEPS[step - 1]

    if form_class is None:
        return _wizard_finish(request, draft, step)

    if request.method == "POST" and request.POST.get("action") == "back":
        # Keep what was typed, valid or not; it is validated again on the way forward.
        services.draft_save_step(draft=draft, data=_raw_values(request, form_class), reached_step=step)
        return redirect("companions:wizard", step=step - 1)

    form = form_class(request.POST or None, initial=draft.data)
    if request.method == "POST" and form.is_valid():
        services.draft_save_step(draft=draft, data=_clean_values(form), reached_step=step + 1)
        return redirect("companions:wizard", step=step + 1)
    return render(request, "companions/wizard.html", _wizard_context(step, slug, title, form=form))


def _wizard_finish(request: HttpRequest, draft, step: int) -> HttpResponse:
    invalid = services.draft_first_invalid_step(draft)
    if invalid is not None:
        messages.warning(request, "Some answers are missing; please complete this step.")
        return redirect("companions:wizard", step=invalid)
    upload = HeaderImageForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if request.POST.get("action") == "back":
            return redirect("companions:wizard", step=step - 1)
        if upload.is_valid():
            ratelimits.enforce(
                "companion_create", f"user:{request.user.pk}", record_label=request.user.username
            )
            try:
                companion = services.companion_create_from_draft(
                    user=request.user, header=upload.cleaned_data["header_image"]
                )
            except services.DraftAlreadyUsed:
                messages.info(request, "That companion was already created.")
                return redirect("companions:list")
            except ImageRejected as exc:
                upload.add_error("header_image", exc.message)
            else:
                messages.success(request, f"{companion.name} is ready to chat.")
                return redirect("chat:page", companion_id=companion.pk)
    context = _wizard_context(step, "finish", "Finish", form=upload)
    context["summary"] = companion_summary(draft.data)
    return render(request, "companions/wizard.html", context)


def _wizard_context(step: int, slug: str, title: str, **extra) -> dict:
    return {
        "step": step,
        "slug": slug,
        "title": title,
        "steps": [(n, t) for n, (_, t, _) in enumerate(WIZARD_STEPS, start=1)],
        "is_last": step == len(WIZARD_STEPS),
        **extra,
    }


def _clean_values(form) -> dict:
    return {name: form.cleaned_data[name] for name in form.fields}


def _raw_values(request: HttpRequest, form_class) -> dict:
    values = {}
    for name in form_class._meta.fields:
        items = request.POST.getlist(name)
        if items:
            values[name] = items if len(items) > 1 or name in ("personality_traits", "hobbies") else items[0]
    return values


@login_required
@require_http_methods(["POST"])
def wizard_discard(request: HttpRequest) -> HttpResponse:
    services.draft_discard(user=request.user)
    messages.info(request, "Draft discarded.")
    return redirect("companions:list")


@login_required
def companion_detail(request: HttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    summary = companion_summary(model_to_dict(companion))
    return render(request, "companions/detail.html", {"companion": companion, "summary": summary})


@login_required
@require_http_methods(["GET", "POST"])
def companion_settings(request: HttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    post, files = request.POST or None, request.FILES or None
    form = CompanionSettingsForm(post, instance=companion)
    config_form = ConfigForm(post, initial=effective_config(companion.config), prefix="config")
    upload = HeaderImageForm(post, files)
    if request.method == "POST":
        ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
    if request.method == "POST" and form.is_valid() and config_form.is_valid() and upload.is_valid():
        try:
            services.companion_update(
                companion=companion,
                form=form,
                config=config_form.cleaned_data,
                header=upload.cleaned_data["header_image"],
            )
        except ImageRejected as exc:
            upload.add_error("header_image", exc.message)
        else:
            messages.success(request, "Settings saved.")
            return redirect("companions:settings", companion_id=companion.pk)
    return render(
        request,
        "companions/settings.html",
        {"companion": companion, "form": form, "config_form": config_form, "upload": upload},
    )


@login_required
@require_http_methods(["GET", "POST"])
def companion_wipe(request: HttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    if request.method == "POST":
        services.companion_wipe_memory(companion=companion)
        messages.success(request, f"{companion.name}'s memory is wiped. Start afresh!")
        return redirect("chat:page", companion_id=companion.pk)
    return render(request, "companions/confirm_wipe.html", {"companion": companion})


@login_required
@require_http_methods(["GET", "POST"])
def companion_delete(request: HttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    if request.method == "POST":
        name = companion.name
        services.companion_delete(companion=companion)
        messages.success(request, f"{name} is deleted, with every message and picture.")
        return redirect("companions:list")
    return render(request, "companions/confirm_delete.html", {"companion": companion})


@login_required
def gallery(request: HttpRequest) -> HttpResponse:
    page = Paginator(gallery_for_user(request.user), GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "companions/gallery.html", {"page": page})
