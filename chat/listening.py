"""Push-to-talk: a user's recording checked, turned into text by the speech service, and charged.

``recording_transcribe`` is the one write: the view hands it the bytes the
upload handler kept in memory (``companionhub.uploads.MemoryOnlyUploadHandler``).
Nothing of the recording is stored, on disk or in the database: it goes to the
speech service and is dropped with the request.

Order of work, cheapest refusal first: the rate limit (``transcribe``; the view
counts before the body is read), the container and its length
(``media.audio_check``), a back end that can transcribe, its circuit breaker,
then the call.

Usage: a transcription is a ledger row of its own (``usage_record_extra``,
``kind`` "transcribe": ``UsageTransaction.run_status`` holds ten characters)
whose ``prompt_tokens`` are the recording's seconds, rounded up (one "token" a
second, from the container's header or its estimate), and ``completion_tokens``
the transcript's estimated tokens. It counts towards the monthly quota like
any other use, and the companion of a one-to-one chat gets it on its total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.utils.translation import gettext as _

from accounts.language import user_language
from accounts.models import User
from accounts.usage import usage_record_extra
from chat.backends import transcription_choice
from chat.llm import estimate_tokens
from chat.models import Conversation
from chat.selectors import conversation_members
from chat.transcription import TranscriptionError
from companionhub.errors import AppError
from media.audio_check import AudioInfo, AudioRejected, inspect_audio

log = structlog.get_logger(__name__)

USAGE_KIND = "transcribe"


class TranscriptionUnavailable(AppError):
    """No back end can transcribe now (none set up, resting, or failing): the view's 503."""


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    audio: AudioInfo
    language: str | None


def recording_language(*, user: User, conversation: Conversation | None, fallback: str | None) -> str:
    """The language the user speaks, as an ISO 639-1 code for the speech service.

    A one-to-one chat with a companion set to a language is held in it;
    otherwise the user's own language (their saved one, else the page's).
    """
    code = ""
    if conversation is not None:
        members = conversation_members(conversation)
        if len(members) == 1:
            code = members[0].reply_language
    code = code or user_language(user, fallback=fallback)
    return code.split("-")[0].lower()


def recording_transcribe(
    *, user: User, audio: bytes, conversation: Conversation | None = None, language: str | None = None
) -> Transcript:
    """The text of ``audio``; raises ``AudioRejected`` for a bad upload and
    ``TranscriptionUnavailable`` when no back end can answer."""
    info = inspect_audio(
        audio, max_bytes=settings.VOICE_UPLOAD_MAX_BYTES, max_seconds=settings.VOICE_UPLOAD_MAX_SECONDS
    )
    choice = transcription_choice()
    if choice is None:
        raise TranscriptionUnavailable(
            "unavailable",
            _(
                "Speech to text needs a back end: an administrator can set STT_BASE_URL "
                "or add a speech-to-text connection."
            ),
        )
    if not choice.breaker.allow():
        raise TranscriptionUnavailable(
            "circuit_open", _("Speech to text is resting after several failures. Try again in a minute.")
        )
    try:
        text = choice.client.transcribe(audio, content_type=info.content_type, language=language)
    except TranscriptionError as exc:
        choice.scrub(exc)
        # A refusal of this request (a 4xx) says nothing about the service's health.
        if exc.retryable or exc.code == "auth":
            choice.breaker.record_failure()
        log.warning(
            "transcription_failed",
            code=exc.code,
            status=exc.status,
            error=exc.message[:200],
            connection_id=choice.connection.pk,
        )
        raise TranscriptionUnavailable(exc.code, _failure_message(exc.code)) from exc
    choice.breaker.record_success()
    _charge(user=user, conversation=conversation, info=info, text=text, served_by=choice.served_by)
    log.info("transcribed", seconds=info.seconds, bytes=info.byte_size, format=info.format, chars=len(text))
    return Transcript(text=text, audio=info, language=language)


def _failure_message(code: str) -> str:
    if code == "timeout":
        return _("Speech to text did not answer in time. Try again.")
    if code in ("auth", "bad_request"):
        return _("Speech to text refused the recording. An administrator can check the audio connection.")
    return _("Speech to text is not available right now. Try again in a minute.")


def _charge(
    *, user: User, conversation: Conversation | None, info: AudioInfo, text: str, served_by: str
) -> None:
    companion_id, companion_name = None, ""
    if conversation is not None:
        members = conversation_members(conversation)
        if len(members) == 1:
            companion_id, companion_name = members[0].pk, members[0].name
    usage_record_extra(
        user_id=user.pk,
        companion_id=companion_id,
        companion_name=companion_name,
        kind=USAGE_KIND,
        prompt_tokens=max(1, math.ceil(info.seconds)),
        completion_tokens=estimate_tokens(text),
        served_by=served_by,
    )


__all__ = [
    "USAGE_KIND",
    "AudioRejected",
    "Transcript",
    "TranscriptionUnavailable",
    "recording_language",
    "recording_transcribe",
]
