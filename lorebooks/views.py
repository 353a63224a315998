"""Lorebook pages: the list, create, import, a book's settings and entries, export, delete.

Every write (a POST) counts against the user's ``lorebook_change`` rate limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from companionhub import ratelimits
from lorebooks import formats, selectors, services
from lorebooks.formats import LorebookRejected
from lorebooks.forms import LorebookForm, LorebookImportForm, LoreEntryForm
from lorebooks.models import Lorebook


def _limit_writes(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A write (POST) counts against the user's ``lorebook_change`` limit; a 429 over it."""

    @wraps(view)
    def wrapped(request: AuthenticatedHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            user = request.user
            ratelimits.enforce("lorebook_change", f"user:{user.pk}", record_label=user.username)
        return view(request, *args, **kwargs)

    return wrapped


def _back_to(request: AuthenticatedHttpRequest) -> str:
    """Where an entry page returns to when it was opened from another page (a companion's settings):
    its ``next``, when that is a page of this site; else ''."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and safe else ""


@login_required
@require_GET
def lorebook_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    books = selectors.lorebook_list_for_user(request.user)
    return render(request, "lorebooks/list.html", {"books": books})


@login_required
@require_http_methods(["GET", "POST"])
@_limit_writes
def lorebook_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = LorebookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        book = services.lorebook_create(owner=request.user, **form.cleaned_data)
        messages.success(
            request, _("Lorebook “%(name)s” created. Add its entries below.") % {"name": book.name}
        )
        return redirect("lorebooks:detail", lorebook_id=book.pk)
    return render(request, "lorebooks/form.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
@_limit_writes
def lorebook_import(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = LorebookImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            book = services.lorebook_import(
                request.user, form.cleaned_data["file"], name=form.cleaned_data["name"] or None
            )
        except LorebookRejected as exc:
            form.add_error("file", exc.message)
        else:
            messages.success(
                request,
                _("Lorebook “%(name)s” imported with %(count)s entries.")
                % {"name": book.name, "count": book.entries.count()},
            )
            return redirect("lorebooks:detail", lorebook_id=book.pk)
    return render(request, "lorebooks/import.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
@_limit_writes
def lorebook_detail(request: AuthenticatedHttpRequest, lorebook_id: int) -> HttpResponse:
    """The book's settings (POST saves them) and its entries."""
    book = selectors.lorebook_get_for_user(request.user, lorebook_id)
    form = LorebookForm(request.POST or None, instance=book)
    if request.method == "POST" and form.is_valid():
        services.lorebook_update(lorebook=book, **form.cleaned_data)
        messages.success(request, _("Lorebook settings saved."))
        return redirect("lorebooks:detail", lorebook_id=book.pk)
    return render(request, "lorebooks/detail.html", _detail_context(book, form=form))


def _detail_context(book: Lorebook, **extra: Any) -> dict[str, Any]:
    return {"book": book, "entries": list(book.entries.all()), **extra}


@login_required
@require_http_methods(["GET", "POST"])
@_limit_writes
def entry_create(request: AuthenticatedHttpRequest, lorebook_id: int) -> HttpResponse:
    book = selectors.lorebook_get_for_user(request.user, lorebook_id)
    form = LoreEntryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.entry_create(lorebook=book, **form.values())
        except LorebookRejected as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Entry added."))
            return redirect(_back_to(request) or reverse("lorebooks:detail", args=[book.pk]))
    context = {"book": book, "form": form, "next_url": _back_to(request)}
    return render(request, "lorebooks/entry_form.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@_limit_writes
def entry_edit(request: AuthenticatedHttpRequest, lorebook_id: int, entry_id: int) -> HttpResponse:
    entry = selectors.entry_get_for_user(request.user, lorebook_id, entry_id)
    form = LoreEntryForm(request.POST or None, instance=entry)
    if request.method == "POST" and form.is_valid():
        services.entry_update(entry=entry, **form.values())
        messages.success(request, _("Entry saved."))
        return redirect(_back_to(request) or reverse("lorebooks:detail", args=[entry.lorebook_id]))
    context = {"book": entry.lorebook, "form": form, "entry": entry, "next_url": _back_to(request)}
    return render(request, "lorebooks/entry_form.html", context)


@login_required
@require_POST
@_limit_writes
def entry_delete(request: AuthenticatedHttpRequest, lorebook_id: int, entry_id: int) -> HttpResponse:
    entry = selectors.entry_get_for_user(request.user, lorebook_id, entry_id)
    services.entry_delete(entry=entry)
    messages.success(request, _("Entry deleted."))
    return redirect(_back_to(request) or reverse("lorebooks:detail", args=[lorebook_id]))


@login_required
@require_GET
def lorebook_export(request: AuthenticatedHttpRequest, lorebook_id: int, fmt: str) -> HttpResponse:
    """The book as a SillyTavern World Info file or as a card's ``character_book``."""
    book = selectors.lorebook_get_for_user(request.user, lorebook_id)
    parsed = selectors.parsed_book(book)
    if fmt == "character-book":
        data, suffix = formats.to_character_book(parsed), "character-book"
    elif fmt == "world-info":
        data, suffix = formats.to_world_info(parsed), "world-info"
    else:
        raise Http404("no such format")
    body = json.dumps(data, ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    filename = f"{slugify(book.name) or 'lorebook'}.{suffix}.json"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@login_required
@require_http_methods(["GET", "POST"])
@_limit_writes
def lorebook_delete(request: AuthenticatedHttpRequest, lorebook_id: int) -> HttpResponse:
    book = selectors.lorebook_get_for_user(request.user, lorebook_id)
    if request.method == "POST":
        name = book.name
        services.lorebook_delete(lorebook=book)
        messages.success(request, _("Lorebook “%(name)s” deleted.") % {"name": name})
        return redirect("lorebooks:list")
    return render(request, "lorebooks/confirm_delete.html", {"book": book})
