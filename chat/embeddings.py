"""Embeddings from the LLM connection's OpenAI-compatible ``/v1/embeddings``.

``POST {base_url}/embeddings {"model", "input": [...]}`` answers
``{"data": [{"embedding": [...], "index": i}], "model", "usage": {"prompt_tokens"}}``
on llama-server (started with ``--embeddings``), vLLM, Ollama and OpenAI. Which model:
the connection's ``embedding_model``, else ``LLM_EMBEDDING_MODEL``, else the connection's
chat model. The offline demo back end computes deterministic vectors itself
(``chat.demo_llm.embed_text``).

Embeddings are a help, never a need: every failure is None with a warning, and callers
rank by full-text search instead. A server that says it has no embeddings (404, 405, 501,
or a 400 that says so) is remembered for ``EMBEDDINGS_UNSUPPORTED_SECONDS`` in the cache,
so a turn does not ask it again; an open circuit breaker is not asked at all (embeddings
never take the half-open trial a reply needs, and never count towards opening it).
What a call cost is in ``Embedded.prompt_tokens``: the caller charges it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache

from chat.backends import BackendUnavailable, LLMChoice, llm_for_companion
from chat.llm import LLMError, estimate_tokens
from companionhub import step_slots

log = structlog.get_logger(__name__)

MAX_DIMENSIONS = 8192
BATCH_SIZE = 32  # inputs per request
MAX_TEXTS = 256  # inputs per call of ``embed_texts``
MAX_TEXT_CHARS = 2000  # each input is cut to this (a memory is short; a query is recent messages)
CONNECT_TIMEOUT_CAP = 3.0
UNSUPPORTED_STATUSES = frozenset({404, 405, 501})


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    model: str  # which model made them: vectors of different models are never compared
    prompt_tokens: int = 0


class _Unusable(Exception):
    """The answer was not a usable set of embeddings (logged by the caller)."""


def embedding_model(llm: LLMChoice) -> str:
    """The model a companion's connection is asked for embeddings ('' for the demo)."""
    connection = llm.connection
    if connection is None:
        return ""
    return connection.embedding_model or settings.LLM_EMBEDDING_MODEL or connection.default_model or llm.model


def _unsupported_key(llm: LLMChoice, model: str) -> str:
    connection = llm.connection
    name = "demo" if connection is None else f"{connection.pk}:{connection.updated_at.timestamp()}"
    return f"chat:embeddings:none:{name}:{model}"[:240]


def _says_unsupported(error: LLMError) -> bool:
    if error.status in UNSUPPORTED_STATUSES:
        return True
    message = error.message.lower()
    return error.status == 400 and "support" in message and "embed" in message


def embed_texts(companion_id: int, texts: list[str]) -> Embedded | None:
    """Vectors for ``texts`` from the companion's LLM connection, or None when it has no
    embeddings endpoint or the call fails (callers fall back to full-text ranking)."""
    if not texts:
        return None
    if len(texts) > MAX_TEXTS:
        raise ValueError(f"at most {MAX_TEXTS} texts per call")
    inputs = [text[:MAX_TEXT_CHARS] or " " for text in texts]
    try:
        llm = llm_for_companion(companion_id, with_preset=False)
    except BackendUnavailable as exc:
        log.warning("embeddings_unavailable", companion_id=companion_id, error=str(exc))
        return None
    embed = getattr(llm.client, "embed", None)
    if embed is None:
        return None
    model = embedding_model(llm)
    key = _unsupported_key(llm, model)
    if cache.get(key) or llm.breaker.status().state != "closed":
        return None
    timeout = (
        min(llm.connection.connect_timeout if llm.connection else CONNECT_TIMEOUT_CAP, CONNECT_TIMEOUT_CAP),
        float(settings.EMBEDDINGS_TIMEOUT),
    )
    vectors: list[list[float]] = []
    tokens = 0
    answered_model = ""
    for start in range(0, len(inputs), BATCH_SIZE):
        batch = inputs[start : start + BATCH_SIZE]
        try:
            with step_slots.waiting():  # a step asking (the prompt's recall) only waits here
                payload = embed(batch, model=model, timeout=timeout)
            batch_vectors, batch_tokens, answered_model = _read(payload, batch, dimensions=_dims(vectors))
        except LLMError as exc:
            llm.scrub(exc)
            if _says_unsupported(exc):
                cache.set(key, 1, settings.EMBEDDINGS_UNSUPPORTED_SECONDS)
                log.info("embeddings_unsupported", companion_id=companion_id, model=model, error=exc.message)
            else:
                log.warning("embeddings_failed", companion_id=companion_id, code=exc.code, error=exc.message)
            return None
        except _Unusable as exc:
            log.warning("embeddings_unusable", companion_id=companion_id, model=model, error=str(exc))
            return None
        vectors.extend(batch_vectors)
        tokens += batch_tokens
    # The demo names its own model; a real server is asked for one and may echo another name
    # for it (a path, an alias): the name asked for is the stable one.
    return Embedded(vectors=vectors, model=(model or answered_model)[:200], prompt_tokens=tokens)


def _dims(vectors: list[list[float]]) -> int | None:
    return len(vectors[0]) if vectors else None


def _read(payload: Any, batch: list[str], *, dimensions: int | None) -> tuple[list[list[float]], int, str]:
    """The vectors of one answer in input order, its prompt tokens and its model name."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise _Unusable("no data list")
    data = payload["data"]
    if len(data) != len(batch):
        raise _Unusable(f"{len(data)} embeddings for {len(batch)} inputs")
    by_index: dict[int, list[float]] = {}
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise _Unusable("an embedding that is not an object")
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(batch):
            raise _Unusable("an embedding with a bad index")
        if index in by_index:
            raise _Unusable("two embeddings for one input")
        by_index[index] = _vector(item.get("embedding"))
    vectors = [by_index[i] for i in range(len(batch))]
    size = dimensions or len(vectors[0])
    if any(len(vector) != size for vector in vectors):
        raise _Unusable("embeddings of different sizes")
    usage = payload.get("usage")
    reported = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    tokens = (
        reported
        if isinstance(reported, int) and not isinstance(reported, bool) and reported >= 0
        else sum(estimate_tokens(text) for text in batch)
    )
    model = payload.get("model")
    return vectors, tokens, model if isinstance(model, str) else ""


def _vector(value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise _Unusable("an embedding that is not a list of numbers")
    if len(value) > MAX_DIMENSIONS:
        raise _Unusable(f"an embedding of {len(value)} dimensions (at most {MAX_DIMENSIONS})")
    vector = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise _Unusable("an embedding with a value that is not a finite number")
        vector.append(float(number))
    if not any(vector):
        raise _Unusable("an embedding of zeros")
    return vector
