"""Full-text ranking of one companion's memories, by each database's own index.

Two uses: retrieval ranks memories by the recent messages' words when it cannot compare
vectors (``ranked``: any word counts, the more and rarer the better), and the Memories page
searches by what the user typed (``matching``: every word, the last one as a prefix).
Only runs of word characters reach either database, each quoted, so no search syntax can
come from the text. The index is ``memories/search_index.py``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from memories.search_index import FTS_TABLE, SEARCH_CONFIGS

_WORD = re.compile(r"\w+")
MAX_QUERY_CHARS = 4000  # of the recent messages: their end (the newest) is what counts
MAX_WORDS = 16  # more only slows the query (each word is checked against every match)
MIN_WORD = 3
MAX_SEARCH_WORDS = 12


@dataclass(frozen=True)
class Ranked:
    memory_id: int
    score: float  # the best match is 1.0
    updated_at: datetime.datetime


def retrieval_words(text: str) -> list[str]:
    """The words of ``text`` worth matching: distinct, at least three letters, the longest
    ``MAX_WORDS`` (short words are mostly grammar; stop words are dropped by the index)."""
    words = dict.fromkeys(w.lower() for w in _WORD.findall(text[-MAX_QUERY_CHARS:]) if len(w) >= MIN_WORD)
    return sorted(words, key=len, reverse=True)[:MAX_WORDS]


def search_words(text: str) -> tuple[list[str], str]:
    """What the user typed on the Memories page: whole words, and the last as a prefix unless
    the text ends with a space."""
    words = [w.lower() for w in _WORD.findall(text[:200])][:MAX_SEARCH_WORDS]
    if words and not text.endswith(" ") and len(words[-1]) >= 2:
        return words[:-1], words[-1]
    return words, ""


def ranked(
    *,
    owner_id: int,
    companion_id: int,
    words: Sequence[str],
    limit: int,
    without_model: str | None = None,
) -> list[Ranked]:
    """The companion's memories matching any of ``words``, best first; ``without_model``: only
    those with no vector of that model (the others were ranked by vector)."""
    if not words or limit <= 0:
        return []
    if connection.vendor == "postgresql":
        tsquery = " | ".join(f"'{word}'" for word in words)
        return _postgres(owner_id, companion_id, tsquery, limit, without_model)
    # FTS5 does not stem: a word matches the words it begins (a plural's "s" dropped first), so
    # "lighthouse" finds "lighthouses" and "sisters" finds "sister".
    terms = [f'"{_stem(word)}" *' for word in words]
    return _sqlite(owner_id, companion_id, " OR ".join(terms), limit, without_model)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


def matching(*, owner_id: int, companion_id: int, words: Sequence[str], prefix: str, limit: int) -> list[int]:
    """Ids of the companion's memories with every word (and a word starting with ``prefix``)."""
    if not words and not prefix:
        return []
    if connection.vendor == "postgresql":
        terms = [f"'{word}'" for word in words] + ([f"'{prefix}':*"] if prefix else [])
        hits = _postgres(owner_id, companion_id, " & ".join(terms), limit, None)
    else:
        terms = [f'"{word}"' for word in words] + ([f'"{prefix}" *'] if prefix else [])
        hits = _sqlite(owner_id, companion_id, " AND ".join(terms), limit, None)
    return [hit.memory_id for hit in hits]


def _without(without_model: str | None) -> tuple[str, list[Any]]:
    if without_model is None:
        return "", []
    return " AND (m.embedding IS NULL OR m.embedding_model <> %s)", [without_model]


def _postgres(
    owner_id: int, companion_id: int, tsquery: str, limit: int, without_model: str | None
) -> list[Ranked]:
    # A memory is stemmed in its owner's language at the time: the query is parsed in each.
    query = " || ".join("to_tsquery(%s::regconfig, %s)" for _ in SEARCH_CONFIGS)
    params: list[Any] = [value for config in SEARCH_CONFIGS for value in (config, tsquery)]
    extra, extra_params = _without(without_model)
    sql = (
        "SELECT m.id, ts_rank_cd(m.search_vector, q.q) AS rank, m.updated_at"  # noqa: S608
        f" FROM memories_memory m, (SELECT {query} AS q) q"
        f" WHERE m.companion_id = %s AND m.owner_id = %s AND m.search_vector @@ q.q{extra}"
        " ORDER BY rank DESC, m.updated_at DESC, m.id DESC LIMIT %s"
    )
    rows = _rows(sql, [*params, companion_id, owner_id, *extra_params, limit])
    best = max((float(rank) for _pk, rank, _u in rows), default=0.0) or 1.0
    return [Ranked(pk, float(rank) / best, _aware(updated)) for pk, rank, updated in rows]


def _sqlite(
    owner_id: int, companion_id: int, match: str, limit: int, without_model: str | None
) -> list[Ranked]:
    extra, extra_params = _without(without_model)
    sql = (
        "SELECT m.id, f.rank, m.updated_at"  # noqa: S608
        f" FROM {FTS_TABLE} f JOIN memories_memory m ON m.id = f.rowid"
        f" WHERE {FTS_TABLE} MATCH %s AND m.companion_id = %s AND m.owner_id = %s{extra}"
        " ORDER BY f.rank, m.updated_at DESC, m.id DESC LIMIT %s"
    )
    rows = _rows(sql, [match, companion_id, owner_id, *extra_params, limit])
    # bm25: lower (more negative) is better; the best becomes 1.0.
    best = min((float(rank) for _pk, rank, _u in rows), default=0.0) or -1.0
    return [Ranked(pk, float(rank) / best, _aware(updated)) for pk, rank, updated in rows]


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _aware(value: Any) -> datetime.datetime:
    """A raw cursor's datetime: SQLite gives text (UTC), PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value
