"""Memory retrieval for one turn: ``relevant_memories`` at 1,000 and 10,000 memories of one
companion, by vector (384 dimensions) and by the full-text fallback.

Runs in this process against the configured database (PostgreSQL when DATABASE_URL points at
it, else the embedded SQLite). The bench makes its own user (found by its name) with one
companion per size, and memories of 6 to 20 words from a made-up vocabulary with a random unit
vector each; rows are made again only when their count is wrong, and nothing else is read or
changed. Each scenario is timed warm (the companion's matrix kept in this process, as a worker
keeps it between turns), and the cold load after a write is reported too.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time

import numpy as np
from django.db import connection
from django.utils import timezone

from bench.stats import percentile, table

SIZES = (1_000, 10_000)
DIMENSIONS = 384
MODEL = "bench-embed-384"
REPEATS = 200
COLD_REPEATS = 5
BUDGET_TOKENS = 600
PREFIX = "benchmemories"
SEED = 20261201


def _vocabulary() -> list[str]:
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = ["".join(p) for p in itertools.product(syllables, repeat=2)]
    random.Random(SEED).shuffle(words)
    return words[:3000]


def _user():
    from accounts.models import User

    user, _created = User.objects.get_or_create(username=PREFIX, defaults={"email": f"{PREFIX}@example.com"})
    return user


def _companion(user, size: int):
    """The bench's companion with ``size`` memories, made again when its count is wrong."""
    from companions.models import Companion
    from memories import vectors
    from memories.models import Memory
    from tests.companions.factories import VALID

    name = f"{PREFIX}-{size}"
    companion = Companion.objects.filter(owner=user, name=name).first()
    if companion is not None and Memory.objects.filter(companion=companion).count() == size:
        return companion, 0.0
    if companion is not None:
        companion.delete()
    started = time.perf_counter()
    companion = Companion.objects.create(owner=user, **{**VALID, "name": name})
    rng = random.Random(SEED + size)
    matrix = np.random.default_rng(SEED + size).standard_normal((size, DIMENSIONS)).astype(np.float32)
    words = _vocabulary()
    now = timezone.now()
    rows = []
    for n in range(size):
        unit = vectors.unit(matrix[n])
        assert unit is not None
        rows.append(
            Memory(
                owner=user,
                companion=companion,
                text=" ".join(rng.choices(words, k=rng.randint(6, 20))),
                pinned=n % 500 == 0,  # a few pinned, as users pin a handful
                embedding=vectors.pack(unit),
                embedding_model=MODEL,
            )
        )
    Memory.objects.bulk_create(rows, batch_size=1000)
    # Spread the dates over a year, so the recency boost has something to do.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE memories_memory SET created_at = %s, updated_at = %s WHERE companion_id = %s",
            [now, now, companion.pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE memories_memory")
    return companion, time.perf_counter() - started


def _timed(fn, repeats: int) -> list[float]:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def run() -> dict:
    from memories import vector_cache
    from memories.retrieval import relevant_memories

    def count_tokens(text: str) -> int:
        return len(text) // 4 + 1

    user = _user()
    words = _vocabulary()
    query_text = " ".join(words[n * 7 % len(words)] for n in range(60))  # recent messages: 60 words
    query = np.random.default_rng(SEED).standard_normal(DIMENSIONS).astype(np.float32).tolist()
    rows, results = [], []
    for size in SIZES:
        companion, made = _companion(user, size)
        if made:
            print(f"made {size:,} memories in {made:.0f} s")
        scenarios = {
            "vector": {"query_vector": query, "embedding_model": MODEL},
            "full text (no query vector)": {"query_vector": None, "embedding_model": ""},
            "vector of another model (full text)": {"query_vector": query, "embedding_model": "other"},
        }
        for label, kwargs in scenarios.items():

            def recall(kw=kwargs, c=companion) -> list:
                return relevant_memories(
                    owner_id=user.pk,
                    companion_id=c.pk,
                    query_text=query_text,
                    budget_tokens=BUDGET_TOKENS,
                    count_tokens=count_tokens,
                    **kw,
                )

            found = recall()
            times = _timed(recall, REPEATS)
            result = {
                "memories": size,
                "scenario": label,
                "recalled": len(found),
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(percentile(times, 95), 2),
            }
            results.append(result)
            rows.append(tuple(result.values()))
        cold = []
        for _ in range(COLD_REPEATS):
            vector_cache.forget(companion.pk)
            started = time.perf_counter()
            vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
            cold.append((time.perf_counter() - started) * 1000)
        results.append(
            {
                "memories": size,
                "scenario": "matrix load (after a write)",
                "p50_ms": round(statistics.median(cold), 1),
            }
        )
        rows.append(
            (size, "matrix load (after a write)", "-", round(statistics.median(cold), 1), round(max(cold), 1))
        )
    print(f"relevant_memories, one companion, {DIMENSIONS}-dim vectors ({connection.vendor}); ms")
    print(table(rows, ("memories", "scenario", "recalled", "p50", "p95")))
    return {"vendor": connection.vendor, "dimensions": DIMENSIONS, "results": results}


if __name__ == "__main__":
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companionhub.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run()
