"""Counting tokens as the companion's model counts them.

The prompt budget (``chat.budget``) needs a count of every part of the prompt in the
model's own tokens. Two ways, per LLM connection and model:

* **Exact**, from the server's tokenizer where it offers one: llama-server's
  ``POST {root}/tokenize {"content": text}`` answers ``{"tokens": [...]}``, vLLM's
  ``POST {root}/tokenize {"model": ..., "prompt": text}`` answers ``{"count": n, ...}``
  (``root`` is the base URL without its ``/v1``). Which of the two a connection speaks, or
  neither, is probed once and remembered in the Django cache (per connection row and its
  ``updated_at``, so an edited connection is probed again). Counts are cached by a hash
  of the text, in the process (a bounded LRU) and in the Django cache (with an expiry),
  so a long history is not tokenized again every turn.
* **Estimated** otherwise (hosted APIs, the demo, a tokenizer that failed): characters
  divided by a characters-per-token ratio. The ratio starts at the conservative
  ``CHAT_DEFAULT_CHARS_PER_TOKEN`` and is learned per (connection, model) from the
  ``usage.prompt_tokens`` the server reports for prompts whose size we know
  (``learn_from_usage``, called by the reply step): an exponential moving average kept in
  the Django cache. The read-modify-write is not atomic; two workers learning at once lose
  one sample, which an average shrugs off.

A chat template adds tokens around each message (role markers, separators):
``CHAT_TOKENS_PER_MESSAGE`` per message, and ``REPLY_PRIMING_TOKENS`` for the assistant
header the template opens for the reply.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
import structlog
from django.conf import settings
from django.core.cache import cache

from chat.backend_models import Connection
from chat.backends.registry import BackendUnavailable, provider_for

log = structlog.get_logger(__name__)

TOKENIZER = "tokenizer"
ESTIMATE = "estimate"
LLAMA, VLLM, NONE = "llama", "vllm", "none"

REPLY_PRIMING_TOKENS = 3
# Learned ratios are kept within these bounds: a server reporting nonsense cannot make the
# estimate absurd (one character a token is already a pessimistic CJK figure).
MIN_CHARS_PER_TOKEN = 1.0
MAX_CHARS_PER_TOKEN = 8.0
LEARN_MIN_CHARS = 200  # a prompt shorter than this says too little about the ratio
PROBE_TEXT = "Hello, world."
FAILED_PROBE_TTL = 300  # seconds a tokenizer that failed mid-turn is not asked again
RATIO_TTL = 30 * 86400


class TokenCounter(Protocol):
    def count(self, text: str) -> int:
        """Tokens ``text`` takes in the model's tokenizer (exact or a safe estimate)."""
        ...


def per_message_tokens() -> int:
    return int(settings.CHAT_TOKENS_PER_MESSAGE)


def messages_tokens(counter: TokenCounter, messages: Sequence[dict[str, str]]) -> int:
    """What ``messages`` take in the model's context: text, template overhead, reply header."""
    overhead = per_message_tokens()
    return sum(counter.count(str(m.get("content") or "")) + overhead for m in messages) + REPLY_PRIMING_TOKENS


# --- estimates ---------------------------------------------------------------------------


@dataclass
class EstimateCounter:
    """Characters divided by a ratio, rounded up."""

    chars_per_token: float
    kind: str = ESTIMATE

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token) if text else 0

    def prime(self, texts: Iterable[str]) -> None:
        """Nothing to fetch: an estimate is arithmetic."""


def _ratio_key(connection: Connection | None, model: str) -> str:
    who = "demo" if connection is None else str(connection.pk)
    digest = hashlib.sha1(model.encode(), usedforsecurity=False).hexdigest()[:16]
    return f"chat:tokens:ratio:{who}:{digest}"


def learned_ratio(connection: Connection | None, model: str) -> float:
    """The characters-per-token ratio learned for this connection and model, or the default."""
    stored = cache.get(_ratio_key(connection, model))
    if isinstance(stored, dict) and isinstance(stored.get("ratio"), int | float):
        return float(stored["ratio"])
    return float(settings.CHAT_DEFAULT_CHARS_PER_TOKEN)


def learn_from_usage(
    connection: Connection | None, model: str, *, messages: Sequence[dict[str, str]], prompt_tokens: int
) -> float | None:
    """Move the learned ratio towards what the server just reported for ``messages``.

    Returns the new ratio, or None when the sample says nothing (too short a prompt, or a
    count smaller than the template's own overhead).
    """
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    text_tokens = prompt_tokens - per_message_tokens() * len(messages) - REPLY_PRIMING_TOKENS
    if chars < LEARN_MIN_CHARS or text_tokens <= 0:
        return None
    observed = min(MAX_CHARS_PER_TOKEN, max(MIN_CHARS_PER_TOKEN, chars / text_tokens))
    key = _ratio_key(connection, model)
    stored = cache.get(key)
    if isinstance(stored, dict) and isinstance(stored.get("ratio"), int | float):
        rate = float(settings.CHAT_CHARS_PER_TOKEN_LEARN_RATE)
        ratio = (1 - rate) * float(stored["ratio"]) + rate * observed
        samples = int(stored.get("samples") or 0) + 1
    else:
        ratio, samples = observed, 1
    cache.set(key, {"ratio": ratio, "samples": samples}, RATIO_TTL)
    return ratio


# --- the server's tokenizer --------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    url: str
    shape: str  # LLAMA or VLLM
    model: str
    timeout: tuple[float, float]
    headers: dict[str, str] = field(default_factory=dict)


class TokenizeFailed(Exception):
    pass


_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def _tokenize(endpoint: Endpoint, text: str, *, shape: str | None = None) -> int:
    """One call to the server's tokenizer; TokenizeFailed for anything but a count."""
    shape = shape or endpoint.shape
    body: dict[str, Any] = {"content": text} if shape == LLAMA else {"model": endpoint.model, "prompt": text}
    try:
        response = _session().post(
            endpoint.url, json=body, timeout=endpoint.timeout, headers=endpoint.headers
        )
    except requests.RequestException as exc:
        raise TokenizeFailed(type(exc).__name__) from exc
    try:
        if response.status_code != 200:
            raise TokenizeFailed(f"HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise TokenizeFailed("not JSON") from exc
    finally:
        response.close()
    if not isinstance(payload, dict):
        raise TokenizeFailed("not an object")
    if shape == LLAMA:
        tokens = payload.get("tokens")
        if isinstance(tokens, list):
            return len(tokens)
    else:
        count = payload.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
    raise TokenizeFailed("no count in the answer")


def _probe_key(connection: Connection) -> str:
    stamp = connection.updated_at.isoformat() if connection.updated_at else ""
    return f"chat:tokens:probe:{connection.pk}:{stamp}"


def _endpoint_base(connection: Connection, model: str) -> Endpoint | None:
    try:
        provider = provider_for(connection)
    except BackendUnavailable:
        return None
    if not provider.may_tokenize:
        return None
    base = provider.base_url(connection)
    if not base:
        return None
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    headers = {"Authorization": f"Bearer {connection.api_key}"} if connection.has_api_key else {}
    return Endpoint(
        url=f"{root}/tokenize",
        shape="",
        model=model,
        timeout=(connection.connect_timeout, float(settings.CHAT_TOKENIZE_TIMEOUT)),
        headers=headers,
    )


def tokenizer_endpoint(connection: Connection | None, model: str) -> Endpoint | None:
    """The connection's tokenizer, probed on first use and remembered; None without one."""
    if connection is None or not settings.CHAT_TOKENIZE_ENABLED:
        return None
    base = _endpoint_base(connection, model)
    if base is None:
        return None
    key = _probe_key(connection)
    shape = cache.get(key)
    if shape is None:
        shape = NONE
        for candidate in (LLAMA, VLLM):
            try:
                _tokenize(base, PROBE_TEXT, shape=candidate)
            except TokenizeFailed:
                continue
            shape = candidate
            break
        cache.set(key, shape, int(settings.CHAT_TOKENIZE_PROBE_TTL))
        log.info("tokenizer_probed", connection_id=connection.pk, shape=shape)
    if shape not in (LLAMA, VLLM):
        return None
    return Endpoint(url=base.url, shape=shape, model=model, timeout=base.timeout, headers=base.headers)


class _LRU:
    """Counts by key, bounded: the oldest used go first."""

    def __init__(self) -> None:
        self.items: OrderedDict[str, int] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> int | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: str, value: int) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > int(settings.CHAT_TOKEN_COUNT_CACHE_SIZE):
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_counts = _LRU()


def forget_counts() -> None:
    """Empty this process's cache of counts (tests)."""
    _counts.clear()


class TokenizerCounter:
    """Exact counts from the server's tokenizer, cached; an estimate for what it cannot count.

    A failed call marks the tokenizer as failed for ``FAILED_PROBE_TTL`` seconds and the
    rest of this prompt is estimated (``kind`` turns to ``"estimate"``): a reply is never
    held up by a tokenizer that went away.
    """

    def __init__(self, endpoint: Endpoint, *, fallback: EstimateCounter, probe_key: str, prefix: str) -> None:
        self.endpoint = endpoint
        self.fallback = fallback
        self.probe_key = probe_key
        self.prefix = prefix
        self.kind = TOKENIZER
        self.calls = 0  # tokenizer requests made by this counter (tests, logs)

    def _key(self, text: str) -> str:
        return f"{self.prefix}:{hashlib.sha256(text.encode()).hexdigest()}"

    def prime(self, texts: Iterable[str]) -> None:
        """Bring the shared cache's counts of ``texts`` into this process in one round trip."""
        missing = {self._key(text) for text in texts if text}
        missing = {key for key in missing if _counts.get(key) is None}
        if not missing:
            return
        for key, value in cache.get_many(list(missing)).items():
            if isinstance(value, int):
                _counts.put(key, value)

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self.kind != TOKENIZER:
            return self.fallback.count(text)
        key = self._key(text)
        cached = _counts.get(key)
        if cached is None:
            stored = cache.get(key)
            cached = stored if isinstance(stored, int) else None
        if cached is None:
            try:
                self.calls += 1
                cached = _tokenize(self.endpoint, text)
            except TokenizeFailed as exc:
                log.warning("tokenizer_failed", url=self.endpoint.url, error=str(exc))
                cache.set(self.probe_key, NONE, FAILED_PROBE_TTL)
                self.kind = ESTIMATE
                return self.fallback.count(text)
            cache.set(key, cached, int(settings.CHAT_TOKEN_COUNT_TTL))
        _counts.put(key, cached)
        return cached


Counter = TokenizerCounter | EstimateCounter


def counter_for(connection: Connection | None, model: str) -> Counter:
    """The best counter for a companion's LLM connection and model."""
    fallback = EstimateCounter(learned_ratio(connection, model))
    endpoint = tokenizer_endpoint(connection, model)
    if endpoint is None or connection is None:
        return fallback
    model_digest = hashlib.sha1(model.encode(), usedforsecurity=False).hexdigest()[:16]
    return TokenizerCounter(
        endpoint,
        fallback=fallback,
        probe_key=_probe_key(connection),
        prefix=f"chat:tokens:count:{connection.pk}:{model_digest}",
    )
