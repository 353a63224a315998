"""Fetching the latest 50 messages of a long conversation, and rendering the chat page.

Runs in this process against the configured database (``make bench`` points
it at PostgreSQL when it is there). For 1k, 10k and 100k messages in one
conversation (plus as many again in four other conversations, so the table
is not all one conversation's), it times ``history_page`` and a full GET of
the conversation's page, then the same fetch with the
``(conversation, -created_at, -id)`` index dropped inside a transaction that
is rolled back.
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


def _conversation(user, count: int):
    """A new one-to-one chat (started as the site starts one, with its greeting) of ``count``
    messages in all: the user's, each with its turn, and the companion's replies."""
    from chat.conversations import conversation_start
    from chat.models import Message, Turn
    from companions.models import Companion
    from tests.companions.factories import VALID

    companion = Companion.objects.create(owner=user, **VALID)
    conversation = conversation_start(user=user, companion=companion)
    batch = 5_000
    for start in range(1, count, batch):  # the greeting is message 0
        made = Message.objects.bulk_create(
            Message(
                conversation=conversation,
                role=Message.Role.USER if n % 2 else Message.Role.ASSISTANT,
                sender=None if n % 2 else companion,
                content=f"message {n} " * 8,
            )
            for n in range(start, min(count, start + batch))
        )
        Turn.objects.bulk_create(
            Turn(
                conversation=conversation,
                message=message,
                order=[companion.pk],
                status=Turn.Status.DONE,
                created_at=message.created_at,
            )
            for message in made
            if message.role == Message.Role.USER
        )
    return conversation


def _ok(response) -> None:
    assert response.status_code == 200, response.status_code


def _clear(user) -> None:
    """The user's chats and companions from an earlier size (the messages go with their chats)."""
    from chat.models import Conversation
    from companions.models import Companion

    Conversation.objects.filter(owner=user).delete()
    Companion.objects.filter(owner=user).delete()


def run() -> dict:
    from django.urls import reverse

    from accounts.models import User
    from chat.selectors import conversation_get_for_user, history_page

    user, _ = User.objects.get_or_create(
        username="benchhistory", defaults={"email": "benchhistory@example.com"}
    )
    client = Client()
    client.force_login(user)
    rows, results = [], []
    for size in SIZES:
        _clear(user)
        conversation = _conversation(user, size)
        for _ in range(NOISE_COMPANIONS):
            _conversation(user, size // NOISE_COMPANIONS)
        assert conversation.messages.count() == size
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE chat_message")
        url = reverse("chat:conversation", args=[conversation.pk])
        # As the page and the older-messages endpoint have it: looked up for its owner, with its
        # members (the access check loads them; the page's senders come from them).
        conversation = conversation_get_for_user(user, conversation.pk)
        query = _timed(lambda c=conversation: history_page(c), QUERY_REPEATS)
        page = _timed(lambda u=url: _ok(client.get(u)), PAGE_REPEATS)
        without = []
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("DROP INDEX message_conversation_latest")
                without = _timed(lambda c=conversation: history_page(c), max(20, QUERY_REPEATS // 10))
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
    _clear(user)
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
