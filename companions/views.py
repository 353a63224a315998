"""Companion pages: list, creation wizard, card import/export, settings, delete, gallery."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.forms.models import model_to_dict
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from companionhub import ratelimits
from companionhub.text import scrub
from companions import cards, services
from companions.card_forms import CardFieldsForm
from companions.config import effective_config
from companions.exports import card_filename, cards_zip_file
from companions.forms import (
    SUGGESTED_VOICES,
    WIZARD_STEPS,
    CardImportForm,
    CompanionSettingsForm,
    ConfigForm,
    HeaderImageForm,
    VoiceForm,
    voice_initial,
)
from companions.models import CompanionDraft
from companions.selectors import (
    companion_card_book_entries,
    companion_cards_for_user,
    companion_get_for_user,
    companion_header_bytes,
    companions_for_card_export,
)
from companions.summary import SECTIONS, companion_summary
from lorebooks.forms import LorebookChoiceForm, LorebookImportForm
from media.imaging import ImageRejected
from media.selectors import gallery_page_for_user

GALLERY_PAGE_SIZE = 24
# The detail page shows these answers; the rest of the row (the card in ``config``) is not read.
SUMMARY_FIELDS = [name for _section, rows in SECTIONS for name, _label in rows]


@login_required
def companion_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    companions = companion_cards_for_user(request.user)
    return render(request, "companions/list.html", {"companions": companions})


@login_required
@require_GET
def first_companion(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Where a new account starts: make a first companion with the wizard or import a card."""
    return render(request, "companions/start.html")


@login_required
def wizard_start(request: AuthenticatedHttpRequest) -> HttpResponse:
    draft = services.draft_get_or_create(user=request.user)
    return redirect("companions:wizard", step=min(draft.step, len(WIZARD_STEPS)))


@login_required
@require_http_methods(["GET", "POST"])
def wizard(request: AuthenticatedHttpRequest, step: int) -> HttpResponse:
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


def _wizard_finish(request: AuthenticatedHttpRequest, draft: CompanionDraft, step: int) -> HttpResponse:
    invalid = services.draft_first_invalid_step(draft)
    if invalid is not None:
        messages.warning(request, _("Some answers are missing; please complete this step."))
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
                messages.info(request, _("That companion was already created."))
                return redirect("companions:list")
            except ImageRejected as exc:
                upload.add_error("header_image", exc.message)
            else:
                messages.success(request, _("%(name)s is ready to chat.") % {"name": companion.name})
                return redirect("chat:page", companion_id=companion.pk)
    slug, title, _form = WIZARD_STEPS[step - 1]
    context = _wizard_context(step, slug, title, form=upload)
    context["summary"] = companion_summary(draft.data)
    return render(request, "companions/wizard.html", context)


def _wizard_context(step: int, slug: str, title: Promise, **extra) -> dict:
    return {
        "step": step,
        "slug": slug,
        "title": title,
        "steps": [(n, t) for n, (_slug, t, _form) in enumerate(WIZARD_STEPS, start=1)],
        "is_last": step == len(WIZARD_STEPS),
        **extra,
    }


def _clean_values(form) -> dict:
    return {name: form.cleaned_data[name] for name in form.fields}


def _raw_values(request: HttpRequest, form_class) -> dict:
    """What was typed, unvalidated, less what the database cannot store (a NUL from a crafted post)."""
    values = {}
    for name in form_class._meta.fields:
        items = [scrub(item) for item in request.POST.getlist(name)]
        if items:
            values[name] = items if len(items) > 1 or name in ("personality_traits", "hobbies") else items[0]
    return values


@login_required
@require_http_methods(["POST"])
def wizard_discard(request: AuthenticatedHttpRequest) -> HttpResponse:
    services.draft_discard(user=request.user)
    messages.info(request, _("Draft discarded."))
    return redirect("companions:list")


@login_required
@require_http_methods(["GET", "POST"])
def card_import(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method != "POST":
        return render(request, "companions/card_import.html", {"form": CardImportForm()})
    ratelimits.enforce("companion_create", f"user:{request.user.pk}", record_label=request.user.username)
    form = CardImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "companions/card_import.html", {"form": form})
    outcomes = services.companion_import_cards(user=request.user, uploads=form.cleaned_data["card"])
    if len(outcomes) > 1:
        results = [(outcome, _import_notes(outcome.imported)) for outcome in outcomes]
        return render(request, "companions/card_import.html", {"form": CardImportForm(), "results": results})
    outcome = outcomes[0]
    if outcome.companion is None or outcome.imported is None:
        form.add_error("card", outcome.error)
        context = {"form": form, "lorebook_form": LorebookImportForm() if outcome.is_lorebook else None}
        return render(request, "companions/card_import.html", context)
    messages.success(request, _("%(name)s is imported and ready to chat.") % {"name": outcome.companion.name})
    for level, text in _import_notes(outcome.imported):
        messages.add_message(request, level, text)
    return redirect("chat:page", companion_id=outcome.companion.pk)


def _import_notes(imported: cards.ImportedCard | None) -> list[tuple[int, str]]:
    """What the owner should know about an imported card: extras left out, its lorebook, no look."""
    if imported is None:
        return []
    notes = []
    if imported.left_out:
        parts = ", ".join(str(cards.EXTRAS_LABELS[name]) for name in imported.left_out)
        limit = settings.CARD_EXTRAS_MAX_BYTES // 1024
        notes.append(
            (
                messages.WARNING,
                _(
                    "The card carries more extra data than the %(limit)s KB we keep,"
                    " so this was left out: %(parts)s."
                )
                % {"limit": number_format(limit, force_grouping=True), "parts": parts},
            )
        )
    if imported.book_problem:
        notes.append(
            (
                messages.WARNING,
                _(
                    "The card's lorebook could not become a lorebook of yours (%(reason)s);"
                    " it is kept with the card and exported with it."
                )
                % {"reason": imported.book_problem},
            )
        )
    elif imported.book is not None:
        notes.append(
            (
                messages.INFO,
                _("The card's lorebook “%(name)s” is now one of your lorebooks, attached to this companion.")
                % {"name": imported.book.name},
            )
        )
    if imported.assets_not_kept:
        count = imported.assets_not_kept
        notes.append(
            (
                messages.INFO,
                ngettext(
                    "%(count)s of the card's other pictures or sounds (sprites, backgrounds) is not kept;"
                    " its main picture is.",
                    "%(count)s of the card's other pictures or sounds (sprites, backgrounds) are not kept;"
                    " its main picture is.",
                    count,
                )
                % {"count": count},
            )
        )
    if imported.look_defaulted:
        notes.append((messages.INFO, _("The card does not describe a look we can use; set it in Settings.")))
    return notes


@login_required
@require_GET
def card_export_json(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    """The card as JSON: V3, or V2 with ``?spec=v2`` (for apps that read only V2)."""
    companion = companion_get_for_user(request.user, companion_id, with_config=True)
    spec = cards.SPEC_V2 if request.GET.get("spec") == "v2" else cards.SPEC_V3
    body = json.dumps(cards.build_card(companion, spec=spec), ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, card_filename(companion, "json"))
    return response


@login_required
@require_GET
def card_export_png(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id, with_config=True)
    png = cards.build_card_png(cards.build_card(companion), companion_header_bytes(companion))
    response = HttpResponse(png, content_type="image/png")
    response["Content-Disposition"] = content_disposition_header(True, card_filename(companion, "png"))
    return response


@login_required
@require_GET
def card_export_charx(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id, with_config=True)
    charx = cards.build_card_charx(cards.build_card(companion), companion_header_bytes(companion))
    response = HttpResponse(charx, content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, card_filename(companion, "charx"))
    return response


@login_required
@require_GET
def cards_export_all(request: AuthenticatedHttpRequest) -> FileResponse:
    """Every companion of the user as a PNG card, in one zip (spooled to disk past a few MB)."""
    archive = cards_zip_file(companions_for_card_export(request.user))
    return FileResponse(
        archive, as_attachment=True, filename="companion-cards.zip", content_type="application/zip"
    )


@login_required
def companion_detail(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    summary = companion_summary(model_to_dict(companion, fields=SUMMARY_FIELDS))
    return render(request, "companions/detail.html", {"companion": companion, "summary": summary})


@login_required
@require_http_methods(["GET", "POST"])
def companion_settings(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id, with_config=True)
    post, files = request.POST or None, request.FILES or None
    form = CompanionSettingsForm(post, instance=companion)
    card_form = CardFieldsForm(post, stored=cards.stored_card(companion), prefix="card")
    config = effective_config(companion.config)
    config_form = ConfigForm(post, initial=config, prefix="config")
    voice_form = VoiceForm(post, initial=voice_initial(config), prefix="voice")
    upload = HeaderImageForm(post, files)
    lore_form = LorebookChoiceForm(
        post, owner=request.user, initial={"lorebooks": list(companion.lorebooks.all())}, prefix="lore"
    )
    forms_ = (form, card_form, config_form, voice_form, upload, lore_form)
    if request.method == "POST":
        ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
    if request.method == "POST" and all(f.is_valid() for f in forms_):
        try:
            services.companion_update(
                companion=companion,
                form=form,
                config={**config_form.cleaned_data, **voice_form.config()},
                header=upload.cleaned_data["header_image"],
                card_texts=card_form.values(),
            )
        except ImageRejected as exc:
            upload.add_error("header_image", exc.message)
        else:
            books = lore_form.cleaned_data["lorebooks"]
            services.companion_set_lorebooks(companion=companion, lorebooks=books)
            messages.success(request, _("Settings saved."))
            return redirect("companions:settings", companion_id=companion.pk)
    sections = form.sections()
    for section, fields in card_form.sections().items():
        sections[section] = [*sections.get(section, []), *fields]
    return render(
        request,
        "companions/settings.html",
        {
            "companion": companion,
            "form": form,
            "card_form": card_form,
            "sections": sections,
            "open_sections": _sections_with_errors(sections, upload=upload, others=(config_form, voice_form)),
            "card_book_entries": companion_card_book_entries(companion),
            "config_form": config_form,
            "voice_form": voice_form,
            "suggested_voices": SUGGESTED_VOICES,
            "upload": upload,
            "lore_form": lore_form,
        },
    )


def _sections_with_errors(sections: dict[str, list], *, upload: HeaderImageForm, others: tuple) -> set[str]:
    """The sections a refused save opens, so every error is in view."""
    opened = {name for name, fields in sections.items() if any(field.errors for field in fields)}
    if upload.errors or any(field.errors for field in sections["identity"]):
        opened.add("identity")
    if any(form.errors for form in others):
        opened.add("model")
    return opened


@login_required
@require_POST
def companion_start_card_book(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    """Give the companion a lorebook of its own (exported in its card), then edit it from settings."""
    companion = companion_get_for_user(request.user, companion_id)
    ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
    services.companion_start_card_book(companion=companion)
    messages.success(
        request, _("%(name)s has a lorebook of its own: add its entries below.") % {"name": companion.name}
    )
    return redirect(reverse("companions:settings", args=[companion.pk]) + "#lorebook")


@login_required
@require_POST
def companion_reroll_seed(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
    services.companion_reroll_seed(companion=companion)
    messages.success(request, _("New picture seed: the next pictures get a new look."))
    return redirect("companions:settings", companion_id=companion.pk)


@login_required
@require_http_methods(["GET", "POST"])
def companion_delete(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    if request.method == "POST":
        name = companion.name
        services.companion_delete(companion=companion)
        messages.success(request, _("%(name)s is deleted, with every message and picture.") % {"name": name})
        return redirect("companions:list")
    return render(request, "companions/confirm_delete.html", {"companion": companion})


@login_required
def gallery(request: AuthenticatedHttpRequest) -> HttpResponse:
    page = gallery_page_for_user(request.user, request.GET.get("page"), per_page=GALLERY_PAGE_SIZE)
    return render(request, "companions/gallery.html", {"page": page})
