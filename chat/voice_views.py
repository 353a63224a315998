"""Spoken replies over HTTP: a clip's audio (its owner only), a reply's clips, speaking on demand.

Clips are served like private pictures (``media.views``): in development the
file is streamed by Django; with ``MEDIA_X_ACCEL_REDIRECT`` only an
``X-Accel-Redirect`` header goes out and nginx streams the file. Another
user's clip is a 404, whoever asks, unless they hold ``chat.view_any_speech``.
A program on a personal API token (the reference client's ``--save-audio``)
fetches clips with ``Authorization: Bearer <token>``, as it chats.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import User
from accounts.tokens import token_authenticate
from chat import voice
from chat.models import SpeechClip
from chat.speech import SpeechError
from companionhub import ratelimits
from companionhub.errors import AppError
from media.views import private_file_response


def speech_clip_get_for_user(user: User, clip_id: uuid.UUID) -> SpeechClip:
    """The clip if ``user`` owns its conversation, or may hear anyone's (``chat.view_any_speech``); 404."""
    clips = SpeechClip.objects.all()
    if not user.has_perm("chat.view_any_speech"):
        clips = clips.filter(message__conversation__owner=user)
    return get_object_or_404(clips, pk=clip_id)


def _clip_reader(request: HttpRequest) -> User | None:
    """Who asks for a clip: the signed-in user, else the owner of a valid bearer token."""
    if request.user.is_authenticated:
        return request.user
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return None
    token = token_authenticate(secret.strip())
    return token.user if token is not None else None


@require_GET
def speech_clip(request: HttpRequest, clip_id: uuid.UUID) -> HttpResponseBase:
    user = _clip_reader(request)
    if user is None:
        return redirect_to_login(request.get_full_path())
    clip = speech_clip_get_for_user(user, clip_id)
    extension = clip.file.name.rsplit(".", 1)[-1] if clip.file.name else "wav"
    try:
        return private_file_response(clip.file.name, clip.content_type, f"{clip.pk}.{extension}")
    except FileNotFoundError as exc:
        raise Http404("audio file missing") from exc


def _clips_json(clips: list[SpeechClip]) -> list[dict[str, object]]:
    return [{"index": c.index, "url": c.url, "duration_ms": c.duration_ms} for c in clips]


@require_GET
@login_required
def message_audio(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> JsonResponse:
    """The reply's clips in order, for replay after a reload."""
    message = voice.reply_get_for_user(request.user, conversation_id, message_id)
    return JsonResponse({"clips": _clips_json(voice.message_clips(message))})


@require_POST
@login_required
def message_speak(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> JsonResponse:
    """Speak a finished reply: 202 {"queued": n} (audio events follow), or 200 {"clips": [urls]}
    when it has been spoken already."""
    message = voice.reply_get_for_user(request.user, conversation_id, message_id)
    clips = voice.message_clips(message)
    if clips:
        return JsonResponse({"clips": [clip.url for clip in clips]})
    try:
        queued = voice.message_speak(request.user, message)
    except AppError as exc:
        if exc.code == "rate_limited":
            raise ratelimits.RateLimited(voice.RATE_SCOPE, exc.retry_after or 60) from exc
        status = 409 if exc.code == "busy" else 503
        return JsonResponse({"error": exc.code, "message": exc.message}, status=status)
    return JsonResponse({"queued": queued}, status=202)


@require_GET
@login_required
def voices(request: AuthenticatedHttpRequest) -> JsonResponse:
    """The speech server's voices for the settings' suggestions, and whether there is one at all
    (without one the page says voice needs a back end)."""
    available = voice.voice_available()
    try:
        names = voice.voice_choices() if available else []
    except SpeechError:
        names = []  # the server is down or lists none: the suggestions stay
    return JsonResponse({"available": available, "voices": names})
