"""Which back end serves a companion, and the cached client that speaks to it.

Resolution, for each kind (LLM, images):

1. the companion's own choice (``CompanionBackend``), when its connection is enabled;
2. else the default connection of the kind (``is_default``; else the environment's row;
   else the oldest enabled row);
3. else the offline demo back end (``companionhub.backends_info`` tells pages so).

Speech (``audio``) and speech to text (``transcription``) are not per companion:
``speech_backend()`` and ``transcription_choice()`` are the default connection of
their kind, or None -- there is no demo voice.

Cost: the companion's choice is one small query per pipeline step (with its
connection and preset joined); the default connection is memoised per process
for ``DEFAULT_TTL`` seconds (a moderator's change reaches other processes
within that). Clients are cached per thread by ``(connection id, updated_at)``:
one ``requests.Session`` (one connection pool) per thread and connection,
rebuilt when the row is saved. Their async calls (``astream_chat``) share
one ``aiohttp`` pool per event loop instead (``chat.aio_session``). A companion's model and preset ride on a
shallow copy of that client for one step (``OpenAIChatClient.configured``).

Circuit breakers are per connection (``llm:<id>``, ``image:<id>``); the demo
back ends keep the kind's own name (``llm``, ``images``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat.backend_models import CompanionBackend, Connection, SamplerPreset
from chat.backends.env import connection_sync_from_env, env_fingerprint
from chat.backends.protocols import (
    ImageBackend,
    LLMBackend,
    Sampling,
    SpeechBackend,
    TranscriptionBackend,
)
from chat.backends.registry import (
    REGISTRY,
    BackendUnavailable,
    DemoImagesProvider,
    DemoLLMProvider,
    provider_for,
)
from chat.circuit import CircuitBreaker
from chat.images import ImageRequest

__all__ = [
    "REGISTRY",
    "BackendUnavailable",
    "ImageBackend",
    "ImageChoice",
    "LLMBackend",
    "LLMChoice",
    "Sampling",
    "SpeechBackend",
    "SpeechChoice",
    "TranscriptionBackend",
    "all_breakers",
    "backend_name",
    "backend_state",
    "breaker_for",
    "connections_changed",
    "default_connection",
    "get_image_backend",
    "get_llm_backend",
    "image_breaker",
    "image_for_companion",
    "image_request",
    "llm_breaker",
    "llm_for_companion",
    "provider_for",
    "reset_backends",
    "sampling_from_preset",
    "speech_backend",
    "sync_environment",
    "transcription_choice",
    "transcription_connection",
]

DEFAULT_TTL = 5.0  # seconds a process trusts its memo of the default connection of a kind
DEMO_BREAKERS: dict[str, str] = {Connection.Kind.LLM: "llm", Connection.Kind.IMAGE: "images"}

_local = threading.local()  # per thread: {(connection id, updated_at): client}
_defaults_lock = threading.Lock()
# kind -> (monotonic expiry, environment fingerprint, connection or None)
_defaults: dict[str, tuple[float, int, Connection | None]] = {}
_synced_fingerprint: int | None = None


def reset_backends() -> None:
    """Forget clients, the default-connection memo and the environment sync (settings changed)."""
    global _synced_fingerprint
    _local.__dict__.clear()
    with _defaults_lock:
        _defaults.clear()
        _synced_fingerprint = None


def connections_changed() -> None:
    """A connection row was written in this process: look the defaults up again."""
    with _defaults_lock:
        _defaults.clear()


def sync_environment() -> None:
    """Sync the environment's rows now (process start, ``manage.py sync_connections``)."""
    global _synced_fingerprint
    fingerprint = env_fingerprint()
    connection_sync_from_env()
    _synced_fingerprint = fingerprint
    connections_changed()


def _ensure_env_synced() -> int:
    """Sync the environment's rows once per process (and per change of the settings it reads)."""
    global _synced_fingerprint
    fingerprint = env_fingerprint()
    if _synced_fingerprint != fingerprint:
        connection_sync_from_env()
        _synced_fingerprint = fingerprint
    return fingerprint


def default_connection(kind: str) -> Connection | None:
    """The enabled connection a companion without its own choice uses; None: the demo."""
    fingerprint = _ensure_env_synced()
    now = time.monotonic()
    with _defaults_lock:
        memo = _defaults.get(kind)
        if memo is not None and memo[0] > now and memo[1] == fingerprint:
            return memo[2]
    row = (
        Connection.objects.filter(kind=kind, enabled=True).order_by("-is_default", "-from_env", "pk").first()
    )
    with _defaults_lock:
        _defaults[kind] = (now + DEFAULT_TTL, fingerprint, row)
    return row


def _client(connection: Connection | None, kind: str) -> Any:
    if connection is None:
        demo = DemoLLMProvider if kind == Connection.Kind.LLM else DemoImagesProvider
        key: tuple = ("demo", kind, settings.DEMO_LLM_TOKEN_DELAY)
        build = lambda: demo.build(Connection(kind=kind, name="demo", provider="demo"))  # noqa: E731
    else:
        key = (connection.pk, connection.updated_at)
        build = lambda: provider_for(connection).build(connection)  # noqa: E731
    cache: dict = _local.__dict__.setdefault("clients", {})
    client = cache.get(key)
    if client is None:
        # A saved row has a new updated_at: drop this thread's older client of the same row.
        for stale in [k for k in cache if k[0] == key[0]]:
            del cache[stale]
        client = cache[key] = build()
    return client


def breaker_for(connection: Connection | None, kind: str) -> CircuitBreaker:
    name = DEMO_BREAKERS[kind] if connection is None else f"{kind}:{connection.pk}"
    return CircuitBreaker(
        name,
        threshold=settings.CIRCUIT_FAILURE_THRESHOLD,
        reset_seconds=settings.CIRCUIT_RESET_SECONDS,
        close_after=settings.CIRCUIT_CLOSE_AFTER,
    )


def sampling_from_preset(preset: SamplerPreset | None) -> Sampling | None:
    if preset is None:
        return None
    return Sampling(
        temperature=preset.temperature,
        top_p=preset.top_p,
        min_p=preset.min_p,
        top_k=preset.top_k,
        repetition_penalty=preset.repetition_penalty,
        frequency_penalty=preset.frequency_penalty,
        presence_penalty=preset.presence_penalty,
        max_tokens=preset.max_tokens,
        stop=tuple(s for s in preset.stop if isinstance(s, str) and s)[:4]
        if isinstance(preset.stop, list)
        else (),
    )


def scrub_key[E: Exception](connection: Connection | None, error: E) -> E:
    """Take the connection's key out of an error's text (a server may echo it in a 4xx body),
    before the text reaches an error frame, the run's ``error_text`` or a log line."""
    try:
        key = connection.api_key if connection is not None else ""
    except Exception:  # an unreadable key cannot be in the text either
        key = ""
    if key and len(key) >= 4:
        if isinstance(getattr(error, "message", None), str):
            error.message = error.message.replace(key, "[key]")  # type: ignore[attr-defined]
        error.args = tuple(a.replace(key, "[key]") if isinstance(a, str) else a for a in error.args)
    return error


@dataclass(frozen=True)
class LLMChoice:
    """The LLM one companion uses now: its client (model and preset applied), breaker and label."""

    connection: Connection | None
    client: Any
    breaker: CircuitBreaker
    model: str
    sampling: Sampling | None

    @property
    def served_by(self) -> str:
        """For the usage row: which connection and model served the run (no key, no URL)."""
        if self.connection is None:
            return "demo"
        return f"{self.connection.name} / {self.model}"[:200]

    def scrub[E: Exception](self, error: E) -> E:
        return scrub_key(self.connection, error)

    def max_tokens(self, default: int) -> int:
        if self.sampling is not None and self.sampling.max_tokens:
            return int(self.sampling.max_tokens)
        return default

    def temperature(self, default: float) -> float:
        if self.sampling is not None and self.sampling.temperature is not None:
            return float(self.sampling.temperature)
        return default


@dataclass(frozen=True)
class ImageChoice:
    connection: Connection | None
    client: Any
    breaker: CircuitBreaker

    def scrub[E: Exception](self, error: E) -> E:
        return scrub_key(self.connection, error)


def _choice(companion_id: int | None) -> CompanionBackend | None:
    if companion_id is None:
        return None
    return (
        CompanionBackend.objects.select_related("llm_connection", "preset", "image_connection")
        .filter(companion_id=companion_id)
        .first()
    )


def _usable(connection: Connection | None) -> bool:
    return connection is not None and connection.enabled


def llm_for_companion(companion_id: int | None, *, with_preset: bool = True) -> LLMChoice:
    """The companion's LLM: its chosen connection, model and preset, else the defaults.

    ``with_preset=False`` for the scene analysis: it asks for JSON at a low
    temperature, whatever sampler settings the companion's replies use.
    """
    choice = _choice(companion_id)
    connection = choice.llm_connection if choice is not None and _usable(choice.llm_connection) else None
    own_model = bool(connection is not None and choice is not None and choice.model)
    if connection is None:
        connection = default_connection(Connection.Kind.LLM)
    client = _client(connection, Connection.Kind.LLM)
    model = (choice.model if own_model and choice is not None else "") or (
        connection.default_model if connection else ""
    )
    sampling = sampling_from_preset(choice.preset) if with_preset and choice is not None else None
    configured = getattr(client, "configured", None)
    if configured is not None:
        accepts = provider_for(connection).accepts if connection is not None else frozenset()
        wire = sampling.wire(accepts - {"temperature", "max_tokens"}) if sampling else {}
        client = configured(model=model or None, sampling=wire)
    return LLMChoice(connection, client, breaker_for(connection, Connection.Kind.LLM), model, sampling)


def image_for_companion(companion_id: int | None) -> ImageChoice:
    choice = _choice(companion_id)
    connection = choice.image_connection if choice is not None and _usable(choice.image_connection) else None
    if connection is None:
        connection = default_connection(Connection.Kind.IMAGE)
    return ImageChoice(
        connection, _client(connection, Connection.Kind.IMAGE), breaker_for(connection, Connection.Kind.IMAGE)
    )


@dataclass(frozen=True)
class SpeechChoice:
    """The audio connection that speaks replies, its speech client and breaker (``audio:<id>``)."""

    connection: Connection
    client: Any
    breaker: CircuitBreaker

    @property
    def served_by(self) -> str:
        """For the usage row: the connection and speech model (no key, no URL)."""
        return f"{self.connection.name} / {getattr(self.client, 'model', '')}"[:200]

    def scrub[E: Exception](self, error: E) -> E:
        return scrub_key(self.connection, error)


def speech_backend() -> SpeechChoice | None:
    """The default audio connection's speech client; None when no audio back end is set up
    (there is no demo voice: voice is then unavailable, and pages say it needs a back end)."""
    connection = default_connection(Connection.Kind.AUDIO)
    if connection is None:
        return None
    return SpeechChoice(
        connection, _client(connection, Connection.Kind.AUDIO), breaker_for(connection, Connection.Kind.AUDIO)
    )


@dataclass(frozen=True)
class TranscriptionChoice:
    """The speech-to-text back end: its connection, client and breaker."""

    connection: Connection
    client: Any
    breaker: CircuitBreaker

    @property
    def served_by(self) -> str:
        """For the usage row: which connection and model heard it (no key, no URL)."""
        model = getattr(self.client, "model", "") or self.connection.default_model
        return f"{self.connection.name} / {model}"[:200]

    def scrub[E: Exception](self, error: E) -> E:
        return scrub_key(self.connection, error)


def transcription_connection() -> Connection | None:
    """The speech-to-text connection (its own kind), or None when there is none."""
    return default_connection(Connection.Kind.TRANSCRIPTION)


def transcription_choice() -> TranscriptionChoice | None:
    """The client that turns recordings into text, or None when no connection can."""
    connection = transcription_connection()
    if connection is None:
        return None
    kind = Connection.Kind.TRANSCRIPTION
    return TranscriptionChoice(connection, _client(connection, kind), breaker_for(connection, kind))


# --- the default back ends, for callers without a companion -------------------------


def get_llm_backend() -> Any:
    return llm_for_companion(None).client


def get_image_backend() -> Any:
    return image_for_companion(None).client


def llm_breaker() -> CircuitBreaker:
    """The breaker of the default LLM connection (``llm`` for the demo)."""
    return breaker_for(default_connection(Connection.Kind.LLM), Connection.Kind.LLM)


def image_breaker() -> CircuitBreaker:
    return breaker_for(default_connection(Connection.Kind.IMAGE), Connection.Kind.IMAGE)


def all_breakers() -> list[CircuitBreaker]:
    """Every connection's breaker and the demo ones (the admin's reset action)."""
    rows = Connection.objects.all()  # every kind has a breaker
    return [breaker_for(None, kind) for kind in DEMO_BREAKERS] + [breaker_for(row, row.kind) for row in rows]


def backend_name(kind: str) -> str:
    """The provider of the default connection of ``kind`` ("llm", "image"); "demo" without one."""
    connection = default_connection(kind)
    return connection.provider if connection is not None else "demo"


def backend_state(kind: str) -> dict[str, Any]:
    """/healthz's ``llm`` / ``images`` check: the default connection and its breaker."""
    connection = default_connection(kind)
    breaker = breaker_for(connection, kind).status()
    name = connection.provider if connection is not None else "demo"
    if breaker.state == "open":
        raise RuntimeError(
            f"{name}: circuit open after {breaker.failures} failures, retry in {breaker.retry_in} s"
        )
    report: dict[str, Any] = {"backend": name, "circuit": breaker.state}
    if connection is not None:
        report["connection"] = connection.name
    return report


def image_request(prompt: str, negative_prompt: str) -> ImageRequest:
    return ImageRequest(
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=settings.IMAGE_WIDTH,
        height=settings.IMAGE_HEIGHT,
        steps=settings.IMAGE_STEPS,
        cfg_scale=settings.IMAGE_CFG_SCALE,
        sampler=settings.IMAGE_SAMPLER,
    )
