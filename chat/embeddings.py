"""Embeddings from the LLM connection's OpenAI-compatible ``/v1/embeddings``.

INTERFACE (skeleton): the signature is the contract memory storage and retrieval code against.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    model: str  # which model made them: vectors of different models are never compared
    prompt_tokens: int = 0


def embed_texts(companion_id: int, texts: list[str]) -> Embedded | None:
    """Vectors for ``texts`` from the companion's LLM connection, or None when it has no
    embeddings endpoint or the call fails (callers fall back to full-text ranking)."""
    raise NotImplementedError
