"""The cost of one World Info scan (``lorebooks.scanning.scan``), the work every chat turn does.

A 1,000-entry book (plain, whole-word and RE2 regex keys, some with secondary keys) plus a
five-link recursive chain, scanned over 20 messages of ordinary length. Pure Python: no
database, no Redis. Figures: the first scan (key and pattern caches cold) and p50/p95 of
the scans after it.
"""

from __future__ import annotations

import random
import statistics
import time

from bench.stats import percentile
from lorebooks import scanning
from lorebooks.scanning import AND_ANY, AT_DEPTH, NOT_ANY, ScanBook, ScanEntry

ENTRIES = 1_000
MESSAGES = 20
CHAIN = 5
SCANS = 300
VOCABULARY = 3_000


def _book(rng: random.Random) -> ScanBook:
    entries = []
    for uid in range(1, ENTRIES + 1):
        kind = uid % 10
        words = [f"word{rng.randrange(VOCABULARY):04d}" for _ in range(3)]
        fields: dict = {}
        if kind < 6:  # plain substring keys
            keys = tuple(words[:2])
        elif kind < 8:  # whole words, one of them with secondary keys
            keys = tuple(words[:2])
            fields = {"match_whole_words": True}
            if kind == 7:
                fields["secondary_keys"] = (words[2], f"word{rng.randrange(VOCABULARY):04d}")
                fields["selective_logic"] = AND_ANY if uid % 20 < 10 else NOT_ANY
        else:  # regex keys
            keys = (rf"/\b{words[0]}s?\b/i", f"/{words[1]}|{words[2]}/")
        content = f"Lore {uid} about {words[0]}: " + "filler " * 40
        entries.append(ScanEntry(uid=uid, keys=keys, content=content, order=uid % 300, **fields))
    for link in range(CHAIN + 1):  # chain0 in the chat fires link 0, whose text names chain1, ...
        entries.append(
            ScanEntry(
                uid=ENTRIES + 1 + link,
                keys=(f"chain{link}",),
                content=f"Link {link} leads to chain{link + 1}.",
                order=500,  # the chain goes in before the rest is counted
                position=AT_DEPTH,
                depth=2,
            )
        )
    return ScanBook(
        book_id=1, name="Bench", entries=tuple(entries), scan_depth=MESSAGES, recursion_depth=CHAIN
    )


def _messages(rng: random.Random) -> list[str]:
    """Ordinary chat (~350 characters a message) naming a few dozen of the book's keys."""
    messages = []
    for n in range(MESSAGES):
        said = [f"talk{rng.randrange(VOCABULARY)}" for _ in range(45)]
        said[rng.randrange(45)] = f"word{rng.randrange(VOCABULARY):04d}"
        if n == MESSAGES // 2:
            said.insert(0, "chain0")
        messages.append(" ".join(said))
    return messages


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


def run() -> dict:
    rng = random.Random(16)
    book = _book(rng)
    messages = _messages(rng)
    scanning._key.cache_clear()
    scanning._compile.cache_clear()
    scanning._key_list.cache_clear()

    def once() -> tuple[float, scanning.ScanResult]:
        started = time.perf_counter()
        result = scanning.scan(
            [book],
            messages=messages,
            always_scanned=["*The lamp gutters.*", "Summary: they met at the harbour."],
            char="Keeper",
            user="Alice",
            budget_tokens=8_000,
            count_tokens=_tokens,
            rng=random.Random(1),
        )
        return (time.perf_counter() - started) * 1000, result

    cold, result = once()
    times = [once()[0] for _ in range(SCANS)]
    chain = sum(1 for fired in result.fired if fired.reason.startswith("recursion"))
    figures = {
        "entries": len(book.entries),
        "messages": MESSAGES,
        "fired": len(result.fired),
        "over_budget": len(result.over_budget),
        "recursive": chain,
        "cold_ms": round(cold, 2),
        "scans": SCANS,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 95), 2),
    }
    print(
        f"Lorebook scan, {figures['entries']} entries over {MESSAGES} messages: p50 {figures['p50_ms']} ms, "
        f"p95 {figures['p95_ms']} ms ({SCANS} scans; first, caches cold: {figures['cold_ms']} ms); "
        f"{figures['fired']} fired ({chain} by recursion), {figures['over_budget']} over budget"
    )
    return figures


if __name__ == "__main__":
    run()
