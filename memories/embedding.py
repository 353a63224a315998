"""Vectors for memories the user adds or edits, from whoever can make them.

Embeddings come from the companion's LLM connection, which the chat app owns; memories sits
below chat and cannot import it, so chat registers its function at start-up
(``register_embedder`` in ``chat/apps.py``). The function takes (companion id, texts) and
returns either (vectors, model) or an object with ``vectors`` and ``model`` (chat's
``Embedded``), or None when the connection has no embeddings.

``embed`` never raises: no embedder, one that is not written yet (``NotImplementedError``),
one that fails, or an answer of the wrong shape all mean "no vector", and the memory is then
found by full text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Embedder = Callable[[int, list[str]], Any]


@dataclass(frozen=True)
class Embeddings:
    vectors: list[Sequence[float]]
    model: str


_embedder: Embedder | None = None


def register_embedder(embedder: Embedder | None) -> None:
    """Set (or with None, clear) the function that makes vectors."""
    global _embedder
    _embedder = embedder


def embed(companion_id: int, texts: list[str]) -> Embeddings | None:
    """One vector per text and the model that made them, or None."""
    if _embedder is None or not texts:
        return None
    try:
        answer = _embedder(companion_id, texts)
    except NotImplementedError:
        return None
    except Exception:
        log.exception("memory_embedding_failed", companion_id=companion_id)
        return None
    if answer is None:
        return None
    if isinstance(answer, tuple) and len(answer) == 2:
        found, model = answer
    else:
        found, model = getattr(answer, "vectors", None), getattr(answer, "model", None)
    if not isinstance(model, str) or not model or not isinstance(found, list) or len(found) != len(texts):
        log.warning("memory_embedding_malformed", companion_id=companion_id)
        return None
    return Embeddings(vectors=found, model=model)
