"""Search a user's messages across all their conversations (one-to-one and group).

``message_search`` is the one entry point: it parses the user's text into
words, quoted phrases and a prefix (the last word, so results come while
typing), then asks the database's own full-text index, chosen in ONE place
(``_backend``) by ``connection.vendor``:

* PostgreSQL: the stored ``search_vector`` (``chat/search_index.py``) with its
  GIN index, each message's words stemmed in its owner's language (English,
  German, Spanish); the query built from ``plainto_tsquery`` /
  ``phraseto_tsquery`` and a ``to_tsquery('word:*')`` prefix (only word
  characters ever reach ``to_tsquery``), each parsed in every language the
  site has and ORed, ranked by ``ts_rank_cd``;
* SQLite: the FTS5 table, every term written as a quoted FTS5 string (so
  ``"``, ``*``, ``AND``, ``-``, ``(`` in the user's text are just text),
  ranked by bm25.

Both rank the newest ``RANKED`` (200) matches, best first: a word in most of
a user's messages costs a walk over their newest, not a ranking of tens of
thousands of rows; filters (companion, conversation, dates) reach older ones.
Both give the same ``SearchPage``. Ownership is part of the query (a join on
the conversation's owner, and on PostgreSQL the index's owner column), not a
filter afterwards, and so is every filter.
The text searched is what a message shows (``content``): earlier versions of
a reply (``alternatives``) and reasoning are not searched. Snippets are built
here, the same for both: HTML-escaped text with only ``<mark>`` added.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import connection
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from accounts.models import User
from chat.models import Message, Participant
from chat.search_index import FTS_TABLE
from companionhub.fulltext_index import SEARCH_CONFIGS

MAX_QUERY_CHARS = 200
MAX_TERMS = 12  # words and phrases; more would only slow the query
PAGE_SIZE = 20
# Both databases rank the newest RANKED matches (see _postgres_ids); pages go as far as that.
RANKED = 200
MAX_OFFSET = RANKED - PAGE_SIZE
SNIPPET_CHARS = 180
MIN_PREFIX = 2  # a last word shorter than this is matched whole

Author = Literal["me", "companions"] | int  # a companion's id: what that companion wrote

_QUOTED = re.compile(r'"([^"]*)"')
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ParsedQuery:
    """What the user asked for: whole words, phrases (each a list of words), and a prefix."""

    words: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    prefix: str = ""

    @property
    def empty(self) -> bool:
        return not (self.words or self.phrases or self.prefix)

    def terms(self) -> list[str]:
        """Every word, for the highlighter (the prefix last)."""
        found = [*self.words, *(word for phrase in self.phrases for word in phrase)]
        return [*found, self.prefix] if self.prefix else found


def parse_query(text: str) -> ParsedQuery:
    """Words, "quoted phrases" and the last word as a prefix; nothing else of the text counts.

    Only runs of word characters survive, so no search syntax of either database
    can come from the user. An unclosed quote is just a quote. The text is cut at
    ``MAX_QUERY_CHARS`` and at ``MAX_TERMS`` terms.
    """
    text = text[:MAX_QUERY_CHARS]
    phrases: list[tuple[str, ...]] = []
    for match in _QUOTED.finditer(text):
        phrase = tuple(word.lower() for word in _WORD.findall(match.group(1)))
        if len(phrase) > 1:
            phrases.append(phrase)
    rest = _QUOTED.sub(lambda m: " " if len(_WORD.findall(m.group(1))) > 1 else m.group(1), text)
    words = [word.lower() for word in _WORD.findall(rest)]
    words = words[: max(0, MAX_TERMS - len(phrases))]
    phrases = phrases[:MAX_TERMS]
    prefix = ""
    # The last word is being typed: match it as a prefix, unless the text ends in a space or quote.
    if words and not text.endswith((" ", '"')) and len(words[-1]) >= MIN_PREFIX:
        prefix = words.pop()
    return ParsedQuery(tuple(dict.fromkeys(words)), tuple(phrases), prefix)


@dataclass(frozen=True)
class SearchHit:
    message_id: int
    conversation_id: int
    conversation_title: str
    is_group: bool
    role: str
    sender_name: str  # "" for the user's own words
    companions: tuple[tuple[int, str], ...]  # the conversation's members: (id, name)
    created_at: datetime.datetime
    snippet: SafeString


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit] = field(default_factory=list)
    has_more: bool = False
    offset: int = 0
    query: ParsedQuery = field(default_factory=ParsedQuery)


@dataclass(frozen=True)
class _Filters:
    owner_id: int | None
    companion_id: int | None = None
    conversation_id: int | None = None
    author: Author | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None


def message_search(
    *,
    user: User,
    query: str,
    companion_id: int | None = None,
    conversation_id: int | None = None,
    author: Author | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    limit: int = PAGE_SIZE,
    offset: int = 0,
) -> SearchPage:
    """The user's messages that match ``query``, best first, from their own conversations only.

    ``companion_id``: conversations that companion is in; ``author``: "me", "companions" or
    one companion's id; ``since`` / ``until``: the message's time, until exclusive. An id of
    another user's simply matches nothing (views check ids first and answer 404).
    """
    parsed = parse_query(query)
    offset = max(0, min(offset, MAX_OFFSET))
    limit = max(1, min(limit, 100))
    if parsed.empty:
        return SearchPage(query=parsed, offset=offset)
    filters = _Filters(user.pk, companion_id, conversation_id, author, since, until)
    ids = _backend()(parsed, filters, limit + 1, offset)
    hits = _hits(ids[:limit], parsed)
    return SearchPage(hits=hits, has_more=len(ids) > limit, offset=offset, query=parsed)


def message_search_ids_all(query: str, *, limit: int = 500) -> list[int]:
    """Every user's messages matching ``query``, best first: for moderators in the admin only."""
    parsed = parse_query(query)
    if parsed.empty:
        return []
    return _backend()(parsed, _Filters(owner_id=None), limit, 0)


# --- the two back ends: same arguments, the matching ids best first ---------------------------


def _backend():
    """The one place that chooses by database."""
    return _postgres_ids if connection.vendor == "postgresql" else _sqlite_ids


def _where(filters: _Filters) -> tuple[list[str], list[object]]:
    """The ownership join's condition and each filter, the same SQL on both databases."""
    clauses: list[str] = []
    params: list[object] = []
    if filters.owner_id is not None:
        clauses.append("c.owner_id = %s")
        params.append(filters.owner_id)
    if filters.conversation_id is not None:
        clauses.append("m.conversation_id = %s")
        params.append(filters.conversation_id)
    if filters.companion_id is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM chat_participant p"
            " WHERE p.conversation_id = m.conversation_id AND p.companion_id = %s)"
        )
        params.append(filters.companion_id)
    if filters.author == "me":
        clauses.append("m.role = 'user'")
    elif filters.author == "companions":
        clauses.append("m.role = 'assistant'")
    elif isinstance(filters.author, int):
        clauses.append("m.sender_id = %s")
        params.append(filters.author)
    for column_op, value in ((">=", filters.since), ("<", filters.until)):
        if value is not None:
            clauses.append(f"m.created_at {column_op} %s")
            params.append(connection.ops.adapt_datetimefield_value(value))
    return clauses, params


def _postgres_ids(parsed: ParsedQuery, filters: _Filters, limit: int, offset: int) -> list[int]:
    parts: list[str] = []
    params: list[object] = []

    def each_config(function: str, text: str) -> None:
        # A message is indexed with its owner's language at the time (chat.search_index); the
        # term matches in any of them, so a change of language loses nothing written before.
        parts.append("(" + " || ".join(f"{function}(%s::regconfig, %s)" for _ in SEARCH_CONFIGS) + ")")
        for config in SEARCH_CONFIGS:
            params.extend((config, text))

    if parsed.words:
        each_config("plainto_tsquery", " ".join(parsed.words))
    for phrase in parsed.phrases:
        each_config("phraseto_tsquery", " ".join(phrase))
    if parsed.prefix:
        # Only word characters reach to_tsquery: no operator of its syntax can be in them.
        each_config("to_tsquery", f"'{parsed.prefix}':*")
    tsquery = " && ".join(parts)
    clauses, where_params = _where(filters)
    if filters.owner_id is not None:  # the index's owner column (the join above still decides)
        clauses.append("m.search_owner = %s")
        where_params.append(filters.owner_id)
    where = "".join(f" AND {clause}" for clause in clauses)
    # Ranked among the newest RANKED matches: a word in most of a user's messages is then found by
    # walking their newest messages (the owner's btree) and a rare one from the GIN index, instead
    # of ranking tens of thousands of rows (a word in 1 of 8 of 100,000 messages: 120 ms -> 1 ms).
    # Narrower filters reach older matches.
    sql = (
        "SELECT id FROM (SELECT m.id, m.created_at, ts_rank_cd(m.search_vector, query.q) AS rank"  # noqa: S608
        " FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id,"
        f" (SELECT {tsquery} AS q) query"
        f" WHERE m.search_vector @@ query.q{where}"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT %s) newest"
        " ORDER BY rank DESC, created_at DESC, id DESC LIMIT %s OFFSET %s"
    )
    return _ids(sql, [*params, *where_params, RANKED, limit, offset])


def _sqlite_ids(parsed: ParsedQuery, filters: _Filters, limit: int, offset: int) -> list[int]:
    # Every term a quoted FTS5 string (its words are word characters: no quote inside).
    terms = [f'"{word}"' for word in parsed.words]
    terms += ['"' + " ".join(phrase) + '"' for phrase in parsed.phrases]
    if parsed.prefix:
        terms.append(f'"{parsed.prefix}" *')
    clauses, where_params = _where(filters)
    where = "".join(f" AND {clause}" for clause in clauses)
    # As on PostgreSQL, bm25 ranks the newest RANKED matches, newest here by id: FTS5 reads its
    # rows in that order, so it stops after RANKED. They differ only for an imported chat's
    # messages (new ids, old dates).
    sql = (
        "SELECT id FROM (SELECT m.id, m.created_at, f.rank AS rank"  # noqa: S608
        f" FROM {FTS_TABLE} f JOIN chat_message m ON m.id = f.rowid"
        " JOIN chat_conversation c ON c.id = m.conversation_id"
        f" WHERE {FTS_TABLE} MATCH %s{where}"
        " ORDER BY f.rowid DESC LIMIT %s) newest"
        " ORDER BY rank, created_at DESC, id DESC LIMIT %s OFFSET %s"
    )
    return _ids(sql, [" AND ".join(terms), *where_params, RANKED, limit, offset])


def _ids(sql: str, params: Sequence[Any]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


# --- results -----------------------------------------------------------------------------------


def _hits(ids: list[int], parsed: ParsedQuery) -> list[SearchHit]:
    """The page's messages with their conversation, sender and members, in the ranked order."""
    if not ids:
        return []
    rows = {
        m.pk: m
        for m in Message.objects.filter(pk__in=ids)
        .select_related("conversation", "sender")
        .only(
            "id",
            "role",
            "content",
            "created_at",
            "conversation__id",
            "conversation__title",
            "conversation__kind",
            "sender__id",
            "sender__name",
        )
    }
    members: dict[int, list[tuple[int, str]]] = {}
    conversation_ids = {m.conversation_id for m in rows.values()}
    for conversation_id, companion_id, name in (
        Participant.objects.filter(conversation_id__in=conversation_ids)
        .order_by("position", "pk")
        .values_list("conversation_id", "companion_id", "companion__name")
    ):
        members.setdefault(conversation_id, []).append((companion_id, name))
    terms = parsed.terms()
    hits = []
    for pk in ids:
        message = rows.get(pk)
        if message is None:  # deleted between the two queries
            continue
        conversation = message.conversation
        hits.append(
            SearchHit(
                message_id=message.pk,
                conversation_id=conversation.pk,
                conversation_title=conversation.title,
                is_group=conversation.is_group,
                role=message.role,
                sender_name=message.sender.name if message.sender is not None else "",
                companions=tuple(members.get(conversation.pk, [])),
                created_at=message.created_at,
                snippet=highlight(message.content, terms),
            )
        )
    return hits


def _matches(token: str, terms: list[str]) -> bool:
    """A word of the text is marked when it starts with a term, or shares its stem
    (all but its last two letters, at least four): "lighthouses" for "lighthouse"."""
    token = token.lower()
    return any(token.startswith(term) or token.startswith(term[: max(4, len(term) - 2)]) for term in terms)


def highlight(text: str, terms: list[str], *, width: int = SNIPPET_CHARS) -> SafeString:
    """A window of ``text`` around its first match, HTML-escaped, each matching word in <mark>."""
    spans = [m.span() for m in _WORD.finditer(text) if terms and _matches(m.group(), terms)]
    start = 0
    if spans and spans[0][0] > width // 3:
        start = spans[0][0] - width // 3
        space = text.rfind(" ", 0, start)
        start = space + 1 if space >= 0 and start - space < 20 else start
    end = min(len(text), start + width)
    out = ["…" if start > 0 else ""]
    position = start
    for first, last in spans:
        if last <= start or first >= end:
            continue
        first, last = max(first, start), min(last, end)
        out += [escape(text[position:first]), "<mark>", escape(text[first:last]), "</mark>"]
        position = last
    out.append(escape(text[position:end]))
    if end < len(text):
        out.append("…")
    return mark_safe("".join(out))  # noqa: S308  (every piece of text went through escape)
