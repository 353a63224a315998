"""Refuse an oversized body in Django, before a form or Pillow sees it.

Django's upload settings only decide when a file moves from memory to a
temporary file; none caps its size. This middleware answers 413 to a body
declared larger than its URL takes (``companionhub.body_limits``), before the
body is parsed. Under Daphne the same rules have already been applied while
the headers arrived (``companionhub.daphne_guard``) and around the ASGI
application (``body_limits.BodyLimitMiddleware``); this is the line for the
test client and WSGI. ``store_image`` checks a picture's size again.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from companionhub import body_limits


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rule = body_limits.rule_for(request.path_info)
        declared = body_limits.parse_content_length(request.META.get("CONTENT_LENGTH"))
        if declared is not None and declared > rule.limit:
            refusal = rule.too_large()
            return HttpResponse(
                refusal.message, status=refusal.status, content_type="text/plain; charset=utf-8"
            )
        return self.get_response(request)
