"""Assembling one reply's prompt: a 200-message history, a 1,000-entry lorebook, 10,000 memories.

Runs in this process against the configured database. It times
``chat.prompt_assembly.prompt_for_run`` (history read, lorebooks, memories, the token
budget, the final count) for a conversation of 200 messages, with an estimate counter
(no tokenizer round trips: those are cached per text after the first turn anyway).

When the lorebook scanner and memory retrieval are in place, it seeds real rows (one
lorebook of 1,000 entries attached to the companion, 10,000 memories) and times the whole
path. While they are still interface stubs, it times the budget and assembly with
in-memory fakes standing in for them (a scan that fires 20 of 1,000 entries, a retrieval
that picks from 10,000 memories), so the figure is the assembly's own cost.
"""

from __future__ import annotations

import random
import time

from django.db import transaction

from bench.stats import percentile, table

HISTORY = 200
ENTRIES = 1_000
MEMORIES = 10_000
REPEATS = 100


class _Rollback(Exception):
    pass


def _pieces_exist() -> bool:
    from lorebooks import scanning
    from memories import retrieval

    try:
        scanning.scan([], messages=[], char="a", user="b", budget_tokens=10, count_tokens=len)
        retrieval.relevant_memories(
            owner_id=0, companion_id=0, query_text="x", query_vector=None, embedding_model="",
            budget_tokens=10, count_tokens=len,
        )  # fmt: skip
    except NotImplementedError:
        return False
    return True


def _fake_pieces():
    """Stand-ins with the real pieces' shapes and a comparable amount of work per call."""
    from lorebooks import scanning
    from memories.retrieval import Recalled

    rng = random.Random(16)
    entries = [(f"key{n}", f"Entry {n}: " + "lore text " * 20) for n in range(ENTRIES)]
    memories = [(n, f"Memory {n}: " + "a fact " * 8, n % 500 == 0) for n in range(MEMORIES)]

    def scan(books, *, messages, always_scanned=(), char, user, budget_tokens, count_tokens, rng=None):
        text = " ".join([*messages[-4:], *always_scanned]).lower()
        fired, spent = [], 0
        for uid, (key, content) in enumerate(entries):
            if key in text or uid % 50 == 0:
                tokens = count_tokens(content)
                if spent + tokens > budget_tokens:
                    break
                spent += tokens
                fired.append(
                    scanning.Fired(1, "Bench", uid, key, content, scanning.BEFORE_CHAR, 4, 100, tokens, "key")
                )
        return scanning.ScanResult(fired=fired)

    def relevant(
        *,
        owner_id,
        companion_id,
        query_text,
        query_vector,
        embedding_model,
        budget_tokens,
        count_tokens,
        limit=20,
    ):
        words = set(query_text.lower().split())
        scored = sorted(
            (
                (len(words & set(text.lower().split())) + rng.random(), n, text, pinned)
                for n, text, pinned in memories
            ),
            reverse=True,
        )
        picked, spent = [], 0
        for score, n, text, pinned in sorted(scored[:200], key=lambda s: (not s[3], -s[0]))[:limit]:
            tokens = count_tokens(text)
            if spent + tokens > budget_tokens:
                break
            spent += tokens
            picked.append(Recalled(n, text, pinned, score, tokens))
        return picked

    return scan, relevant


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


def _scenario(real: bool) -> dict:
    from accounts.models import User
    from chat import embeddings
    from chat.admission import run_admit
    from chat.models import PipelineRun
    from chat.prompt_assembly import prompt_for_run
    from chat.runs import run_create
    from chat.tokens import EstimateCounter
    from lorebooks import scanning
    from lorebooks import selectors as lore_selectors
    from lorebooks.models import Lorebook
    from lorebooks.scanning import ScanBook
    from memories import retrieval
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
    saved = (scanning.scan, retrieval.relevant_memories, embeddings.embed_texts, lore_selectors.scan_books)
    if real:
        _seed_real(user, companion)
    else:
        scan, relevant = _fake_pieces()
        scanning.scan, retrieval.relevant_memories = scan, relevant
        lore_selectors.scan_books = lambda owner_id, ids: [ScanBook(1, "Bench", ())]
        companion.lorebooks.add(Lorebook.objects.create(owner=user, name="Bench book"))
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
        scanning.scan, retrieval.relevant_memories, embeddings.embed_texts, lore_selectors.scan_books = saved
    times = times[1:]  # the first warms caches
    return {
        "pieces": "real rows" if real else "in-memory fakes",
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "prompt_tokens": sent.tokens,
        "lore_entries": len(sent.record["lore"]),
        "memories": len(sent.record["memories"]),
        "history_sent": len([m for m in sent.messages if m["role"] != "system"]),
    }


def run() -> dict:
    real = _pieces_exist()
    try:
        with transaction.atomic():
            result = _scenario(real)
            raise _Rollback
    except _Rollback:
        pass
    print(
        table(
            [
                (
                    result["pieces"],
                    result["p50_ms"],
                    result["p95_ms"],
                    result["prompt_tokens"],
                    result["history_sent"],
                )
            ],
            ("lore and memories", "p50 ms", "p95 ms", "prompt tokens", "messages sent"),
        )
    )
    return result
