"""Which of a companion's memories go into a turn's prompt.

``relevant_memories`` is what the prompt assembly calls each turn, so it is built to cost a
few milliseconds at 10,000 memories (``bench/bench_memories.py`` measures it):

1. the companion's vectors of the query's model come from this process's cache
   (``memories.vector_cache``: one read of the shared cache checks they are current) and are
   ranked by one matrix-vector product with the query vector (``vectors.similarities``);
2. memories without a vector of that model, or all of them when the query has no vector, are
   ranked by the database's full-text index over the recent messages' words
   (``memories.fulltext``), the best match counting as ``FULL_TEXT_WEIGHT`` of similarity;
3. newer memories get a small boost (``RECENCY_WEIGHT``, halving every
   ``RECENCY_HALF_LIFE_DAYS`` since the memory was written or last confirmed);
4. one primary-key query reads the texts of the pinned memories (their ids are kept with the
   vectors) and of the best candidates, scoped to the owner (a memory deleted meanwhile is
   simply not there), and they are taken pinned first, then by score, while they fit the
   token budget.

``last_used_at`` is not written here: a write on every turn would put a row lock and a
commit on the reply's path. The memory step records which memories a reply used, off that
path, with ``memories.services.memories_mark_used`` (one UPDATE for all of them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memories import fulltext, vector_cache, vectors
from memories.models import Memory

CANDIDATES = 64  # ranked candidates read per turn (more than any budget takes)
MIN_SIMILARITY = 0.1  # a memory this unlike the conversation is not worth its tokens
FULL_TEXT_WEIGHT = 0.6  # the best full-text match ranks like a memory this similar
RECENCY_WEIGHT = 0.05
RECENCY_HALF_LIFE_DAYS = 30.0


@dataclass(frozen=True)
class Recalled:
    memory_id: int
    text: str
    pinned: bool
    score: float  # how relevant (shown in the prompt view); pinned memories come first whatever it is
    tokens: int


def recency_boost(updated: npt.NDArray[np.float64], now: float) -> npt.NDArray[np.float64]:
    """``RECENCY_WEIGHT`` for a memory written now, half that after ``RECENCY_HALF_LIFE_DAYS``."""
    age_days = np.maximum(now - updated, 0.0) / 86400.0
    return RECENCY_WEIGHT * np.power(0.5, age_days / RECENCY_HALF_LIFE_DAYS)


def ranked_ids(
    *,
    owner_id: int,
    companion_id: int,
    query_text: str,
    query_vector: Sequence[float] | None,
    embedding_model: str,
    count: int,
) -> list[tuple[int, float]]:
    """The companion's ``count`` most relevant memory ids with their scores, best first (pinned
    or not: callers decide)."""
    return _ranked(
        owner_id=owner_id,
        companion_id=companion_id,
        query_text=query_text,
        query_vector=query_vector,
        embedding_model=embedding_model,
        count=count,
    )[0]


def _ranked(
    *,
    owner_id: int,
    companion_id: int,
    query_text: str,
    query_vector: Sequence[float] | None,
    embedding_model: str,
    count: int,
) -> tuple[list[tuple[int, float]], tuple[int, ...]]:
    """(the ranked ids and scores, the companion's pinned ids as last known)."""
    now = time.time()
    scores: dict[int, float] = {}
    query = vectors.unit(query_vector) if embedding_model else None
    entry = vector_cache.companion_vectors(
        owner_id=owner_id, companion_id=companion_id, model=embedding_model if query is not None else ""
    )
    without_model: str | None = None  # full text ranks every memory
    if query is not None and entry.dimensions == query.size:
        without_model = embedding_model
        if entry.ids.size:
            similarity = vectors.similarities(entry.matrix, query)
            total = similarity + recency_boost(entry.updated, now)
            top = _top(total, count)
            liked = (i for i in top if similarity[i] >= MIN_SIMILARITY)
            scores.update((int(entry.ids[i]), float(total[i])) for i in liked)
        if not entry.without:
            return _best(scores, count), entry.pinned
    words = fulltext.retrieval_words(query_text)
    for hit in fulltext.ranked(
        owner_id=owner_id, companion_id=companion_id, words=words, limit=count, without_model=without_model
    ):
        boost = recency_boost(np.array([hit.updated_at.timestamp()]), now)[0]
        scores[hit.memory_id] = max(scores.get(hit.memory_id, 0.0), FULL_TEXT_WEIGHT * hit.score + boost)
    return _best(scores, count), entry.pinned


def remembers_anything(*, owner_id: int, companion_id: int) -> bool:
    """Whether the companion has any memory of its owner: one read of the shared cache while this
    process's count is current (``memories.vector_cache``), three queries when it is not."""
    entry = vector_cache.companion_vectors(owner_id=owner_id, companion_id=companion_id, model="")
    return bool(entry.ids.size or entry.without)


def _top(values: npt.NDArray[np.float64], count: int) -> npt.NDArray[np.intp]:
    """Indexes of the ``count`` largest values, largest first (a partial sort: O(n))."""
    if values.size <= count:
        return np.argsort(-values)
    part = np.argpartition(-values, count)[:count]
    return part[np.argsort(-values[part])]


def _best(scores: dict[int, float], count: int) -> list[tuple[int, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], -item[0]))[:count]


def relevant_memories(
    *,
    owner_id: int,
    companion_id: int,
    query_text: str,
    query_vector: Sequence[float] | None,
    embedding_model: str,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    limit: int = 20,
) -> list[Recalled]:
    """The pinned memories, then the most relevant others (similarity to ``query_vector`` when
    the memories have vectors of ``embedding_model``, else full-text rank of ``query_text``,
    with newer ones a little ahead), as many as fit ``budget_tokens``, at most ``limit``.

    A memory too long for what is left of the budget is passed over for shorter ones after it.
    """
    if budget_tokens <= 0 or limit <= 0:
        return []
    ranked, pinned_known = _ranked(
        owner_id=owner_id,
        companion_id=companion_id,
        query_text=query_text,
        query_vector=query_vector,
        embedding_model=embedding_model,
        count=max(CANDIDATES, limit),
    )
    score_of = dict(ranked)
    # One primary-key read, scoped to the owner: a memory deleted or unpinned since the ids were
    # known is dropped or ranked as the database says now.
    rows = Memory.objects.filter(
        owner_id=owner_id, companion_id=companion_id, pk__in=[*pinned_known, *score_of]
    ).values_list("pk", "text", "pinned")
    texts = {pk: (text, pinned) for pk, text, pinned in rows}
    pinned_ids = [pk for pk in pinned_known if pk in texts and texts[pk][1]]
    order = pinned_ids + [pk for pk, _score in ranked if pk in texts and not texts[pk][1]]
    chosen: list[Recalled] = []
    left = budget_tokens
    for pk in order:
        if len(chosen) >= limit:
            break
        text, pinned = texts[pk]
        tokens = count_tokens(text)
        if tokens > left:
            continue
        left -= tokens
        chosen.append(Recalled(pk, text, pinned, round(score_of.get(pk, 0.0), 4), tokens))
    return chosen
