"""Stand-ins for the voice endpoints, for the browser tests of the chat page's voice.

The site of ``test_voice.py`` runs with ``tests.browser.voice_settings``, whose
URLconf is this module: these views first, then the site's own. They answer at
the paths and in the shapes the protocol document gives (docs/websocket.md,
"Voice") — clips at ``/chat/audio/<id>/``, a reply's clips at
``…/messages/<id>/audio/``, ``…/speak/``, ``/chat/transcribe/`` — so the page
is tested against the contract, with short WAV tones for clips.

One more path is the test's own handle: ``/test-voice/c/<id>/live/`` publishes
"audio" events for the conversation's newest reply (the one being written) in
the order asked, as the text-to-speech step would, through the real channel
layer to the real consumer. Clips live in this process's memory.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import struct
import threading
import wave
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat import events
from chat.models import Message, PipelineRun
from chat.publish import publish
from companionhub import body_limits
from companionhub.urls import urlpatterns as site_urlpatterns

CLIPS_PER_REPLY = 3
CLIP_MS = 350
RATE = 8000
TRANSCRIPT = "Hello from the microphone"
# What a recording must start with: WebM/Matroska (EBML), Ogg, or MP4's "ftyp" box.
AUDIO_MAGIC = (b"\x1a\x45\xdf\xa3", b"OggS")


@dataclass(frozen=True)
class Clip:
    id: int
    owner_id: int
    message_id: int
    index: int
    data: bytes


# The site's ASGI guard refuses multipart bodies except at the upload views it lists; the real
# transcription view must be listed there too (as "chat:transcribe"). The stand-in is, here.
TRANSCRIBE_NAME = "voice-double-transcribe"
body_limits.FILE_LIMITS[TRANSCRIBE_NAME] = ("IMAGE_MAX_BYTES", "recordings")

_clips: dict[int, Clip] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def tone(index: int) -> bytes:
    """A short sine tone, a different pitch per index: a real, playable WAV file."""
    frames = int(RATE * CLIP_MS / 1000)
    freq = 330 + 110 * index
    samples = (int(6000 * math.sin(2 * math.pi * freq * n / RATE)) for n in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return out.getvalue()


def _owned_message(request: HttpRequest, conversation_id: int, message_id: int) -> Message:
    message = Message.objects.filter(
        pk=message_id, conversation_id=conversation_id, conversation__owner=request.user, role="assistant"
    ).first()
    if message is None:
        raise Http404("No such reply.")
    return message


def _clips_of(message_id: int) -> list[Clip]:
    with _lock:
        return sorted((c for c in _clips.values() if c.message_id == message_id), key=lambda c: c.index)


def _make_clips(owner_id: int, message_id: int) -> list[Clip]:
    made = []
    with _lock:
        for index in range(CLIPS_PER_REPLY):
            clip = Clip(next(_ids), owner_id, message_id, index, tone(index))
            _clips[clip.id] = clip
            made.append(clip)
    return made


def _event(clip: Clip, run_id: str | None) -> dict:
    return {
        "type": "audio",
        "run_id": run_id,
        "message_id": clip.message_id,
        "index": clip.index,
        "url": f"/chat/audio/{clip.id}/",
        "duration_ms": CLIP_MS,
        "last": clip.index == CLIPS_PER_REPLY - 1,
    }


@require_GET
@login_required
def clip_file(request: HttpRequest, clip_id: int) -> HttpResponse:
    clip = _clips.get(clip_id)
    if clip is None or clip.owner_id != request.user.pk:
        raise Http404("No such clip.")
    return HttpResponse(clip.data, content_type="audio/wav")


@require_GET
@login_required
def reply_clips(request: HttpRequest, conversation_id: int, message_id: int) -> JsonResponse:
    message = _owned_message(request, conversation_id, message_id)
    listed = [
        {"index": c.index, "url": f"/chat/audio/{c.id}/", "duration_ms": CLIP_MS}
        for c in _clips_of(message.pk)
    ]
    return JsonResponse({"clips": listed})


@require_POST
@login_required
def reply_speak(request: HttpRequest, conversation_id: int, message_id: int) -> JsonResponse:
    message = _owned_message(request, conversation_id, message_id)
    have = _clips_of(message.pk)
    if have:
        return JsonResponse({"clips": [f"/chat/audio/{c.id}/" for c in have]})
    made = _make_clips(request.user.pk, message.pk)
    # Out of order on purpose: the page plays by index.
    publish(conversation_id, *(_event(c, None) for c in reversed(made)))
    return JsonResponse({"queued": len(made)}, status=202)


@require_POST
@login_required
def transcribe(request: HttpRequest) -> JsonResponse:
    upload = request.FILES.get("audio")
    if upload is None:
        return JsonResponse({"error": "No recording was sent."}, status=400)
    head = upload.read(4)
    if not head.startswith(AUDIO_MAGIC):
        return JsonResponse({"error": f"That is not a recording we can read ({head!r})."}, status=415)
    return JsonResponse({"text": TRANSCRIPT})


@csrf_exempt  # the test's own handle, called from the test with the page's cookies
@require_POST
@login_required
def publish_live(request: HttpRequest, conversation_id: int) -> JsonResponse:
    """Clips for the conversation's newest reply, published in ``order`` (or ``fail``: audio_failed)."""
    asked = json.loads(request.body or b"{}")
    run = (
        PipelineRun.objects.filter(conversation_id=conversation_id, conversation__owner=request.user)
        .exclude(reply=None)
        .order_by("-created_at")
        .first()
    )
    if run is None:
        raise Http404("No reply yet.")
    run_id = str(run.pk)
    if asked.get("fail"):
        failure = events.error("audio_failed", "The voice failed.", run_id=run_id)
        publish(conversation_id, {**failure, "message_id": run.reply_id})
        return JsonResponse({"message_id": run.reply_id})
    made = {c.index: c for c in _make_clips(request.user.pk, run.reply_id)}
    order = asked.get("order") or sorted(made)
    publish(conversation_id, *(_event(made[i], run_id) for i in order))
    return JsonResponse({"message_id": run.reply_id})


urlpatterns = [
    path("chat/audio/<int:clip_id>/", clip_file),
    path("chat/c/<int:conversation_id>/messages/<int:message_id>/audio/", reply_clips),
    path("chat/c/<int:conversation_id>/messages/<int:message_id>/speak/", reply_speak),
    path("chat/transcribe/", transcribe, name=TRANSCRIBE_NAME),
    path("test-voice/c/<int:conversation_id>/live/", publish_live),
    *site_urlpatterns,
]
