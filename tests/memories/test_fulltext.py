"""memories.fulltext: which words a turn's query keeps, and on PostgreSQL the owner's own
configuration, common terms that rank without selecting, and the bound on rows ranked."""

from __future__ import annotations

import pytest
from django.db import connection

from memories import fulltext, search_index
from tests.memories.conftest import add_memory

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's ranking only")


def ranked_ids(companion, text: str) -> list[int]:
    hits = fulltext.ranked(
        owner_id=companion.owner_id,
        companion_id=companion.pk,
        words=fulltext.retrieval_words(text),
        limit=64,
    )
    return [hit.memory_id for hit in hits]


def test_stop_words_do_not_take_the_query_slots():
    words = fulltext.retrieval_words("because through their would nosotros weil lighthouse Mara")
    assert words == ["mara", "lighthouse"]


def test_the_newest_words_come_first_and_the_offer_is_bounded():
    text = " ".join(f"word{n:03d}" for n in range(200))
    words = fulltext.retrieval_words(text)
    assert len(words) == fulltext.MAX_QUERY_WORDS
    assert words[0] == "word199"


def test_a_query_of_stop_words_only_finds_nothing(companion):
    add_memory(companion, "The user would rather stay", vector=None)
    assert ranked_ids(companion, "would their because") == []


def test_the_newest_words_are_kept_beyond_the_cap(companion):
    mara = add_memory(companion, "The user's sister is called Mara", vector=None)
    old_words = " ".join(f"alpha{n:02d}" for n in range(40))
    assert ranked_ids(companion, f"{old_words} Mara") == [mara.pk]


@postgres_only
def test_a_query_is_parsed_in_the_owners_language(companion, user):
    user.language = "de"
    user.save(update_fields=["language"])
    schwester = add_memory(companion, "Die Schwester des Nutzers heißt Mara", vector=None)
    assert ranked_ids(companion, "Erzähl von deinen Schwestern") == [schwester.pk]


@postgres_only
def test_a_change_of_language_restems_the_owners_memories(companion, user):
    schwester = add_memory(companion, "Die Schwester des Nutzers heißt Mara", vector=None)
    assert ranked_ids(companion, "Schwestern") == []  # English does not stem German
    user.language = "de"
    user.save(update_fields=["language"])
    assert ranked_ids(companion, "Schwestern") == [schwester.pk]


@postgres_only
def test_common_terms_rank_but_rarer_ones_select(companion, monkeypatch):
    monkeypatch.setattr(fulltext, "common_shares", lambda: {"user": 0.9})
    monkeypatch.setattr(fulltext, "MAX_COMMON_CANDIDATES", 3)
    for n in range(10):
        add_memory(companion, f"The user likes colour number {n}", vector=None)
    mara = add_memory(companion, "The user's sister is called Mara", vector=None)
    found = ranked_ids(companion, "the user and Mara")
    assert found[0] == mara.pk
    assert len(found) == 1 + 3  # the rare match, and a bounded few that share only "user"


@postgres_only
def test_only_common_terms_rank_a_bounded_few(companion, monkeypatch):
    monkeypatch.setattr(fulltext, "common_shares", lambda: {"user": 0.9})
    monkeypatch.setattr(fulltext, "MAX_COMMON_CANDIDATES", 4)
    for n in range(10):
        add_memory(companion, f"The user likes colour number {n}", vector=None)
    assert len(ranked_ids(companion, "user")) == 4


@postgres_only
def test_matches_of_rarer_terms_are_bounded(companion, monkeypatch):
    monkeypatch.setattr(fulltext, "MAX_CANDIDATES", 5)
    for n in range(10):
        add_memory(companion, f"Mara likes colour number {n}", vector=None)
    assert len(ranked_ids(companion, "Mara")) == 5


@postgres_only
def test_common_shares_come_from_the_statistics(companion):
    for n in range(30):
        add_memory(companion, f"The user likes colour number {n}", vector=None)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memories_memory")
    fulltext.forget_common_shares()
    try:
        assert fulltext.common_shares().get("user", 0.0) > fulltext.COMMON_SHARE
    finally:
        fulltext.forget_common_shares()


@postgres_only
def test_the_index_has_no_pending_list():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'memories_memory_search'")
        assert "fastupdate=off" in cursor.fetchone()[0]


sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's vocabulary only")


@sqlite_only
def test_sqlite_selects_by_the_rarest_words_and_a_common_one_alone_ranks_a_bounded_few(
    companion, monkeypatch
):
    monkeypatch.setattr(fulltext, "MAX_CANDIDATES", 3)
    mara = add_memory(companion, "The user's sister Mara lives by the lighthouse", vector=None)
    for n in range(6):
        add_memory(companion, f"The user likes walk number {n}", vector=None)
    # "user" is in every memory: it adds nothing to what the rarer "lighthouse" selects.
    assert ranked_ids(companion, "user lighthouse") == [mara.pk]
    # Common words only: the rarest of them still selects, and no more rows than the bound.
    assert 0 < len(ranked_ids(companion, "user likes")) <= 6
    assert fulltext._sqlite_selecting(["user", "like", "lighthous"]) == ["lighthous"]
    assert fulltext._sqlite_selecting(["user", "nowhere"]) == ["user"]  # the rarest present one


@sqlite_only
def test_sqlite_without_its_vocabulary_table_uses_every_word(companion):
    mara = add_memory(companion, "The user's sister Mara lives by the lighthouse", vector=None)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE memories_memory_fts_vocab")
    try:
        assert ranked_ids(companion, "user lighthouse") == [mara.pk]
    finally:
        search_index.sqlite_ensure(connection)  # puts it back


@sqlite_only
def test_sqlite_finds_a_word_that_was_in_no_memory_a_moment_ago(companion):
    assert ranked_ids(companion, "Mara") == []
    mara = add_memory(companion, "The user's sister is called Mara", vector=None)
    assert ranked_ids(companion, "Mara") == [mara.pk]
