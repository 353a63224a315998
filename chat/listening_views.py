"""``POST /chat/transcribe/``: push-to-talk's recording in, its text out, as JSON.

The contract the chat page's script relies on: a multipart ``audio`` file and
an optional ``conversation_id`` (the user's own; it picks the language) in;
``200 {"text": "..."}`` or ``{"error": "..."}`` with 400 (empty, damaged, no
file, a bad id), 413 (too large or too long), 415 (not audio), 429 (rate
limited, with Retry-After), 503 (no speech back end, or it failed) out; 404 for
a conversation that is not the user's. A body over the size limit is refused
as JSON by the body rules before this view runs (``companionhub.body_limits``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedHttpRequest
from chat import listening
from chat.models import Conversation
from chat.selectors import conversation_get_for_user
from companionhub import ratelimits
from companionhub.uploads import MemoryOnlyUploadHandler
from media.audio_check import AudioRejected

FIELD = "audio"


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


# CSRF is checked below, once the upload handler is in place: the check reads the body, and
# the handler that keeps the recording in memory must be set before anything does.
@csrf_exempt
@login_required
@require_POST
def transcribe(request: AuthenticatedHttpRequest) -> HttpResponse:
    handler = MemoryOnlyUploadHandler(request, field_name=FIELD, max_bytes=settings.VOICE_UPLOAD_MAX_BYTES)
    request.upload_handlers = [handler]
    return _transcribe(request, handler)


@csrf_protect
def _transcribe(request: AuthenticatedHttpRequest, handler: MemoryOnlyUploadHandler) -> HttpResponse:
    try:
        ratelimits.enforce("transcribe", f"user:{request.user.pk}", record_label=request.user.username)
    except ratelimits.RateLimited as exc:
        return _rate_limited(exc)
    upload = request.FILES.get(FIELD)  # reads the body through the handler
    if handler.too_large:
        return _error(
            _("The recording is larger than %(size)s MB.")
            % {"size": settings.VOICE_UPLOAD_MAX_BYTES // (1024 * 1024)},
            413,
        )
    if upload is None:
        return _error(_("Send the recording as the file field “audio”."), 400)
    try:
        conversation = _conversation(request)
    except ValueError:
        return _error(_("The conversation id is not a number."), 400)
    except Http404:
        return _error(_("That conversation does not exist."), 404)
    language = listening.recording_language(
        user=request.user, conversation=conversation, fallback=getattr(request, "LANGUAGE_CODE", None)
    )
    try:
        transcript = listening.recording_transcribe(
            user=request.user, audio=upload.read(), conversation=conversation, language=language
        )
    except AudioRejected as exc:
        return _error(exc.message, exc.status)
    except listening.TranscriptionUnavailable as exc:
        return _error(exc.message, 503)
    return JsonResponse({"text": transcript.text})


def _conversation(request: AuthenticatedHttpRequest) -> Conversation | None:
    raw = request.POST.get("conversation_id", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError(raw)
    return conversation_get_for_user(request.user, int(raw))


def _rate_limited(exc: ratelimits.RateLimited) -> JsonResponse:
    minutes = max(1, round(exc.retry_after / 60))
    message = ngettext(
        "Too many attempts. Try again in about %(minutes)s minute.",
        "Too many attempts. Try again in about %(minutes)s minutes.",
        minutes,
    ) % {"minutes": minutes}
    response = _error(message, 429)
    response["Retry-After"] = str(exc.retry_after)
    return response
