"""Refuse an oversized upload before Django parses it.

Django's upload settings only decide when a file moves from memory to a
temporary file; none caps its size. This middleware answers 413 to a body
declared larger than a picture may be, before any form or Pillow sees it.
Under ASGI the server has read the body by then (into a spooled temporary
file), so the proxy's limit (nginx ``client_max_body_size``, docs/security.md)
is what keeps it off the machine; ``store_image`` checks the size again.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# A form around the file: field names, the CSRF token, multipart boundaries.
FORM_OVERHEAD = 256 * 1024


def max_request_bytes() -> int:
    return settings.IMAGE_MAX_BYTES + FORM_OVERHEAD


class RequestSizeLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > max_request_bytes():
            limit_mb = settings.IMAGE_MAX_BYTES // (1024 * 1024)
            return HttpResponse(
                f"The upload is too large: pictures can be at most {limit_mb} MB.",
                status=413,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
