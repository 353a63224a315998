"""Refuse an oversized body in Django, before a form or Pillow sees it; keep a voice upload off disk.

Django's upload settings only decide when a file moves from memory to a
temporary file; none caps its size. This middleware answers 413 to a body
declared larger than its URL takes (``companionhub.body_limits``), before the
body is parsed. Under Daphne the same rules have already been applied while
the headers arrived (``companionhub.daphne_guard``) and around the ASGI
application (``body_limits.BodyLimitMiddleware``); this is the line for the
test client and WSGI. ``store_image`` checks a picture's size again.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopFutureHandlers, StopUpload
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
            return HttpResponse(refusal.body, status=refusal.status, content_type=refusal.content_type)
        return self.get_response(request)


class MemoryOnlyUploadHandler(FileUploadHandler):
    """Keep one uploaded file of ``field_name`` in memory, at most ``max_bytes``; never on disk.

    Django's default handlers move a file over ``FILE_UPLOAD_MAX_MEMORY_SIZE``
    into a temporary file. A view that only passes the bytes on (a voice
    recording to the speech service) sets this handler instead, before the
    body is read, so nothing of the upload is ever written to disk. A file
    passing ``max_bytes`` stops the upload and sets ``too_large``: a chunked
    body has no Content-Length for the body rules to refuse first. Other file
    fields, and a second file, are skipped.
    """

    def __init__(self, request: HttpRequest | None = None, *, field_name: str, max_bytes: int) -> None:
        super().__init__(request)
        self.field_name = field_name
        self.max_bytes = max_bytes
        self.too_large = False
        self._buffer: io.BytesIO | None = None
        self._taken = False

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        if field_name != self.field_name or self._taken:
            raise SkipFile()
        super().new_file(field_name, *args, **kwargs)
        self._taken = True
        self._buffer = io.BytesIO()
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if self._buffer is None:
            return raw_data
        if self._buffer.tell() + len(raw_data) > self.max_bytes:
            self.too_large = True
            self._buffer = None
            raise StopUpload(connection_reset=False)
        self._buffer.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile | None:
        if self._buffer is None:
            return None
        buffer, self._buffer = self._buffer, None
        buffer.seek(0)
        return InMemoryUploadedFile(
            file=buffer,
            field_name=self.field_name,
            name=self.file_name or "upload",
            content_type=self.content_type or "application/octet-stream",
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
