"""Memory retrieval for one turn: ``relevant_memories`` at 1,000 and 10,000 memories of one
companion, by vector (384 dimensions) and by the full-text fallback.

Runs in this process against the configured database (PostgreSQL when DATABASE_URL points at
it, else the embedded SQLite). The bench makes its own user (found by its name) with one
companion per size and data version, and memories that read like the facts the memory step
writes ("The user's sister Kavo lives in Tufo and likes ..."): a few templates with names,
places and things drawn from a made-up vocabulary, so each memory is a distinct fact, the rare
words are rare and the template words ("user", "likes") are in most memories, as in real ones.
Each has a random unit vector. Rows are made again only when their count is wrong, and nothing
else is read or changed.

Scenarios, each timed warm (the companion's matrix kept in this process, as a worker keeps it
between turns):

* vector: the query has a vector of the memories' model;
* full text: no query vector (or one of another model), recent messages of 60 words that
  name a few of the facts' things among everyday words;
* full text, worst case: recent messages of nothing but the words most memories share, so
  every term matches thousands of rows (the bound on ranked rows is what keeps it fast);

and the cold load of the companion's matrix after a write.
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
DATA_VERSION = "facts"  # a new value makes the memories again (the old companions are deleted)
SEED = 20261201

# Facts as the memory step writes them: "{0}" and "{1}" are made-up words (names, places, things).
TEMPLATES = (
    "The user's sister {0} lives in {1}.",
    "The user likes {0} and drinks {1} tea every morning.",
    "The user works as a {0} at a company called {1}.",
    "The user has a dog named {0} who is afraid of {1}.",
    "The user visited {0} last summer and wants to go back to {1}.",
    "The user's favourite book is {0} by {1}.",
    "The user plays the {0} with a friend called {1} on weekends.",
    "The user does not like {0}, but likes {1} a lot.",
    "The user is learning {0} because their partner {1} speaks it.",
    "The user grew up in {0} near the {1} river.",
)
# Recent messages: everyday words around a few of the facts' things.
CHAT = (
    "yesterday evening talked about plans for the weekend and the long drive"
    " remember telling you about the trip, the weather was lovely, we cooked dinner together"
    " and then watched a film about"
)
WORST_CASE = (
    "the user likes the user's friend, the user lives and works, the user likes tea and"
    " wants to go back, the user's favourite, the user plays with a friend called"
)


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

    name = f"{PREFIX}-{DATA_VERSION}-{size}"
    Companion.objects.filter(owner=user, name__startswith=f"{PREFIX}-").exclude(
        name__in=[f"{PREFIX}-{DATA_VERSION}-{n}" for n in SIZES]
    ).delete()
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
                text=rng.choice(TEMPLATES).format(*(w.capitalize() for w in rng.sample(words, 2))),
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
    things = " and ".join(words[n * 7 % len(words)] for n in range(12))
    query_text = f"{CHAT} {things}"  # recent messages: about 60 words
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
            "full text, worst case (common words only)": {
                "query_vector": None,
                "embedding_model": "",
                "query_text": WORST_CASE,
            },
        }
        for label, kwargs in scenarios.items():

            def recall(kw=kwargs, c=companion) -> list:
                return relevant_memories(
                    owner_id=user.pk,
                    companion_id=c.pk,
                    **{"query_text": query_text, **kw},
                    budget_tokens=BUDGET_TOKENS,
                    count_tokens=count_tokens,
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
