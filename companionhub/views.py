"""Project-level views: the landing page and the health endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from companionhub import pagecache
from companionhub.health import health_report


@require_GET
@pagecache.anonymous_page
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/home.html")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, report = health_report()
    return JsonResponse(report, status=200 if healthy else 503)
