"""message_search: the same answers from PostgreSQL's tsvector and SQLite's FTS5."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from chat import search_index
from chat.models import Message
from chat.search import MAX_QUERY_CHARS, highlight, message_search, message_search_ids_all, parse_query
from tests.chat.factories import add_exchange, add_reply, add_user_message, make_chat, make_group_of
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db


def ids(page):
    return [hit.message_id for hit in page.hits]


@pytest.fixture
def mika(user):
    return make_companion(user, name="Mika")


@pytest.fixture
def chat(mika):
    return make_chat(mika, title="Harbour days")


def test_finds_a_word_in_any_of_the_users_conversations(user, mika, chat):
    other_chat = make_chat(mika, title="Later")
    _, reply = add_exchange(chat, mika, "Tell me a story", "The lighthouse keeper waved at dawn.")
    add_exchange(other_chat, mika, "Hello", "Nice weather today.")
    page = message_search(user=user, query="lighthouse")
    assert ids(page) == [reply.pk]
    hit = page.hits[0]
    assert hit.conversation_id == chat.pk and hit.conversation_title == "Harbour days"
    assert hit.sender_name == "Mika" and hit.companions == ((mika.pk, "Mika"),)
    assert "<mark>lighthouse</mark>" in hit.snippet


def test_group_and_direct_conversations_are_both_searched(user, mika):
    rin = make_companion(user, name="Rin")
    group = make_group_of(user, [mika, rin], title="Crew")
    direct = make_chat(mika)
    in_group = add_reply(group, rin, "The harbour smells of salt")
    in_direct = add_reply(direct, mika, "I walked along the harbour")
    page = message_search(user=user, query="harbour ")
    assert set(ids(page)) == {in_group.pk, in_direct.pk}
    assert next(h for h in page.hits if h.message_id == in_group.pk).is_group
    assert dict(next(h for h in page.hits if h.message_id == in_group.pk).companions) == {
        mika.pk: "Mika",
        rin.pk: "Rin",
    }


def test_another_users_messages_are_never_found(user, other_user, chat, mika):
    theirs = make_companion(other_user, name="Theirs")
    their_chat = make_chat(theirs)
    add_reply(their_chat, theirs, "secret lighthouse plans")
    mine = add_reply(chat, mika, "my lighthouse")
    assert ids(message_search(user=user, query="lighthouse")) == [mine.pk]
    # Their ids as filters find nothing of theirs.
    assert ids(message_search(user=user, query="lighthouse", conversation_id=their_chat.pk)) == []
    assert ids(message_search(user=user, query="lighthouse", companion_id=theirs.pk)) == []
    assert ids(message_search(user=user, query="lighthouse", author=theirs.pk)) == []


def test_the_last_word_matches_as_a_prefix(user, chat, mika):
    reply = add_reply(chat, mika, "The lighthouse was bright")
    assert ids(message_search(user=user, query="lightho")) == [reply.pk]
    # A finished word (followed by a space) is matched whole.
    assert ids(message_search(user=user, query="lightho ")) == []


def test_all_words_must_match(user, chat, mika):
    both = add_reply(chat, mika, "a red lighthouse")
    add_reply(chat, mika, "a red barn")
    assert ids(message_search(user=user, query="red lighthouse")) == [both.pk]


def test_a_quoted_phrase_matches_its_words_in_order(user, chat, mika):
    in_order = add_reply(chat, mika, "the old lighthouse stood")
    add_reply(chat, mika, "the lighthouse was old")
    assert ids(message_search(user=user, query='"old lighthouse"')) == [in_order.pk]


HOSTILE = [
    '"',
    '""',
    "*",
    "AND",
    "OR NOT",
    "-",
    "(",
    ")",
    "lighthouse AND",
    "NEAR(a b)",
    "a:*",
    "'",
    "\\",
    "!(&|)<->",
    "content:lighthouse",
    "^lighthouse",
    '"unclosed lighthouse',
    "_",
    "x" * 5000,
    "%s %(x)s",
    "lighthouse\x00",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_queries_never_raise(user, chat, mika, text):
    add_reply(chat, mika, "the lighthouse AND the harbour")
    message_search(user=user, query=text)  # no exception from either database's syntax


def test_operators_from_the_user_are_just_words(user, chat, mika):
    reply = add_reply(chat, mika, "the lighthouse stood")
    add_reply(chat, mika, "the harbour")
    # FTS5 and to_tsquery would read these as operators; here they are punctuation.
    assert ids(message_search(user=user, query="lighthouse OR harbour")) == []
    assert ids(message_search(user=user, query="-lighthouse")) == [reply.pk]


def test_long_queries_are_cut():
    parsed = parse_query("word " * 100)
    assert len(parsed.terms()) == 1  # one distinct word
    assert len(parse_query(" ".join(f"w{n}" for n in range(100))).terms()) <= 12
    assert parse_query("a" * (MAX_QUERY_CHARS + 50)).prefix == "a" * MAX_QUERY_CHARS


def test_an_empty_query_finds_nothing(user, chat, mika):
    add_reply(chat, mika, "anything")
    for text in ("", "   ", "!!!", '""'):
        assert message_search(user=user, query=text).hits == []


def test_snippets_escape_html_and_add_only_mark(user, chat, mika):
    add_reply(chat, mika, "<script>alert(1)</script> the lighthouse <b>glowed</b>")
    snippet = message_search(user=user, query="lighthouse").hits[0].snippet
    assert "<script>" not in snippet and "<b>" not in snippet
    assert "&lt;script&gt;" in snippet and "<mark>lighthouse</mark>" in snippet


def test_highlight_cuts_a_window_around_the_first_match():
    text = "word " * 100 + "lighthouse " + "more " * 100
    snippet = highlight(text, ["lighthouse"])
    assert snippet.startswith("…") and snippet.endswith("…") and "<mark>lighthouse</mark>" in snippet
    assert len(snippet) < 300


def test_filters(user, mika):
    rin = make_companion(user, name="Rin")
    group = make_group_of(user, [mika, rin], title="Crew")
    direct = make_chat(mika)
    said = add_user_message(direct, "the lighthouse, tell me")
    mika_said = add_reply(direct, mika, "the lighthouse is old")
    rin_said = add_reply(group, rin, "lighthouse again")
    everything = {said.pk, mika_said.pk, rin_said.pk}
    assert set(ids(message_search(user=user, query="lighthouse"))) == everything
    assert set(ids(message_search(user=user, query="lighthouse", author="me"))) == {said.pk}
    assert set(ids(message_search(user=user, query="lighthouse", author="companions"))) == {
        mika_said.pk,
        rin_said.pk,
    }
    assert ids(message_search(user=user, query="lighthouse", author=rin.pk)) == [rin_said.pk]
    assert ids(message_search(user=user, query="lighthouse", companion_id=rin.pk)) == [rin_said.pk]
    assert set(ids(message_search(user=user, query="lighthouse", conversation_id=direct.pk))) == {
        said.pk,
        mika_said.pk,
    }


def test_date_range(user, chat, mika):
    now = timezone.now()
    old = add_reply(chat, mika, "lighthouse long ago", created_at=now - timedelta(days=30))
    new = add_reply(chat, mika, "lighthouse today", created_at=now)
    assert ids(message_search(user=user, query="lighthouse", until=now - timedelta(days=1))) == [old.pk]
    assert ids(message_search(user=user, query="lighthouse", since=now - timedelta(days=1))) == [new.pk]


def test_pages(user, chat, mika):
    made = [add_reply(chat, mika, f"lighthouse number {n}") for n in range(5)]
    first = message_search(user=user, query="lighthouse", limit=2)
    second = message_search(user=user, query="lighthouse", limit=2, offset=2)
    last = message_search(user=user, query="lighthouse", limit=2, offset=4)
    assert first.has_more and second.has_more and not last.has_more
    assert sorted(ids(first) + ids(second) + ids(last)) == sorted(m.pk for m in made)


def test_a_better_match_ranks_first(user, chat, mika):
    once = add_reply(chat, mika, "a lighthouse and many other words about the sea and the shore and sky")
    twice = add_reply(chat, mika, "lighthouse lighthouse")
    assert ids(message_search(user=user, query="lighthouse")) == [twice.pk, once.pk]


def test_an_edited_message_is_found_by_its_new_words_only(user, chat, mika):
    reply = add_reply(chat, mika, "the lighthouse")
    Message.objects.filter(pk=reply.pk).update(content="the windmill")
    assert ids(message_search(user=user, query="lighthouse")) == []
    assert ids(message_search(user=user, query="windmill")) == [reply.pk]
    reply.refresh_from_db()
    reply.content = "the castle"
    reply.save()
    assert ids(message_search(user=user, query="castle")) == [reply.pk]


def test_a_deleted_message_and_conversation_are_gone_from_the_index(user, chat, mika):
    reply = add_reply(chat, mika, "the lighthouse")
    other = make_chat(mika)
    add_reply(other, mika, "a windmill")
    reply.delete()
    assert ids(message_search(user=user, query="lighthouse")) == []
    other.delete()
    assert ids(message_search(user=user, query="windmill")) == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM chat_message_fts WHERE chat_message_fts MATCH 'windmill'")
            assert cursor.fetchone()[0] == 0


def test_earlier_versions_are_not_searched(user, chat, mika):
    add_reply(chat, mika, "the windmill", alternatives=["the lighthouse"])
    assert ids(message_search(user=user, query="lighthouse")) == []


def test_moderators_search_every_user(user, other_user, chat, mika):
    theirs = make_companion(other_user)
    mine = add_reply(chat, mika, "lighthouse")
    other = add_reply(make_chat(theirs), theirs, "lighthouse")
    assert set(message_search_ids_all("lighthouse")) == {mine.pk, other.pk}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's triggers only")
def test_sqlite_triggers_dropped_by_a_table_rebuild_come_back(user, chat, mika):
    """SQLite's ALTER TABLE emulation drops a table's triggers: after migrate they are recreated
    and the index rebuilt."""
    with connection.cursor() as cursor:
        for name in search_index.SQLITE_TRIGGERS:
            cursor.execute(f"DROP TRIGGER {name}")
    missed = add_reply(chat, mika, "lighthouse while the triggers were gone")
    assert search_index.sqlite_ensure(connection) is True
    assert ids(message_search(user=user, query="lighthouse")) == [missed.pk]
    assert search_index.sqlite_ensure(connection) is False


def test_only_the_newest_matches_are_ranked_and_filters_reach_older_ones(user, chat, mika, monkeypatch):
    """A word in most messages is ranked among its newest matches (RANKED): the best match, if
    older, is left out until a filter narrows the search to it."""
    monkeypatch.setattr("chat.search.RANKED", 3)
    now = timezone.now()
    best_but_old = add_reply(
        chat, mika, "lighthouse lighthouse lighthouse", created_at=now - timedelta(days=9)
    )
    newer = [add_reply(chat, mika, f"a lighthouse and more words {n}") for n in range(3)]
    assert set(ids(message_search(user=user, query="lighthouse"))) == {m.pk for m in newer}
    older = message_search(user=user, query="lighthouse", until=now - timedelta(days=1))
    assert ids(older) == [best_but_old.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's owner column only")
def test_postgres_copies_the_conversations_owner_onto_each_message(user, chat, mika):
    """The GIN index's owner column is written by the database itself, whoever inserts the row."""
    reply = add_reply(chat, mika, "lighthouse")
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_owner, search_config::text FROM chat_message WHERE id = %s", [reply.pk])
        assert cursor.fetchone() == (user.pk, "english")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's stemming only")
def test_postgres_stems_each_message_in_its_owners_language(user, chat, mika):
    """German words are found by another form of the same word; a message written before the
    owner changed language is still found."""
    english = add_reply(chat, mika, "The lighthouses were burning.")
    user.language = "de"
    user.save(update_fields=["language"])
    german = add_reply(chat, mika, "Wir sahen die Leuchttürme am Hafen.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_config::text FROM chat_message WHERE id = %s", [german.pk])
        assert cursor.fetchone() == ("german",)
    assert ids(message_search(user=user, query="Leuchtturm hafen")) == [german.pk]
    assert ids(message_search(user=user, query="lighthouse burn")) == [english.pk]
