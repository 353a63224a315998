"""Companions that speak: each sentence of a reply synthesised while the reply still streams.

The reply step holds a ``ReplyVoice`` (``reply_voice``): it feeds the streamed
text to a ``chat.sentences.SentenceCutter`` and, for each complete sentence,
sends one ``chat.speak`` task (``steps.SPEAK``, the ``voice`` queue). Sending
costs one broker write per sentence, nothing per token; a broker that refuses
costs the voice of that reply, never the reply. The rest of the text goes at
the end of the reply, marked ``last``.

``speak_sentence`` (the task's body) skips a sentence of a run that was
cancelled or failed (a cancel stops pending synthesis) or of an earlier attempt
of the reply step, synthesises it with the companion's voice and speed, stores
a private ``SpeechClip``, charges the characters to the owner's usage (a
``voice`` ledger row, ``accounts.usage.usage_record_speech``) and publishes an
``audio`` event. Whatever fails (no back end, an open breaker, the ``voice``
rate limit, an error or a timeout of the server) publishes one ``audio_failed``
note for the reply and silences its remaining sentences; the reply goes on as
text. Nothing is retried: a sentence spoken late is worse than one not spoken.

Clips are numbered by their sentence (``index``) and may finish out of order
(the voice worker has threads); clients play them by index.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.language import user_language
from accounts.models import User
from accounts.usage import usage_record_speech
from chat import events, steps
from chat.backends import speech_backend
from chat.models import Message, PipelineRun, SpeechClip
from chat.publish import EventPublisher
from chat.sentences import SentenceCutter, is_speakable
from chat.speech import SpeechError, audio_info
from chat.speech_files import clip_storage_name
from companionhub import ratelimits
from companionhub.errors import AppError
from companions.models import Companion
from companions.selectors import companion_settings

log = structlog.get_logger(__name__)

AUDIO_FAILED_MESSAGE = gettext_noop("Voice is unavailable right now; the reply is text only.")
RATE_SCOPE = "voice"
FAILED_TTL = 3600  # seconds a reply's "voice failed" mark is kept (longer than any reply)
MAX_CLIPS_PER_REPLY = 500  # indexes are small integers; a reply longer than this is not spoken further


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """How one companion's replies are spoken to one user."""

    companion_voice: bool  # the companion has a voice (its setting)
    read_aloud: bool  # the user wants replies read aloud (their setting)
    voice: str  # blank: the back end's default voice
    speed: float
    actions: str  # "skip" | "read": what is done with *actions*

    @property
    def speaks(self) -> bool:
        """Are this companion's replies spoken to this user as they are written?"""
        return self.companion_voice and self.read_aloud


def voice_settings_for(companion: Companion | int, user: User) -> VoiceSettings:
    """The companion's voice (config ``voice_enabled``, ``voice``, ``voice_speed``) and the user's
    ``read_aloud`` / ``voice_actions``; reads only those keys of the companion's config."""
    config = companion_settings(companion if isinstance(companion, int) else companion.pk)
    return VoiceSettings(
        companion_voice=bool(config["voice_enabled"]),
        read_aloud=bool(user.read_aloud),
        voice=str(config["voice"]),
        speed=float(config["voice_speed"]),
        actions=user.voice_actions if user.voice_actions in ("skip", "read") else "skip",
    )


def voice_available() -> bool:
    """Is an audio back end set up at all? (Without one the settings say voice needs one.)"""
    return speech_backend() is not None


def voice_choices() -> list[str]:
    """The voices the audio back end offers (cached an hour), for the settings' select; empty
    without a back end."""
    speech = speech_backend()
    if speech is None:
        return []
    key = f"voice:voices:{speech.connection.pk}:{speech.connection.updated_at.timestamp()}"
    names = cache.get(key)
    if names is None:
        names = speech.client.voices()
        cache.set(key, names, 3600)
    return list(names)


# --- the failure note, once per reply ------------------------------------------------------


def _failed_key(run_id: str | None, message_id: int) -> str:
    return f"voice:failed:{run_id or f'message-{message_id}'}"


def _voice_failed(run_id: str | None, message_id: int) -> bool:
    try:
        return bool(cache.get(_failed_key(run_id, message_id)))
    except Exception:  # the cache is down: try to speak; a real failure is still reported
        return False


def _publisher(message: Message) -> EventPublisher:
    stamp: dict[str, Any] = {}
    if message.sender_id is not None:
        stamp = {"companion_id": message.sender_id, "sender": message.sender.name if message.sender else ""}
    return EventPublisher(message.conversation_id, stamp=stamp)


def voice_give_up(message: Message, *, run_id: str | None, reason: str) -> None:
    """Silence the rest of the reply and tell its owner once (the first caller wins)."""
    try:
        first = cache.add(_failed_key(run_id, message.pk), 1, FAILED_TTL)
    except Exception:
        first = True
    log.warning("voice_failed", run_id=run_id, message_id=message.pk, reason=reason, noted=first)
    if not first:
        return
    with translation.override(user_language(message.conversation.owner)):
        text = _(AUDIO_FAILED_MESSAGE)
    with _publisher(message) as publisher:
        publisher.send(events.audio_failed(text, message_id=message.pk, run_id=run_id))


# --- the streaming side ----------------------------------------------------------------------


class ReplyVoice:
    """Cuts a streaming reply into sentences and sends one ``chat.speak`` task per sentence."""

    def __init__(
        self, *, run_id: str | None, message_id: int, attempt: int, actions: str, start_index: int = 0
    ) -> None:
        self.run_id = run_id
        self.message_id = message_id
        self.attempt = attempt
        self.index = start_index
        self.sent = 0
        self.active = True
        self.cutter = SentenceCutter(
            actions="read" if actions == "read" else "skip",
            min_chars=settings.TTS_MIN_SENTENCE_CHARS,
            max_chars=max(settings.TTS_MAX_CHARS, 2 * settings.TTS_MIN_SENTENCE_CHARS),
        )

    def feed(self, piece: str) -> None:
        if self.active:
            for sentence in self.cutter.feed(piece):
                self._send(sentence, last=False)

    def finish(self, *, clean: Any = None) -> None:
        """The reply ended: the rest is its last sentence (``clean`` tidies it, as the reply)."""
        if not self.active:
            return
        rest = "".join(self.cutter.flush())
        if clean is not None:
            rest = clean(rest)
        self._send(rest, last=True)
        self.active = False

    def stop(self) -> None:
        self.active = False

    def _send(self, sentence: str, *, last: bool) -> None:
        text = sentence.strip()
        if not is_speakable(text) or self.index >= MAX_CLIPS_PER_REPLY:
            return
        try:
            steps.speak_signature(
                self.run_id, self.message_id, self.index, text, last=last, attempt=self.attempt
            ).apply_async()
        except Exception as exc:  # a broker hiccup costs the voice of this reply, never the reply
            log.warning("speak_not_sent", run_id=self.run_id, error=type(exc).__name__)
            self.active = False
            return
        self.index += 1
        self.sent += 1


def reply_voice(run: PipelineRun, companion: Companion, *, continuing: bool) -> ReplyVoice | None:
    """The voice of the reply ``run`` is writing, or None when it is not spoken.

    A reply written afresh loses the clips of its earlier text; a continued one
    goes on after its clips. Voice that is on but cannot work (no back end, an
    open breaker, the rate limit reached) is said once, and the reply is text only.
    """
    if run.reply_id is None:
        return None
    if not continuing:
        message_clips_drop(run.reply_id)  # spoken text that is no longer the reply's
    owner = companion.owner
    voice = voice_settings_for(companion, owner)
    if not voice.speaks:
        return None
    speech = speech_backend()
    reason = ""
    if speech is None:
        reason = "no_backend"
    elif not speech.breaker.allow():
        reason = "circuit_open"
    elif ratelimits.peek(RATE_SCOPE, _rate_key(owner.pk)).limited:
        reason = "rate_limited"
    if reason:
        message = Message.objects.select_related("conversation__owner", "sender").get(pk=run.reply_id)
        voice_give_up(message, run_id=str(run.pk), reason=reason)
        return None
    clips = SpeechClip.objects.filter(message_id=run.reply_id)
    newest = clips.order_by("-index").values_list("index", flat=True).first() if continuing else None
    start = 0 if newest is None else newest + 1
    return ReplyVoice(
        run_id=str(run.pk),
        message_id=run.reply_id,
        attempt=run.attempts,
        actions=voice.actions,
        start_index=start,
    )


def _rate_key(user_id: int) -> str:
    return f"user:{user_id}"


# --- the task's side ---------------------------------------------------------------------------


def _run_allows(run_id: str | None, attempt: int) -> bool:
    """A sentence of a run is spoken only while the run is live or completed, and only for the
    reply step's current attempt (an earlier attempt's text was thrown away)."""
    if run_id is None:
        return True
    row = PipelineRun.objects.filter(pk=run_id).values_list("status", "attempts").first()
    if row is None:
        return False
    status, attempts = row
    return status not in (PipelineRun.Status.CANCELLED, PipelineRun.Status.FAILED) and attempts == attempt


def speak_sentence(
    run_id: str | None, message_id: int, index: int, text: str, *, last: bool, attempt: int = 0
) -> SpeechClip | None:
    """Synthesise one sentence of a reply, store it, charge it and tell the conversation."""
    message = Message.objects.select_related("conversation__owner", "sender").filter(pk=message_id).first()
    if message is None or message.sender_id is None:
        return None  # deleted meanwhile (or not a reply)
    if not _run_allows(run_id, attempt) or _voice_failed(run_id, message_id):
        return None
    if SpeechClip.objects.filter(message_id=message_id, index=index).exists():
        return None  # a re-delivered task: spoken already
    owner = message.conversation.owner
    text = text[: settings.TTS_MAX_CHARS]
    if ratelimits.hit(RATE_SCOPE, _rate_key(owner.pk), record_label=owner.username).limited:
        voice_give_up(message, run_id=run_id, reason="rate_limited")
        return None
    speech = speech_backend()
    if speech is None:
        voice_give_up(message, run_id=run_id, reason="no_backend")
        return None
    if not speech.breaker.allow():
        voice_give_up(message, run_id=run_id, reason="circuit_open")
        return None
    assert message.sender is not None  # a reply has a sender (a check constraint)
    voice = voice_settings_for(message.sender_id, owner)
    try:
        audio = speech.client.synthesize(text, voice=voice.voice, speed=voice.speed)
        info = audio_info(audio)
    except SpeechError as exc:
        speech.breaker.record_failure()
        speech.scrub(exc)
        log.warning("speech_failed", run_id=run_id, code=exc.code, detail=exc.message)
        voice_give_up(message, run_id=run_id, reason=exc.code)
        return None
    speech.breaker.record_success()
    if not _run_allows(run_id, attempt):
        return None  # cancelled while it was spoken: nothing is kept after a cancel
    clip = _store_clip(message, run_id=run_id, index=index, text=text, audio=audio, info=info)
    if clip is None:
        return None
    usage_record_speech(
        user_id=owner.pk,
        companion_id=message.sender_id,
        companion_name=message.sender.name,
        characters=clip.chars,
        served_by=speech.served_by,
    )
    with _publisher(message) as publisher:
        publisher.send(events.audio(run_id, message.pk, index, clip.url, clip.duration_ms, last=last))
    log.info("speech_stored", run_id=run_id, message_id=message.pk, index=index, chars=clip.chars)
    return clip


def _store_clip(
    message: Message, *, run_id: str | None, index: int, text: str, audio: bytes, info: Any
) -> SpeechClip | None:
    name = clip_storage_name(message.conversation_id, info.extension)
    name = default_storage.save(name, ContentFile(audio))
    try:
        with transaction.atomic():
            return SpeechClip.objects.create(
                message=message,
                run_id=run_id,
                index=index,
                text=text,
                file=name,
                content_type=info.content_type,
                duration_ms=info.duration_ms,
                chars=len(text),
            )
    except IntegrityError:  # spoken twice at once, or the message went meanwhile
        default_storage.delete(name)
        return None
    except BaseException:
        default_storage.delete(name)  # a failed store leaves no file behind
        raise


def speak_crashed(run_id: str | None, message_id: int) -> None:
    """A fault on our side while speaking: the reply goes on as text, with the note."""
    message = Message.objects.select_related("conversation__owner", "sender").filter(pk=message_id).first()
    if message is not None:
        voice_give_up(message, run_id=run_id, reason="internal")


# --- on demand, and for replay -----------------------------------------------------------------


def reply_get_for_user(user: User, conversation_id: int, message_id: int) -> Message:
    """A finished reply of the user's own conversation, or 404."""
    return get_object_or_404(
        Message.objects.select_related("conversation__owner", "sender"),
        pk=message_id,
        conversation_id=conversation_id,
        conversation__owner=user,
        role=Message.Role.ASSISTANT,
    )


def message_clips(message: Message) -> list[SpeechClip]:
    return list(SpeechClip.objects.filter(message=message).order_by("index"))


def message_clips_drop(message_id: int) -> int:
    """Delete a message's clips, whose text it no longer says (regenerated, corrected, another
    version shown); how many went. Their files go after commit (``chat.signals``); Listen speaks
    the new text on demand (``message_speak``)."""
    deleted, _by_model = SpeechClip.objects.filter(message_id=message_id).delete()
    return deleted


def message_speak(user: User, message: Message) -> int:
    """Speak a finished reply that has no clips: one ``chat.speak`` per sentence; how many.

    Refused (``AppError``) while it is still being written, when no audio back end is set up,
    or past the ``voice`` rate limit."""
    if not message.is_complete:
        raise AppError("busy", _("The reply is still being written."))
    if speech_backend() is None:
        raise AppError("voice_unavailable", _("Voice needs an audio back end, and none is set up."))
    verdict = ratelimits.peek(RATE_SCOPE, _rate_key(user.pk))
    if verdict.limited:
        raise AppError(
            "rate_limited", _("You have used your voice limit for now."), retry_after=verdict.retry_after
        )
    with contextlib.suppress(Exception):  # asked again: try again (the cache may be down)
        cache.delete(_failed_key(None, message.pk))
    voice = ReplyVoice(run_id=None, message_id=message.pk, attempt=0, actions=user.voice_actions)
    voice.feed(message.content)
    voice.finish()
    return voice.sent
