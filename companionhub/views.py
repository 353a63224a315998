"""Project-level views: the landing page, the health endpoint, the metrics and /favicon.ico."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_safe

from accounts.tokens import token_authenticate
from companionhub import health, pagecache
from companionhub import metrics as metrics_exposition
from companions.selectors import companions_exist_for_user


@require_GET
@pagecache.anonymous_page
def home(request: HttpRequest) -> HttpResponse:
    """The landing page; a signed-in user without a companion is taken to make their first."""
    if request.user.is_authenticated and not companions_exist_for_user(request.user):
        return redirect("companions:start")
    return render(request, "pages/home.html")


@cache_control(public=True, max_age=86_400)
@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Pages name their icon (``favicon.svg``), but browsers, feed readers and the admin's
    pages without the link still ask for /favicon.ico: send them to the icon instead of a
    404 in the log per page. Not permanent: the hashed file name changes with the icon."""
    return HttpResponseRedirect(static("favicon.svg"))


@never_cache
@require_safe  # GET, and HEAD: uptime monitors send HEAD and read only the status
def healthz(request: HttpRequest) -> HttpResponse:
    """Staff and the metrics scraper get every check; anyone else healthy-or-not, cached briefly."""
    if _operator_access(request) == 200 and request.method == "GET":
        healthy, report = health.health_report()
        return JsonResponse(report, status=200 if healthy else 503)
    healthy, status = health.cached_status()
    if request.method == "HEAD":  # the same status, no body (not every server strips it)
        return HttpResponse(status=200 if healthy else 503, content_type="application/json")
    return JsonResponse({"status": status}, status=200 if healthy else 503)


def _operator_access(request: HttpRequest) -> int:
    """200 when allowed; 401 without credentials (or bad ones), 403 when they are not staff's.

    Allowed: the scraper's ``METRICS_TOKEN`` (compared in constant time), a
    personal API token of an active staff user, or a staff session.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            return 401
        if settings.METRICS_TOKEN and constant_time_compare(secret, settings.METRICS_TOKEN):
            return 200
        token = token_authenticate(secret)
        if token is None:
            return 401
        return 200 if token.user.is_staff else 403
    if not request.user.is_authenticated:
        return 401
    return 200 if request.user.is_active and request.user.is_staff else 403


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    status = _operator_access(request)
    if status != 200:
        response = HttpResponse(
            "Staff sign-in or a bearer token is required.\n", status=status, content_type="text/plain"
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_exposition.render(), content_type=metrics_exposition.CONTENT_TYPE)
