"""Each companion's memory vectors as one numpy matrix, kept in process memory between turns.

Loading 10,000 vectors from the database takes far longer than the 5 ms a turn's retrieval
may spend, so every process (web or worker) keeps the matrices of the companions it served
last: a bounded LRU (``MAX_COMPANIONS`` entries and ``MAX_BYTES`` of vectors in all).

Whether a kept matrix is still right is one read of the shared cache (Redis in production):
every write of memories (``memories.services``, the embedding task, the admin) sets the
companion's *version token* to a new random value after its transaction commits
(``bump``). A kept matrix whose token differs is loaded again. Bumping after commit, never
before, means a reader can never store a matrix read before the write under the token the
write made. When the shared cache cannot be read (Redis down) nothing is kept: every
retrieval loads from the database, slower but right. A kept matrix is also reloaded after
``MAX_AGE_SECONDS`` whatever its token says, which bounds what a lost bump could cost.

A stale matrix can only mis-rank: the texts always come from the database by id, scoped to
the owner, so a deleted memory is never returned.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog
from django.core.cache import cache
from django.db import transaction

from memories import vectors
from memories.models import Memory

log = structlog.get_logger(__name__)

MAX_COMPANIONS = 32
MAX_BYTES = 256 * 2**20  # vectors held in all: 10,000 memories of 384 floats are 15 MB
MAX_AGE_SECONDS = 600.0
MAX_PINNED = 200  # pinned memories kept per companion; a budget takes far fewer
VERSION_KEY = "memories:version:{companion_id}"


@dataclass(frozen=True)
class CompanionVectors:
    """One companion's memories with a vector of one model, as arrays in the same order, and the
    ids of its pinned memories."""

    token: str | None
    loaded_at: float
    ids: npt.NDArray[np.int64]
    matrix: npt.NDArray[np.float32]  # one unit vector per row
    updated: npt.NDArray[np.float64]  # each memory's updated_at, as a Unix time
    dimensions: int
    # The companion's memories without a usable vector of this model: full text ranks them.
    without: int
    # The companion's pinned memories, newest first (at most MAX_PINNED): every prompt reads
    # them, and finding them among 10,000 rows would cost more than the ranking.
    pinned: tuple[int, ...] = ()

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.ids.nbytes + self.updated.nbytes)


_entries: OrderedDict[tuple[int, str], CompanionVectors] = OrderedDict()
_lock = threading.Lock()


def _token_key(companion_id: int) -> str:
    return VERSION_KEY.format(companion_id=companion_id)


def version_token(companion_id: int) -> str | None:
    """The companion's current version token (made when there is none), or None when the
    shared cache cannot be read."""
    key = _token_key(companion_id)
    try:
        token = cache.get(key)
        if token is None:
            cache.add(key, uuid.uuid4().hex, timeout=None)
            token = cache.get(key)
    except Exception as exc:  # the cache is down: keep nothing, load every time
        log.warning("memory_version_unreadable", error=type(exc).__name__)
        return None
    return token if isinstance(token, str) else None


def bump(companion_id: int) -> None:
    """After the current transaction commits: every process's matrix of the companion is stale.

    This process's copy goes at once too, so the rest of the writing transaction (the memory
    step compares each fact with those before it) reads its own writes."""
    forget(companion_id)

    def write() -> None:
        forget(companion_id)  # this process's copy, even if the shared cache is down
        try:
            cache.set(_token_key(companion_id), uuid.uuid4().hex, timeout=None)
        except Exception as exc:
            log.warning("memory_version_not_bumped", companion_id=companion_id, error=type(exc).__name__)

    transaction.on_commit(write)


def forget(companion_id: int | None = None) -> None:
    """Drop this process's matrices of one companion (or all)."""
    with _lock:
        for key in [k for k in _entries if companion_id is None or k[0] == companion_id]:
            del _entries[key]


def companion_vectors(*, owner_id: int, companion_id: int, model: str) -> CompanionVectors:
    """The companion's vectors of ``model``: from this process's LRU when still current."""
    token = version_token(companion_id)
    key = (companion_id, model)
    now = time.monotonic()
    with _lock:
        entry = _entries.get(key)
        if (
            entry is not None
            and token is not None
            and entry.token == token
            and now - entry.loaded_at < MAX_AGE_SECONDS
        ):
            _entries.move_to_end(key)
            return entry
    entry = _load(owner_id=owner_id, companion_id=companion_id, model=model, token=token)
    if token is not None:
        _keep(key, entry)
    return entry


def _load(*, owner_id: int, companion_id: int, model: str, token: str | None) -> CompanionVectors:
    mine = Memory.objects.filter(owner_id=owner_id, companion_id=companion_id)
    rows = list(
        mine.filter(embedding_model=model, embedding__isnull=False)
        .order_by("pk")
        .values_list("pk", "embedding", "updated_at")
    )
    total = mine.count()
    pinned = tuple(
        mine.filter(pinned=True).order_by("-updated_at", "-pk").values_list("pk", flat=True)[:MAX_PINNED]
    )
    unpacked = [(pk, vectors.unpack(data), updated) for pk, data, updated in rows]
    # A model changed behind the same name may have left vectors of another length: the most
    # common length is the model's now; the others are ranked by full text until re-embedded.
    lengths = Counter(v.size for _pk, v, _u in unpacked if v is not None)
    dimensions = lengths.most_common(1)[0][0] if lengths else 0
    kept = [(pk, v, updated) for pk, v, updated in unpacked if v is not None and v.size == dimensions]
    return CompanionVectors(
        token=token,
        loaded_at=time.monotonic(),
        ids=np.fromiter((pk for pk, _v, _u in kept), dtype=np.int64, count=len(kept)),
        matrix=vectors.stack((v for _pk, v, _u in kept), dimensions),
        updated=np.fromiter((u.timestamp() for _pk, _v, u in kept), dtype=np.float64, count=len(kept)),
        dimensions=dimensions,
        without=total - len(kept),
        pinned=pinned,
    )


def _keep(key: tuple[int, str], entry: CompanionVectors) -> None:
    with _lock:
        _entries[key] = entry
        _entries.move_to_end(key)
        held = sum(e.nbytes for e in _entries.values())
        while len(_entries) > 1 and (len(_entries) > MAX_COMPANIONS or held > MAX_BYTES):
            _old_key, old = _entries.popitem(last=False)
            held -= old.nbytes


def cached_companions() -> list[tuple[int, str]]:
    """(companion id, model) of each matrix this process holds, least recently used first."""
    with _lock:
        return list(_entries)
