"""Exports: start one, follow its progress, download it. The owner only, POST to start."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.http import AuthenticatedHttpRequest
from companionhub import ratelimits
from companionhub.errors import AppError
from portability import selectors, services

PROFILE_SECTION = "export"


def _to_profile() -> HttpResponse:
    return redirect(reverse("accounts:profile") + f"#{PROFILE_SECTION}")


@login_required
@require_POST
def export_start(request: AuthenticatedHttpRequest) -> HttpResponse:
    ratelimits.enforce("account_export", f"user:{request.user.pk}", record_label=request.user.username)
    try:
        services.export_request(user=request.user)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Your export is being prepared. This page shows when it is ready."))
    return _to_profile()


@never_cache
@login_required
@require_GET
def export_status(request: AuthenticatedHttpRequest, export_id: uuid.UUID) -> JsonResponse:
    export = selectors.export_get_for_user(request.user, export_id)
    return JsonResponse(selectors.export_status(export))


@login_required
@require_GET
def export_download(request: AuthenticatedHttpRequest, export_id: uuid.UUID) -> HttpResponseBase:
    export = selectors.export_get_for_user(request.user, export_id)
    if not selectors.export_is_downloadable(export):
        raise Http404("This export is not ready, or it has expired.")
    filename = f"companionhub-{request.user.username}-{export.created_at:%Y-%m-%d}.zip"
    response: HttpResponseBase
    if settings.MEDIA_X_ACCEL_REDIRECT:
        response = HttpResponse(content_type="application/zip")
        response["X-Accel-Redirect"] = settings.MEDIA_X_ACCEL_PREFIX + export.file
        response["Content-Disposition"] = content_disposition_header(True, filename)
    else:
        try:
            handle = services.export_open(export)
        except FileNotFoundError as exc:
            raise Http404("The export's file is missing.") from exc
        response = FileResponse(handle, as_attachment=True, filename=filename, content_type="application/zip")
    response["Cache-Control"] = "private, no-store"
    return response
