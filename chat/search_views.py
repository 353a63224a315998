"""The search page: the user's messages across all their conversations (``chat.search``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedHttpRequest
from chat.search import message_search
from chat.search_forms import SearchForm


@login_required
@require_GET
def search(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Results for ``?q=`` with the filters; a filter naming another user's row is a 404."""
    form = SearchForm(request.GET, user=request.user)
    page = None
    if form.is_valid():
        if form.cleaned_data["q"]:
            page = message_search(user=request.user, **form.search_args())
    elif form.names_foreign_ids():
        raise Http404
    return render(request, "chat/search.html", {"form": form, "page": page})
