"""Assembling one reply's prompt: a 200-message history, a 1,000-entry lorebook, 10,000 memories.

Runs in this process against the configured database. It times
``chat.prompt_assembly.prompt_for_run`` (history read, lorebooks, memories, the token
budget, the final count) for a conversation of 200 messages, with an estimate counter
(no tokenizer round trips: those are cached per text after the first turn anyway).

It seeds real rows (one lorebook of 1,000 entries attached to the companion, 10,000
memories without vectors, so retrieval ranks by full text) and times the whole path.
"""

from __future__ import annotations

import time

from django.db import transaction

from bench.stats import percentile, table

HISTORY = 200
ENTRIES = 1_000
MEMORIES = 10_000
REPEATS = 100


class _Rollback(Exception):
    pass


def _seed_real(user, companion) -> None:
    from lorebooks.models import Lorebook, LoreEntry
    from memories.models import Memory

    book = Lorebook.objects.create(owner=user, name="Bench book")
    LoreEntry.objects.bulk_create(
        LoreEntry(lorebook=book, uid=n, keys=[f"key{n}"], content=f"Entry {n}: " + "lore text " * 20)
        for n in range(ENTRIES)
    )
    companion.lorebooks.add(book)
    Memory.objects.bulk_create(
        (
            Memory(owner=user, companion=companion, text=f"Memory {n}: " + "a fact " * 8, pinned=n % 500 == 0)
            for n in range(MEMORIES)
        ),
        batch_size=2000,
    )


def _scenario() -> dict:
    from accounts.models import User
    from chat import embeddings
    from chat.admission import run_admit
    from chat.models import PipelineRun
    from chat.prompt_assembly import prompt_for_run
    from chat.runs import run_create
    from chat.tokens import EstimateCounter
    from tests.chat.factories import add_reply, add_user_message, make_chat
    from tests.companions.factories import make_companion

    user = User.objects.create_user(username=f"bench{time.time_ns() % 10**9}")
    companion = make_companion(user)
    conversation = make_chat(companion, greeting="*waves* Hello!")
    for n in range(HISTORY // 2 - 1):
        add_user_message(conversation, f"Message {n} about key{n * 7} and the weather " * 3)
        add_reply(conversation, companion, f"Reply {n}: " + "words of a reply " * 12)
    message = add_user_message(conversation, "What do you remember about key42?")
    run = run_create(
        companion=companion,
        want_image=False,
        admission=run_admit(user, want_image=False),
        conversation=conversation,
        turn=message.turn,
    )
    saved = embeddings.embed_texts
    _seed_real(user, companion)
    embeddings.embed_texts = lambda companion_id, texts: None  # full-text retrieval: no server here
    run = PipelineRun.objects.select_related("conversation", "turn__message", "companion").get(pk=run.pk)
    counter = EstimateCounter(3.5)
    times: list[float] = []
    try:
        for _ in range(REPEATS + 1):
            started = time.perf_counter()
            sent = prompt_for_run(
                run, companion, user_name="Alice", counter=counter, context_length=8192, reserve=400
            )
            times.append((time.perf_counter() - started) * 1000)
    finally:
        embeddings.embed_texts = saved
    times = times[1:]  # the first warms caches
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "prompt_tokens": sent.tokens,
        "lore_entries": len(sent.record["lore"]),
        "memories": len(sent.record["memories"]),
        "history_sent": len([m for m in sent.messages if m["role"] != "system"]),
    }


def run() -> dict:
    try:
        with transaction.atomic():
            result = _scenario()
            raise _Rollback
    except _Rollback:
        pass
    print(
        table(
            [
                (
                    result["p50_ms"],
                    result["p95_ms"],
                    result["prompt_tokens"],
                    result["history_sent"],
                )
            ],
            ("p50 ms", "p95 ms", "prompt tokens", "messages sent"),
        )
    )
    return result
