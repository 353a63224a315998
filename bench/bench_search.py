"""Search across a user's chats: ``message_search`` at scale, and what the index costs a write.

Runs in this process against the configured database. PostgreSQL: 1,000,000
messages, 100,000 of them one user's across 50 conversations (five companions,
five of the chats groups), the rest eighteen other users'. SQLite (the
embedded default): 100,000 messages, all one user's. The text is drawn from a
vocabulary of 8,000 made-up words with Zipf frequencies (the most common word
is in ~3 of 4 messages, a rare one in a few hundred), plus a planted
"lighthouse" in 100 of the user's messages, so the queries below span from
"almost every message" to "a needle". The rows stay for the next run (found
by the users' names) and are made again only when their count is wrong.

Times ``message_search`` (ids, the page's rows and its snippets: what the
page costs minus the template) for each query, and the cost of writing one
message with the index and without it: the same ORM insert, in a transaction
rolled back, once as the table is and once with the index dropped (PostgreSQL:
the GIN index and the generated column; SQLite: the FTS triggers) inside that
transaction. PostgreSQL also measures pg_trgm (typo tolerance) on the user's
messages: what a trigram index would cost a write and what a typo query costs.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from bench.stats import percentile, table
from chat.search_index import POSTGRES_INDEXES, SQLITE_TRIGGERS

SIZES = {"postgresql": (1_000_000, 100_000), "sqlite": (100_000, 100_000)}  # (all, the user's)
USER_CONVERSATIONS = 50
OTHER_USERS = 18
OTHER_CONVERSATIONS = 10  # each other user's
VOCABULARY = 8_000
NEEDLE = "lighthouse"
NEEDLES = 100
REPEATS = 30
WRITES = 400
PREFIX = "benchsearch"
SEED = 20261130


class _Rollback(Exception):
    pass


def _vocabulary() -> list[str]:
    """8,000 made-up words of two or three syllables, in frequency order (most common first)."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    two = [a + b for a, b in itertools.product(syllables, repeat=2)]
    three = [a + b + c for a, b, c in itertools.product(syllables[:20], repeat=3)]
    words = two + three
    random.Random(SEED).shuffle(words)
    return words[:VOCABULARY]


def _texts(count: int, rng: random.Random, words: list[str]):
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
    for _ in range(count):
        yield " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(6, 22)))


def _users():
    from accounts.models import User

    return User.objects.filter(username__startswith=PREFIX)


def _clear() -> None:
    """The bench's own users and everything of theirs (messages first, in SQL: no cascade walk)."""
    if not _users().exists():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM chat_message WHERE conversation_id IN (SELECT c.id FROM chat_conversation c"
            " JOIN accounts_user u ON u.id = c.owner_id WHERE u.username LIKE %s)",
            [PREFIX + "%"],
        )
    _users().delete()


def _make_owner(name: str, companions: int, conversations: int, groups: int):
    """A user with companions and conversations; returns (user, [(conversation id, [companion ids])])."""
    from accounts.models import User
    from chat.models import Conversation, Participant
    from companions.models import Companion
    from tests.companions.factories import VALID

    user = User.objects.create(username=name, email=f"{name}@example.com")
    made = [Companion.objects.create(owner=user, **{**VALID, "name": f"C{n}"}) for n in range(companions)]
    chats = []
    for n in range(conversations):
        group = n < groups
        members = [made[n % companions], made[(n + 1) % companions]] if group else [made[n % companions]]
        conversation = Conversation.objects.create(
            owner=user, kind="group" if group else "direct", title=f"Chat {n}"
        )
        for position, companion in enumerate(members):
            Participant.objects.create(conversation=conversation, companion=companion, position=position)
        chats.append((conversation.pk, [c.pk for c in members]))
    return user, chats


def _rows(chats, count: int, rng: random.Random, words: list[str], needles: int):
    """(conversation id, role, sender id, content, created_at) for ``count`` messages over a year."""
    now = timezone.now()
    needle_at = set(rng.sample(range(count), needles)) if needles else set()
    for n, text in enumerate(_texts(count, rng, words)):
        conversation, members = chats[n % len(chats)]
        if n in needle_at:
            text = f"{text} {NEEDLE} {text[:20]}"
        sender = None if n % 2 == 0 else members[(n // 2) % len(members)]
        created = now - timedelta(seconds=(count - n) * 31_536_000 // count)
        yield conversation, "user" if sender is None else "assistant", sender, text, created


def _load(chats, count: int, rng: random.Random, words: list[str], needles: int) -> None:
    columns = (
        "conversation_id, role, sender_id, content, created_at, reasoning, prompt_tokens,"
        " completion_tokens, is_complete, finish_reason, alternatives"
    )
    rows = _rows(chats, count, rng, words, needles)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            copy_sql = f"COPY chat_message ({columns}) FROM STDIN"
            with cursor.cursor.copy(copy_sql) as copy:  # psycopg 3: the raw cursor
                for conversation, role, sender, text, created in rows:
                    copy.write_row((conversation, role, sender, text, created, "", 0, 0, True, "", "[]"))
        else:
            batch = list(rows)
            cursor.executemany(
                f"INSERT INTO chat_message ({columns}) VALUES (%s, %s, %s, %s, %s, '', 0, 0, 1, '', '[]')",  # noqa: S608
                [(c, r, s, t, connection.ops.adapt_datetimefield_value(d)) for c, r, s, t, d in batch],
            )


def _prepare(total: int, own: int) -> tuple[object, list[tuple[int, list[int]]], float]:
    """The bench's users and messages, made again unless they are there already."""
    from chat.models import Message

    user = _users().filter(username=PREFIX).first()
    if (
        user is not None
        and Message.objects.filter(conversation__owner__username__startswith=PREFIX).count() == total
    ):
        chats = [
            (c.pk, list(c.participants.values_list("companion_id", flat=True)))
            for c in user.conversations.order_by("pk")
        ]
        return user, chats, 0.0
    _clear()
    started = time.perf_counter()
    words = _vocabulary()
    rng = random.Random(SEED)
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:  # a bulk load builds the search indexes once, after the rows, not row by row
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for name in POSTGRES_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
    user, chats = _make_owner(PREFIX, 5, USER_CONVERSATIONS, 5)
    _load(chats, own, rng, words, NEEDLES)
    others = total - own
    for n in range(OTHER_USERS if others else 0):
        _other, other_chats = _make_owner(f"{PREFIX}{n}", 1, OTHER_CONVERSATIONS, 0)
        _load(other_chats, others // OTHER_USERS, rng, words, NEEDLES // 10)
    with connection.cursor() as cursor:
        if postgres:
            for statement in POSTGRES_INDEXES.values():
                cursor.execute(statement)
            cursor.execute("ANALYZE chat_message")
            cursor.execute("ANALYZE chat_conversation")
            cursor.execute("ANALYZE chat_participant")
    return user, chats, time.perf_counter() - started


def _queries(user, chats) -> list[tuple[str, dict]]:
    words = _vocabulary()
    companion = chats[0][1][0]
    month = timezone.now() - timedelta(days=30)
    return [
        ("most common word (~3/4 of messages)", {"query": words[0] + " "}),
        ("common word (~1/8)", {"query": words[10] + " "}),
        ("medium word (~1/70)", {"query": words[100] + " "}),
        ("rare word (~1/1000)", {"query": words[2000] + " "}),
        ("needle (100 messages)", {"query": NEEDLE + " "}),
        ("prefix, 3 letters", {"query": words[50][:3]}),
        ("prefix, 5 letters (typing)", {"query": words[100][:5]}),
        ("two words", {"query": f"{words[30]} {words[300]} "}),
        ("phrase", {"query": f'"{words[1]} {words[2]}"'}),
        ("common word + companion", {"query": words[10] + " ", "companion_id": companion}),
        ("medium word + last 30 days", {"query": words[100] + " ", "since": month}),
        ("medium word + written by me", {"query": words[100] + " ", "author": "me"}),
        ("needle + one conversation", {"query": NEEDLE + " ", "conversation_id": chats[3][0]}),
    ]


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm caches and the plan
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _write_cost(conversation_id: int, sender_id: int, *, drop: list[str]) -> list[float]:
    """Milliseconds per message written with the ORM, in a transaction rolled back; ``drop``:
    statements run first in it (the index taken away)."""
    from chat.models import Message

    text = " ".join(_vocabulary()[n * 37 % VOCABULARY] for n in range(40))
    times: list[float] = []
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                for statement in drop:
                    cursor.execute(statement)
            for n in range(WRITES):
                started = time.perf_counter()
                Message.objects.create(
                    conversation_id=conversation_id,
                    role="assistant",
                    sender_id=sender_id,
                    content=f"{text} {n}",
                )
                times.append((time.perf_counter() - started) * 1000)
            raise _Rollback
    except _Rollback:
        pass
    return times[WRITES // 10 :]  # the first ones warm up


def _write_costs(chats) -> dict:

    conversation, members = chats[-1]
    if connection.vendor == "postgresql":
        without = [
            "DROP TRIGGER chat_message_search_owner ON chat_message",
            *(f"DROP INDEX {name}" for name in POSTGRES_INDEXES),
            "ALTER TABLE chat_message DROP COLUMN search_vector",
            "ALTER TABLE chat_message DROP COLUMN search_owner",
        ]
    else:
        without = [f"DROP TRIGGER {name}" for name in SQLITE_TRIGGERS]
    rounds: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(2):  # interleaved: drift on a shared machine hits both alike
        rounds["with"] += _write_cost(conversation, members[0], drop=[])
        rounds["without"] += _write_cost(conversation, members[0], drop=without)
    return {
        "write_with_index_ms": round(statistics.mean(rounds["with"]), 3),
        "write_without_index_ms": round(statistics.mean(rounds["without"]), 3),
        "write_index_cost_ms": round(statistics.mean(rounds["with"]) - statistics.mean(rounds["without"]), 3),
        "write_with_index_p50_ms": round(statistics.median(rounds["with"]), 3),
        "write_without_index_p50_ms": round(statistics.median(rounds["without"]), 3),
    }


def _trigram(user, chats) -> dict:
    """pg_trgm on the user's 100,000 messages (a partial index on their conversations), rolled back:
    its build time, what it adds to a write, and a typo query ("lighthuose")."""
    from chat.models import Message

    ids = ", ".join(str(pk) for pk, _members in chats)
    conversation, members = chats[-1]
    result: dict = {}
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                started = time.perf_counter()
                cursor.execute(
                    "CREATE INDEX bench_message_trgm ON chat_message USING gin (content gin_trgm_ops)"
                    f" WHERE conversation_id IN ({ids})"
                )
                result["trgm_build_s"] = round(time.perf_counter() - started, 1)
                cursor.execute(
                    "SELECT pg_relation_size('bench_message_trgm'), pg_relation_size('chat_message_search')"
                )
                trigram_bytes, words_bytes = cursor.fetchone()
                # The trigram index covers the user's tenth of the table; the word index all of it.
                result["trgm_index_mb_per_100k"] = round(trigram_bytes / 2**20, 1)
                result["fts_index_mb_per_100k"] = round(words_bytes / 2**20 / 10, 1)
                cursor.execute("ANALYZE chat_message")
                sql = (
                    "SELECT m.id FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id"
                    " WHERE m.conversation_id = ANY(%s) AND c.owner_id = %s AND %s <%% m.content"
                    " ORDER BY word_similarity(%s, m.content) DESC LIMIT 21"
                )

                def typo() -> None:
                    cursor.execute(sql, [[pk for pk, _members in chats], user.pk, "lighthuose", "lighthuose"])
                    cursor.fetchall()

                times = _timed(typo, 10)
                result["trgm_typo_query_p50_ms"] = round(statistics.median(times), 1)
            text = " ".join(_vocabulary()[n * 37 % VOCABULARY] for n in range(40))
            writes = []
            for n in range(WRITES):
                started = time.perf_counter()
                Message.objects.create(
                    conversation_id=conversation,
                    role="assistant",
                    sender_id=members[0],
                    content=f"{text} {n}",
                )
                writes.append((time.perf_counter() - started) * 1000)
            result["write_with_trgm_ms"] = round(statistics.mean(writes[WRITES // 10 :]), 3)
            raise _Rollback
    except _Rollback:
        pass
    return result


def run() -> dict:
    from chat.search import message_search

    total, own = SIZES.get(connection.vendor, SIZES["sqlite"])
    user, chats, loaded = _prepare(total, own)
    if loaded:
        print(f"made {total:,} messages ({own:,} of one user) in {loaded:.0f} s")
    rows, results, everything = [], [], []
    for label, kwargs in _queries(user, chats):
        found = message_search(user=user, **kwargs)
        times = _timed(lambda k=kwargs: message_search(user=user, **k), REPEATS)
        everything += times
        result = {
            "query": label,
            "hits_on_page": len(found.hits),
            "more": found.has_more,
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(percentile(times, 95), 2),
        }
        results.append(result)
        rows.append(tuple(result.values()))
    print(f"message_search, {total:,} messages, {own:,} of the user ({connection.vendor}); ms")
    print(table(rows, ("query", "hits", "more", "p50", "p95")))
    overall = {
        "all_queries_p50_ms": round(statistics.median(everything), 2),
        "all_queries_p95_ms": round(percentile(everything, 95), 2),
    }
    print(f"all queries: p50 {overall['all_queries_p50_ms']} ms, p95 {overall['all_queries_p95_ms']} ms")
    writes = _write_costs(chats)
    print(
        f"one message written: {writes['write_with_index_ms']} ms with the index,"
        f" {writes['write_without_index_ms']} ms without (mean; the index adds"
        f" {writes['write_index_cost_ms']} ms)"
    )
    trigram = _trigram(user, chats) if connection.vendor == "postgresql" else {}
    if trigram:
        print(
            f"pg_trgm on the user's messages: built in {trigram['trgm_build_s']} s, typo query p50"
            f" {trigram['trgm_typo_query_p50_ms']} ms, a write with it {trigram['write_with_trgm_ms']} ms;"
            f" {trigram['trgm_index_mb_per_100k']} MB per 100,000 messages"
            f" (the word index: {trigram['fts_index_mb_per_100k']} MB)"
        )
    return {
        "vendor": connection.vendor,
        "messages": total,
        "user_messages": own,
        "load_s": round(loaded),
        "queries": results,
        **overall,
        **writes,
        **trigram,
    }


if __name__ == "__main__":
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companionhub.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run()
