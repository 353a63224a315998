"""Private image serving: the owner, and accounts allowed to see any picture (``media.view_any_image``).

In development the file is streamed by Django. In production
(``MEDIA_X_ACCEL_REDIRECT=True``) the response only carries an
``X-Accel-Redirect`` header and nginx streams the file from an ``internal``
location, so web processes never spend time on bytes (docs/security.md).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedHttpRequest
from media.selectors import image_get_for_user

CACHE_CONTROL = "private, max-age=31536000, immutable"  # names never change


def private_file_response(name: str | None, content_type: str, filename: str) -> HttpResponseBase:
    """A private file the caller has checked the asker may see (pictures here, spoken replies in
    chat): X-Accel-Redirect or streamed, cached privately for good (names never change).
    ``FileNotFoundError`` when the file is gone (streamed only)."""
    response: HttpResponseBase
    if settings.MEDIA_X_ACCEL_REDIRECT:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.MEDIA_X_ACCEL_PREFIX + (name or "")
    else:
        if not name:
            raise FileNotFoundError(filename)
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@require_GET
@login_required
def image(request: AuthenticatedHttpRequest, image_id: uuid.UUID) -> HttpResponseBase:
    stored = image_get_for_user(request.user, image_id)
    try:
        return private_file_response(stored.file.name, "image/jpeg", f"{stored.pk}.jpg")
    except FileNotFoundError as exc:
        raise Http404("image file missing") from exc
