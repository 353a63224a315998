"""Full-text ranking of one companion's memories, by each database's own index.

Two uses: retrieval ranks memories by the recent messages' words when it cannot compare
vectors (``ranked``: any word counts, the more and rarer the better), and the Memories page
searches by what the user typed (``matching``: every word, the last one as a prefix).
Only runs of word characters reach either database, each quoted, so no search syntax can
come from the text. The index is ``memories/search_index.py``.

Retrieval runs on every turn, so its cost is bounded whatever the memories hold (under 5 ms
at 10,000 memories of one companion, ``bench/bench_memories.py``):

* the query keeps at most ``MAX_WORDS`` words, stop words (``memories/stopwords.py``) dropped
  before the cap so the slots go to words that say something: on PostgreSQL the rarest in
  the memories (``common_shares``) and then the newest, on SQLite the newest;
* PostgreSQL parses them in the owner's own text-search configuration only (the one their
  memories are stemmed with: ``search_index.config_sql``), not in every language: each
  extra configuration multiplies the terms every matching row is ranked against;
* PostgreSQL's column statistics (``pg_stats.most_common_elems``, kept by ANALYZE) say which
  terms are common (in more than ``COMMON_SHARE`` of memories, such as "user"). Rows are
  selected through the GIN index by the other terms, at most ``MAX_CANDIDATES`` of them, plus
  at most ``MAX_COMMON_CANDIDATES`` rows that match only common terms, and only those are
  ranked with ``ts_rank`` over all the terms. Ranking is what costs (each row is read and
  scored), so a word in every memory can no longer make a turn rank them all. When more rows
  match than the bound, which ones are ranked is the database's choice (in storage order);
  they all match a term of the query.

SQLite's FTS5 ranks with bm25, which weighs rare terms itself, but scores every row the
query matches. So the words are chosen by their document counts (an ``fts5vocab`` table,
``search_index.VOCAB_TABLE``): the rarest that occur at all, as many as keep the documents
they match (summed) within ``MAX_CANDIDATES``, and always the rarest one (each count kept
``SHARES_TTL`` seconds in the process). A query made of
words that most memories contain ("the user likes ...") then ranks the rows of its rarest
word only, instead of every memory. Without the vocabulary table (a database migrated before
it existed, until ``sqlite_ensure`` makes it) every word is used, as before.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection

from companionhub.fulltext_index import config_sql
from memories.search_index import FTS_TABLE, VOCAB_TABLE
from memories.stopwords import STOP_WORDS

_WORD = re.compile(r"\w+")
MAX_QUERY_CHARS = 4000  # of the recent messages: their end (the newest) is what counts
MAX_WORDS = 16  # more only slows the query (each matching row is ranked against every word)
MAX_QUERY_WORDS = 64  # words offered to choose those from
MIN_WORD = 3
MAX_SEARCH_WORDS = 12
COMMON_SHARE = 0.05  # a term in more of the memories than this ranks but does not select
MAX_CANDIDATES = 1000  # rows matching the rarer terms ranked at most
MAX_COMMON_CANDIDATES = 200  # rows matching only common terms ranked at most


@dataclass(frozen=True)
class Ranked:
    memory_id: int
    score: float  # the best match is 1.0
    updated_at: datetime.datetime


def retrieval_words(text: str) -> list[str]:
    """The words of ``text`` worth matching: distinct, at least three letters, no stop words,
    the newest first, at most ``MAX_QUERY_WORDS``. ``ranked`` keeps ``MAX_WORDS`` of them:
    on PostgreSQL the rarest in the memories, on SQLite the newest (bm25 weighs rarity)."""
    words = dict.fromkeys(
        word
        for word in (w.lower() for w in reversed(_WORD.findall(text[-MAX_QUERY_CHARS:])))
        if len(word) >= MIN_WORD and word not in STOP_WORDS
    )
    return list(words)[:MAX_QUERY_WORDS]


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
    words = [word for word in words if _WORD.fullmatch(word)][:MAX_QUERY_WORDS]
    if not words or limit <= 0:
        return []
    if connection.vendor == "postgresql":
        return _postgres_ranked(owner_id, companion_id, words, limit, without_model)
    # FTS5 does not stem: a word matches the words it begins (a plural's "s" dropped first), so
    # "lighthouse" finds "lighthouses" and "sisters" finds "sister".
    stems = _sqlite_selecting(list(dict.fromkeys(_stem(word) for word in words[:MAX_WORDS])))
    if not stems:
        return []
    terms = [f'"{stem}" *' for stem in stems]
    return _sqlite(owner_id, companion_id, " OR ".join(terms), limit, without_model)


def _sqlite_selecting(stems: list[str]) -> list[str]:
    """The prefixes that select the rows to rank: the rarest present ones, within
    ``MAX_CANDIDATES`` documents (the rarest always). Document counts are the whole table's,
    summed over the terms a prefix begins (an upper bound)."""
    try:
        counts = [(_sqlite_documents(stem), stem) for stem in stems]
    except DatabaseError:  # no vocabulary table yet: every word, unbounded
        return stems
    chosen: list[str] = []
    total = 0
    for documents, stem in sorted(count for count in counts if count[0] > 0):
        if chosen and total + documents > MAX_CANDIDATES:
            break
        chosen.append(stem)
        total += documents
    return chosen


# Document counts change slowly (a few memories a turn): each is kept ``SHARES_TTL`` seconds in
# this process, as PostgreSQL's statistics are, so a turn looks up only the words it has new.
_documents: dict[str, tuple[float, int]] = {}
MAX_CACHED_COUNTS = 20_000


def _sqlite_documents(stem: str) -> int:
    now = time.monotonic()
    cached = _documents.get(stem)
    if cached is not None and now - cached[0] < SHARES_TTL:
        return cached[1]
    rows = _rows(
        f"SELECT coalesce(sum(doc), 0) FROM {VOCAB_TABLE} WHERE term >= %s AND term < %s",  # noqa: S608
        [stem, stem + "\U0010ffff"],
    )
    count = int(rows[0][0])
    if count:  # a word in no memory yet may be in the next one: asked again, never kept as 0
        if len(_documents) >= MAX_CACHED_COUNTS:
            _documents.clear()
        _documents[stem] = (now, count)
    return count


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


def matching(*, owner_id: int, companion_id: int, words: Sequence[str], prefix: str, limit: int) -> list[int]:
    """Ids of the companion's memories with every word (and a word starting with ``prefix``)."""
    if not words and not prefix:
        return []
    if connection.vendor == "postgresql":
        terms = [f"'{word}'" for word in words] + ([f"'{prefix}':*"] if prefix else [])
        return _postgres_matching(owner_id, companion_id, " & ".join(terms), limit)
    terms = [f'"{word}"' for word in words] + ([f'"{prefix}" *'] if prefix else [])
    return [hit.memory_id for hit in _sqlite(owner_id, companion_id, " AND ".join(terms), limit, None)]


def _without(without_model: str | None) -> tuple[str, list[Any]]:
    if without_model is None:
        return "", []
    return " AND (m.embedding IS NULL OR m.embedding_model <> %s)", [without_model]


# The query's words (newest first) as the owner's memories are stemmed (stop words of that
# language gone), with where each first occurs: the newest has the smallest position.
_TERMS_SQL = (
    "SELECT t.lexeme, t.positions[1] FROM unnest(to_tsvector("  # noqa: S608
    f"(SELECT {config_sql('u.language')} FROM accounts_user u WHERE u.id = %s), %s)) t"
)
# The share of memories holding each of the commonest lexemes, as the last ANALYZE counted.
_SHARES_SQL = (
    "SELECT e.lexeme, e.share FROM pg_stats p,"
    " unnest(p.most_common_elems::text::text[], p.most_common_elem_freqs) e(lexeme, share)"
    " WHERE p.schemaname = current_schema() AND p.tablename = 'memories_memory'"
    " AND p.attname = 'search_vector' AND e.lexeme IS NOT NULL AND e.share > %s"
)
SHARES_TTL = 600.0  # seconds a process keeps the common lexemes (they change with ANALYZE only)
_shares: tuple[float, dict[str, float]] = (-SHARES_TTL, {})


def common_shares() -> dict[str, float]:
    """PostgreSQL: the lexemes in more than ``COMMON_SHARE`` of all memories, with that share.

    Read from the planner's statistics (reading them costs a millisecond: kept for
    ``SHARES_TTL`` in this process). They count every companion's memories, not one's: a word
    common in one companion's memories only is still bounded by ``MAX_CANDIDATES``.
    """
    global _shares
    loaded, shares = _shares
    if time.monotonic() - loaded < SHARES_TTL:
        return shares
    with connection.cursor() as cursor:
        cursor.execute(_SHARES_SQL, [COMMON_SHARE])
        shares = {lexeme: float(share) for lexeme, share in cursor.fetchall()}
    _shares = (time.monotonic(), shares)
    return shares


def forget_common_shares() -> None:
    """Read the statistics (SQLite: the document counts) again on the next query (in tests)."""
    global _shares
    _shares = (-SHARES_TTL, {})
    _documents.clear()


def query_terms(owner_id: int, words: Sequence[str]) -> tuple[list[str], list[str]]:
    """PostgreSQL: the lexemes of ``words`` in the owner's configuration, at most
    ``MAX_WORDS``, as (rarer, common): the rarer first, then the newest."""
    with connection.cursor() as cursor:
        cursor.execute(_TERMS_SQL, [owner_id, " ".join(words)])
        found = cursor.fetchall()
    shares = common_shares()
    lexemes = sorted(found, key=lambda row: (shares.get(row[0], 0.0), row[1] or 0, row[0]))
    chosen = [lexeme for lexeme, _position in lexemes[:MAX_WORDS]]
    return [t for t in chosen if t not in shares], [t for t in chosen if t in shares]


def _tsquery(lexemes: Sequence[str], operator: str) -> str:
    """Lexemes, already normalised, as tsquery text (quoted: a lexeme is never an operator)."""
    quoted = ("'{}'".format(lexeme.replace("\\", "\\\\").replace("'", "''")) for lexeme in lexemes)
    return f" {operator} ".join(quoted)


def _postgres_ranked(
    owner_id: int, companion_id: int, words: Sequence[str], limit: int, without_model: str | None
) -> list[Ranked]:
    rare, common = query_terms(owner_id, words)
    if not rare and not common:
        return []
    extra, extra_params = _without(without_model)
    scope = "m.companion_id = %s AND m.owner_id = %s"
    scope_params: list[Any] = [companion_id, owner_id, *extra_params]
    select = (
        "SELECT m.id, m.search_vector, m.updated_at FROM memories_memory m"  # noqa: S608
        f" WHERE {scope}{extra} AND m.search_vector @@ %s::tsquery"
    )
    # The rarer terms select (each matching row is ranked); only common terms: a bounded few.
    parts = [f"({select} LIMIT %s)"]
    bound = MAX_CANDIDATES if rare else MAX_COMMON_CANDIDATES
    params: list[Any] = [*scope_params, _tsquery(rare or common, "|"), bound]
    if rare and common:
        parts.append(f"({select} AND NOT m.search_vector @@ %s::tsquery LIMIT %s)")
        params += [*scope_params, _tsquery(common, "|"), _tsquery(rare, "|"), MAX_COMMON_CANDIDATES]
    sql = (
        "SELECT c.id, ts_rank(c.search_vector, %s::tsquery) AS rank, c.updated_at"  # noqa: S608
        f" FROM ({' UNION ALL '.join(parts)}) c"
        " ORDER BY rank DESC, c.updated_at DESC, c.id DESC LIMIT %s"
    )
    rows = _rows(sql, [_tsquery([*rare, *common], "|"), *params, limit])
    best = max((float(rank) for _pk, rank, _u in rows), default=0.0) or 1.0
    return [Ranked(pk, float(rank) / best, _aware(updated)) for pk, rank, updated in rows]


def _postgres_matching(owner_id: int, companion_id: int, tsquery: str, limit: int) -> list[int]:
    # Parsed in the owner's configuration, the one their memories are stemmed with.
    sql = (
        "SELECT m.id FROM memories_memory m,"  # noqa: S608
        f" (SELECT to_tsquery({config_sql('u.language')}, %s) AS q FROM accounts_user u WHERE u.id = %s) q"
        " WHERE m.companion_id = %s AND m.owner_id = %s AND m.search_vector @@ q.q"
        " ORDER BY ts_rank(m.search_vector, q.q) DESC, m.updated_at DESC, m.id DESC LIMIT %s"
    )
    return [row[0] for row in _rows(sql, [tsquery, owner_id, companion_id, owner_id, limit])]


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
