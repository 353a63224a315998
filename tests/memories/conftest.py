"""Memories test fixtures: a companion of ``user``, rows made directly, and a bag-of-words
embedder (the same words give the same vector; shared words make vectors alike)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from memories import embedding, fulltext, vector_cache, vectors
from memories.models import Memory
from tests.companions.factories import make_companion

MODEL = "test-embed"
DIMENSIONS = 64


def embed_words(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """A deterministic vector: each word adds one to a position chosen by its hash."""
    vector = np.zeros(dimensions, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    if not vector.any():
        vector[0] = 1.0
    return vector.tolist()


def add_memory(companion, text: str, *, model: str = MODEL, vector=True, **fields) -> Memory:
    """A memory row of ``companion``, with the vector of its text (or ``vector``) by default."""
    if vector is True:
        vector = embed_words(text)
    unit = vectors.unit(vector) if vector is not None else None
    return Memory.objects.create(
        owner=companion.owner,
        companion=companion,
        text=text,
        embedding=vectors.pack(unit) if unit is not None else None,
        embedding_model=model if unit is not None else "",
        **fields,
    )


@pytest.fixture(autouse=True)
def _fresh_vector_cache():
    """Kept matrices are keyed by companion id, and SQLite gives ids again after a rollback."""
    vector_cache.forget()
    fulltext.forget_common_shares()
    yield
    vector_cache.forget()
    fulltext.forget_common_shares()


@pytest.fixture
def companion(user):
    return make_companion(user)


@pytest.fixture
def embedder():
    """Register the bag-of-words embedder for the test; yields the list of calls."""
    calls: list[tuple[int, list[str]]] = []

    def embed(companion_id: int, texts: list[str]):
        calls.append((companion_id, list(texts)))
        return [embed_words(t) for t in texts], MODEL

    previous = embedding._embedder
    embedding.register_embedder(embed)
    yield calls
    embedding.register_embedder(previous)
