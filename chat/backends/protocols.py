"""The interface of each kind of back end, and the sampler settings an LLM call may carry.

A provider (``chat.backends.registry``) builds an object satisfying one of
these from a ``Connection`` row. The pipeline knows only these interfaces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

from chat.images import ImageRequest, ProgressCallback
from chat.llm import Completion

# Every sampler field a preset can hold, by its wire name.
SAMPLER_FIELDS = (
    "temperature",
    "top_p",
    "min_p",
    "top_k",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "max_tokens",
    "stop",
)


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampler values for one reply; ``None`` (or an empty ``stop``) means "not sent"."""

    temperature: float | None = None
    top_p: float | None = None
    min_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()

    def wire(self, accepts: frozenset[str]) -> dict:
        """The fields a provider accepts and this preset sets, by their wire names."""
        out: dict = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in accepts and value not in (None, ()):
                out[field.name] = list(value) if field.name == "stop" else value
        return out


@runtime_checkable
class ReplyStream(Protocol):
    """What ``stream_chat`` returns: iterate for text; ``result`` once it ended; ``close`` to stop."""

    def __iter__(self) -> Iterator[str]: ...

    def pieces(self, heartbeat: Callable[[], None] | None = None) -> Iterator[str]:
        """The visible text as it arrives; ``heartbeat`` is called on a clock meanwhile (cancel checks)."""
        ...

    @property
    def result(self) -> Completion: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncReplyStream(Protocol):
    """What ``astream_chat`` returns, for ``chat.stream_loop``: ``async for`` the text;
    ``result`` once it ended; ``aclose`` stops it and closes the upstream request at once."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    def pieces(self, heartbeat: Callable[[], Awaitable[None] | None] | None = None) -> AsyncIterator[str]:
        """The visible text as it arrives; ``heartbeat`` (plain or async) is called on a clock."""
        ...

    @property
    def result(self) -> Completion: ...

    @property
    def text(self) -> str: ...

    @property
    def reasoning(self) -> str: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LLMBackend(Protocol):
    def complete(self, messages: list[dict], *, max_tokens: int, temperature: float) -> Completion: ...

    def stream_chat(
        self, messages: list[dict], *, max_tokens: int, temperature: float, avoid: Sequence[str] = ()
    ) -> ReplyStream:
        """A streamed reply. ``avoid``: the earlier versions of a reply written again; a back end
        that samples varies its replies anyway, a deterministic one (the demo) must pick another."""
        ...

    async def astream_chat(
        self, messages: list[dict], *, max_tokens: int, temperature: float, avoid: Sequence[str] = ()
    ) -> AsyncReplyStream:
        """``stream_chat`` on an event loop: the same reply, read without a thread of its own."""
        ...


@runtime_checkable
class ImageBackend(Protocol):
    def generate(self, request: ImageRequest, on_progress: ProgressCallback | None = None) -> str:
        """The picture as base64 text (validated by ``media`` before anything keeps it).

        ``on_progress(percent)`` is called as the server reports progress, when it does."""
        ...


@runtime_checkable
class SpeechBackend(Protocol):
    """Text to speech: the audio of ``text`` (WAV, MP3 or Ogg, checked by ``chat.speech.audio_info``).

    ``voice`` blank: the connection's default voice; ``speed`` 0.5-2.0."""

    def synthesize(self, text: str, *, voice: str = "", speed: float = 1.0) -> bytes: ...

    def voices(self) -> list[str]: ...


@runtime_checkable
class TranscriptionBackend(Protocol):
    """Speech to text: ``content_type`` is the sniffed container's, ``language`` an ISO 639-1
    code (None: the server guesses)."""

    def transcribe(self, audio: bytes, *, content_type: str, language: str | None = None) -> str: ...
