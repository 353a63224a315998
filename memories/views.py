"""The Memories page of a companion: list (newest first, searchable), add, edit, pin, delete.

Every view takes the companion through ``companion_get_for_user`` and the memory through
``memory_get_for_user`` (404 for anyone else's), counts its writes against the
``memory_change`` rate limit, and calls one service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from companionhub import ratelimits
from companionhub.errors import AppError
from companions.models import Companion
from companions.selectors import companion_get_for_user
from memories import services
from memories.forms import MemoryAddForm, MemoryForm, MemorySearchForm, PinForm
from memories.selectors import memory_counts, memory_get_for_user, memory_page


def _limit(request: AuthenticatedHttpRequest) -> None:
    ratelimits.enforce("memory_change", f"user:{request.user.pk}", record_label=request.user.username)


def _list_context(
    request: AuthenticatedHttpRequest, companion: Companion, add_form: MemoryAddForm | None = None
) -> dict[str, Any]:
    search = MemorySearchForm(request.GET or None)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    return {
        "companion": companion,
        "page": memory_page(request.user, companion, query, request.GET.get("page")),
        "counts": memory_counts(request.user, companion),
        "search": search,
        "query": query,
        "form": add_form or MemoryAddForm(),
    }


def _back(request: AuthenticatedHttpRequest, companion: Companion) -> HttpResponse:
    """To the list page the form was sent from (its search and page), else the first page."""
    target = request.POST.get("next", "")
    first_page = reverse("memories:list", args=[companion.pk])
    safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    return redirect(target if safe and target.startswith(first_page) else first_page)


@login_required
@require_GET
def memory_list(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    return render(request, "memories/list.html", _list_context(request, companion))


@login_required
@require_POST
def memory_add(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    _limit(request)
    form = MemoryAddForm(request.POST)
    if form.is_valid():
        try:
            services.memory_add(
                owner=request.user,
                companion=companion,
                text=form.cleaned_data["text"],
                pinned=form.cleaned_data["pinned"],
            )
        except AppError as exc:
            form.add_error("text", exc.message)
        else:
            messages.success(request, _("%(name)s will remember that.") % {"name": companion.name})
            return redirect("memories:list", companion_id=companion.pk)
    return render(request, "memories/list.html", _list_context(request, companion, form))


@login_required
@require_http_methods(["GET", "POST"])
def memory_edit(request: AuthenticatedHttpRequest, companion_id: int, memory_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    memory = memory_get_for_user(request.user, companion.pk, memory_id)
    form = MemoryForm(request.POST or None, initial={"text": memory.text})
    if request.method == "POST":
        _limit(request)
        if form.is_valid():
            try:
                services.memory_edit(owner=request.user, memory=memory, text=form.cleaned_data["text"])
            except AppError as exc:
                form.add_error("text", exc.message)
            else:
                messages.success(request, _("Memory saved."))
                return _back(request, companion)
    context = {"companion": companion, "memory": memory, "form": form, "next": request.GET.get("next", "")}
    return render(request, "memories/edit.html", context)


@login_required
@require_POST
def memory_pin(request: AuthenticatedHttpRequest, companion_id: int, memory_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    memory = memory_get_for_user(request.user, companion.pk, memory_id)
    _limit(request)
    form = PinForm(request.POST)
    pinned = form.is_valid() and form.cleaned_data["pinned"]
    services.memory_set_pinned(owner=request.user, memory=memory, pinned=pinned)
    messages.success(request, _("Memory pinned.") if pinned else _("Memory unpinned."))
    return _back(request, companion)


@login_required
@require_http_methods(["GET", "POST"])
def memory_delete(request: AuthenticatedHttpRequest, companion_id: int, memory_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    memory = memory_get_for_user(request.user, companion.pk, memory_id)
    if request.method == "POST":
        _limit(request)
        services.memory_delete(owner=request.user, memory=memory)
        messages.success(request, _("Memory deleted."))
        return _back(request, companion)
    context = {"companion": companion, "memory": memory, "next": request.GET.get("next", "")}
    return render(request, "memories/confirm_delete.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def memories_clear(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    if request.method == "POST":
        _limit(request)
        count = services.memories_clear(owner=request.user, companion=companion)
        messages.success(
            request,
            ngettext(
                "%(count)s memory of %(name)s deleted.", "%(count)s memories of %(name)s deleted.", count
            )
            % {"count": count, "name": companion.name},
        )
        return redirect("memories:list", companion_id=companion.pk)
    counts = memory_counts(request.user, companion)
    return render(request, "memories/confirm_clear.html", {"companion": companion, "counts": counts})
