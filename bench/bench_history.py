"""Fetching the latest 50 messages of a long conversation, and rendering the chat page.

Runs in this process against the configured database (``make bench`` points
it at PostgreSQL when it is there). For 1k, 10k and 100k messages in one
conversation (plus as many again in four other conversations, so the table
is not all one companion's), it times ``history_page`` and a full GET of the
chat page, then the same fetch with the ``(companion, -created_at)`` index
dropped inside a transaction that is rolled back.
"""

from __future__ import annotations

import statistics
import time

from django.db import connection, transaction
from django.test import Client

from bench.stats import percentile, table

SIZES = (1_000, 10_000, 100_000)
QUERY_REPEATS = 200
PAGE_REPEATS = 40
NOISE_COMPANIONS = 4


class _Rollback(Exception):
    pass


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm caches and the plan
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _fill(companion, count: int) -> None:
    from chat.models import Message

    batch = 5_000
    for start in range(0, count, batch):
        Message.objects.bulk_create(
            Message(companion=companion, role="user" if n % 2 else "assistant", content=f"message {n} " * 8)
            for n in range(start, min(count, start + batch))
        )


def run() -> dict:
    from accounts.models import User
    from chat.selectors import history_page
    from companions.models import Companion
    from tests.companions.factories import VALID

    user, _ = User.objects.get_or_create(
        username="benchhistory", defaults={"email": "benchhistory@example.com"}
    )
    client = Client()
    client.force_login(user)
    rows, results = [], []
    for size in SIZES:
        Companion.objects.filter(owner=user).delete()
        companion = Companion.objects.create(owner=user, **VALID)
        _fill(companion, size)
        for _ in range(NOISE_COMPANIONS):
            _fill(Companion.objects.create(owner=user, **VALID), size // NOISE_COMPANIONS)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE chat_message")
        query = _timed(lambda c=companion: history_page(c), QUERY_REPEATS)
        page = _timed(lambda c=companion: client.get(f"/chat/{c.pk}/"), PAGE_REPEATS)
        without = []
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("DROP INDEX message_companion_created")
                without = _timed(lambda c=companion: history_page(c), max(20, QUERY_REPEATS // 10))
                raise _Rollback
        except _Rollback:
            pass
        result = {
            "messages": size,
            "query_p50_ms": round(statistics.median(query), 3),
            "query_p99_ms": round(percentile(query, 99), 3),
            "page_p50_ms": round(statistics.median(page), 2),
            "page_p99_ms": round(percentile(page, 99), 2),
            "no_index_query_p50_ms": round(statistics.median(without), 3),
            "index_speedup": round(statistics.median(without) / statistics.median(query), 1),
        }
        results.append(result)
        rows.append(tuple(result.values()))
    Companion.objects.filter(owner=user).delete()
    print(f"Latest 50 messages of one conversation ({connection.vendor}); ms")
    print(
        table(
            rows,
            ("messages", "query p50", "query p99", "page p50", "page p99", "no index p50", "index speedup"),
        )
    )
    return {"vendor": connection.vendor, "rows": results}


if __name__ == "__main__":
    run()
