"""Lorebook rules: which entries a turn brings in, and that no stored book can break a turn."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat import lorebook
from chat.admission import run_admit
from chat.conversations import conversation_for_companion
from chat.editing import message_show_alternative
from chat.lorebook import AFTER_CHAR, BEFORE_CHAR, select_entries
from chat.models import Message, PipelineRun
from chat.prompts import build_chat_messages, build_group_chat_messages
from chat.replies import ReplyWriter
from chat.runs import run_create, run_mark_cancelled
from tests.chat.factories import add_user_message
from tests.companions.factories import make_companion


def pick(book, *messages, budget: int = 1000) -> list[str]:
    """The contents selected for ``messages`` (oldest first), as the prompt would get them."""
    chosen = select_entries(
        book, recent_messages=list(messages), char="Keeper", user="Alice", token_budget=budget
    )
    return [entry.content for entry in chosen]


def entry(content: str, *keys, **fields) -> dict:
    return {"keys": list(keys), "content": content, **fields}


def book(*entries, **fields) -> dict:
    return {"entries": list(entries), **fields}


LAMP = entry("The lamp is old.", "lamp")


# --- keys ---------------------------------------------------------------------------


def test_an_entry_comes_in_only_when_a_key_is_mentioned():
    assert pick(book(LAMP), "Is the lamp lit?") == ["The lamp is old."]
    assert pick(book(LAMP), "Where am I?") == []


def test_any_key_of_an_entry_is_enough():
    lamp = entry("The lamp is old.", "lamp", "lantern")
    assert pick(book(lamp), "Hand me the lantern.") == ["The lamp is old."]


def test_keys_ignore_case_unless_the_entry_is_case_sensitive():
    assert pick(book(LAMP), "THE LAMP!") == ["The lamp is old."]
    strict = entry("Captain Lamp is the keeper's cat.", "Lamp", case_sensitive=True)
    assert pick(book(strict), "the lamp flickers") == []
    assert pick(book(strict), "Where is Lamp?") == ["Captain Lamp is the keeper's cat."]


def test_keys_match_inside_words_unless_the_entry_asks_for_whole_words():
    assert pick(book(LAMP), "The lamplight dims.") == ["The lamp is old."]
    whole = entry("The lamp is old.", "lamp", extensions={"match_whole_words": True})
    assert pick(book(whole), "The lamplight dims.") == []
    assert pick(book(whole), "The lamp, dim.") == ["The lamp is old."]
    assert pick(book(whole), "THE LAMP") == ["The lamp is old."]
    phrase = entry(
        "Ships wreck here.", "Black Rock", extensions={"match_whole_words": True}, case_sensitive=True
    )
    assert pick(book(phrase), "off the Black  Rock!") == ["Ships wreck here."]
    assert pick(book(phrase), "off the black rock") == []
    assert pick(book(phrase), "the Black Rocks") == []
    punctuation = entry("Never.", "!!!", extensions={"match_whole_words": True})
    assert pick(book(punctuation), "") == []
    assert pick(book(punctuation), "hi") == []


def test_a_key_does_not_match_across_two_messages():
    assert pick(book(entry("Storms come at night.", "night storm")), "a night", "storm") == []


def test_names_are_filled_in_keys_and_content():
    own = entry("{{char}} owes {{user}} a favour.", "{{user}}'s boat")
    assert pick(book(own), "Take Alice's boat") == ["Keeper owes Alice a favour."]


# --- constant, disabled, selective ----------------------------------------------------


def test_a_constant_entry_comes_in_without_any_key():
    always = entry("The sea is cold.", constant=True)
    assert pick(book(always, LAMP), "Hello") == ["The sea is cold."]


@pytest.mark.parametrize("enabled", [False, 0, "false", "no"])
def test_a_disabled_entry_never_comes_in(enabled):
    assert pick(book(entry("The lamp is old.", "lamp", enabled=enabled)), "lamp") == []
    assert pick(book(entry("The sea is cold.", constant=True, enabled=enabled)), "hi") == []


@pytest.mark.parametrize("enabled", [True, None, 1, "true", "garbled"])
def test_an_entry_is_enabled_unless_it_says_otherwise(enabled):
    assert pick(book(entry("The lamp is old.", "lamp", enabled=enabled)), "lamp") == ["The lamp is old."]


def test_a_selective_entry_needs_a_primary_and_a_secondary_key():
    oil = entry("Lamp oil is kept in the cellar.", "lamp", selective=True, secondary_keys=["oil", "fuel"])
    assert pick(book(oil), "the lamp") == []
    assert pick(book(oil), "some oil") == []
    assert pick(book(oil), "the lamp needs fuel") == ["Lamp oil is kept in the cellar."]


def test_secondary_keys_count_only_for_selective_entries():
    plain = entry("The lamp is old.", "lamp", selective=False, secondary_keys=["oil"])
    assert pick(book(plain), "the lamp") == ["The lamp is old."]
    no_secondary = entry("The lamp is old.", "lamp", selective=True, secondary_keys=[])
    assert pick(book(no_secondary), "the lamp") == ["The lamp is old."]


def test_regex_keys_are_not_run():
    regex = entry("Digits!", r"\d+", use_regex=True)
    assert pick(book(regex), r"call 555 or \d+") == []
    assert pick(book(entry("Always.", r"\d+", use_regex=True, constant=True)), "x") == ["Always."]


# --- order and position ------------------------------------------------------------------


def test_entries_are_ordered_by_insertion_order_then_book_order():
    first = entry("first", "lamp", insertion_order=1)
    second = entry("second", "lamp", insertion_order=5)
    third = entry("third", "lamp", insertion_order=5)
    assert pick(book(third, second, first), "lamp") == ["first", "third", "second"]


def test_each_entry_keeps_its_position():
    before = entry("before", "lamp")
    after = entry("after", "lamp", position="after_char")
    odd = entry("odd", "lamp", position="top")
    chosen = select_entries(
        book(before, after, odd), recent_messages=["lamp"], char="K", user="A", token_budget=100
    )
    assert [(e.content, e.position) for e in chosen] == [
        ("before", BEFORE_CHAR),
        ("after", AFTER_CHAR),
        ("odd", BEFORE_CHAR),
    ]


# --- budget ------------------------------------------------------------------------------

TEN_TOKENS = "x" * 40  # estimate_tokens: four characters a token


def test_over_budget_the_lowest_priority_entries_are_left_out_first():
    low = entry("low " + TEN_TOKENS, "lamp", priority=1, insertion_order=1)
    high = entry("high " + TEN_TOKENS, "lamp", priority=10, insertion_order=2)
    middle = entry("mid " + TEN_TOKENS, "lamp", priority=5, insertion_order=3)
    chosen = pick(book(low, high, middle, token_budget=25), "lamp")
    assert [text.split()[0] for text in chosen] == ["high", "mid"]


def test_an_entry_too_big_for_what_is_left_makes_room_for_smaller_ones():
    huge = entry("huge " + TEN_TOKENS * 5, "lamp", priority=10)
    small = entry("small", "lamp", priority=1)
    assert pick(book(huge, small, token_budget=20), "lamp") == ["small"]


def test_the_site_budget_caps_what_a_card_asks_for():
    big = entry(TEN_TOKENS * 3, "lamp")
    assert pick(book(big, token_budget=100_000), "lamp", budget=20) == []
    assert pick(book(big, token_budget=100_000), "lamp", budget=40) == [TEN_TOKENS * 3]
    assert pick(book(big, token_budget=10), "lamp", budget=1000) == []


def test_a_zero_site_budget_turns_lorebooks_off():
    assert pick(book(LAMP, entry("always", constant=True)), "lamp", budget=0) == []


def test_at_most_max_entries_come_in():
    many = [entry(f"fact {i}", "lamp") for i in range(lorebook.MAX_ENTRIES + 5)]
    assert len(pick(book(*many), "lamp", budget=100_000)) == lorebook.MAX_ENTRIES


# --- scan depth ------------------------------------------------------------------------


def test_only_the_last_scan_depth_messages_are_scanned():
    messages = ["the lamp", "a", "b", "c"]
    assert pick(book(LAMP, scan_depth=4), *messages) == ["The lamp is old."]
    assert pick(book(LAMP, scan_depth=3), *messages) == []


def test_the_default_scan_depth_is_used_when_the_book_has_none():
    depth = lorebook.DEFAULT_SCAN_DEPTH
    assert pick(book(LAMP), "the lamp", *["x"] * (depth - 1)) == ["The lamp is old."]
    assert pick(book(LAMP), "the lamp", *["x"] * depth) == []


def test_scan_depth_zero_leaves_only_constant_entries():
    always = entry("always", constant=True)
    assert pick(book(LAMP, always, scan_depth=0), "lamp") == ["always"]


def test_a_huge_scan_depth_is_capped():
    messages = ["the lamp", *["x"] * lorebook.MAX_SCAN_DEPTH]
    assert pick(book(LAMP, scan_depth=10**9), *messages) == []
    assert pick(book(LAMP, scan_depth=10**9), *messages[1:], "lamp") == ["The lamp is old."]


# --- malformed books: skipped, never raised ---------------------------------------------


@pytest.mark.parametrize(
    "bad_book",
    [None, "", "lamp: The lamp is old.", 42, 4.2, True, [], {}, {"entries": None}, {"entries": "lamp"}],
    ids=repr,
)
def test_a_book_of_the_wrong_shape_brings_nothing(bad_book):
    assert pick(bad_book, "lamp") == []


def test_a_bare_list_of_entries_is_read_as_the_book():
    assert pick([LAMP], "lamp") == ["The lamp is old."]


@pytest.mark.parametrize(
    "bad_entry",
    [
        None,
        "lamp",
        42,
        ["lamp", "The lamp is old."],
        {"content": "no keys at all"},
        {"keys": None, "content": "keys is null"},
        {"keys": 7, "content": "keys is a number"},
        {"keys": {"lamp": True}, "content": "keys is an object"},
        {"keys": [], "content": "keys is empty"},
        {"keys": ["", "   "], "content": "blank keys would match everything"},
        {"keys": [1, None, True, ["lamp"], {"k": "lamp"}], "content": "no key is text"},
        {"keys": ["l" * (lorebook.MAX_KEY_CHARS + 1)], "content": "key too long"},
        {"keys": ["lamp"]},
        {"keys": ["lamp"], "content": None},
        {"keys": ["lamp"], "content": 12},
        {"keys": ["lamp"], "content": ["The lamp", "is old"]},
        {"keys": ["lamp"], "content": "   "},
        {"keys": ["lamp"], "content": "x" * (lorebook.MAX_CONTENT_CHARS + 1)},
    ],
    ids=repr,
)
def test_a_bad_entry_is_skipped_and_the_good_ones_still_come_in(bad_entry):
    good = entry("The sea is cold.", "lamp")
    assert pick(book(bad_entry, good), "x " * 3 + "lamp " + "l" * 300) == ["The sea is cold."]


def test_entries_past_the_first_thousand_are_not_looked_at():
    filler = [entry("filler", "zzz")] * lorebook.MAX_BOOK_ENTRIES
    assert pick(book(*filler, LAMP), "lamp") == []
    assert pick(book(*filler[1:], LAMP), "lamp") == ["The lamp is old."]


def test_non_text_keys_are_dropped_and_the_text_ones_kept():
    mixed = {"keys": [1, None, "lamp", {"a": 1}], "content": "The lamp is old."}
    assert pick(book(mixed), "the lamp") == ["The lamp is old."]


def test_keys_written_as_one_comma_separated_string_are_read():
    assert pick(book({"keys": "lantern, lamp", "content": "The lamp is old."}), "lamp") == [
        "The lamp is old."
    ]


def test_an_entry_bigger_than_the_whole_budget_is_skipped_not_cut():
    assert pick(book(entry(TEN_TOKENS * 10, "lamp")), "lamp", budget=50) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"insertion_order": "first", "priority": "high"},
        {"insertion_order": None, "priority": None},
        {"insertion_order": 10**400, "priority": -(10**400)},
        {"insertion_order": float("inf"), "priority": float("nan")},
        {"insertion_order": [1], "priority": {"p": 1}},
        {"case_sensitive": "yes", "constant": "maybe", "selective": [], "extensions": "none"},
        {"position": 3, "secondary_keys": "oil"},
    ],
    ids=repr,
)
def test_odd_field_values_fall_back_to_defaults(fields):
    assert pick(book(entry("The lamp is old.", "lamp", **fields)), "lamp") == ["The lamp is old."]


@pytest.mark.parametrize(
    "fields",
    [
        {"scan_depth": "2", "token_budget": "lots"},
        {"scan_depth": -1, "token_budget": -5},
        {"scan_depth": 2.5, "token_budget": 0.5},
        {"scan_depth": True, "token_budget": True},
        {"scan_depth": None, "token_budget": None},
        {"scan_depth": float("inf"), "token_budget": float("inf")},
        {"scan_depth": 10**400, "token_budget": 10**400},
    ],
    ids=repr,
)
def test_odd_book_settings_fall_back_to_defaults(fields):
    assert pick(book(LAMP, **fields), "the lamp") == ["The lamp is old."]


def test_non_text_messages_are_ignored():
    assert pick(book(LAMP), None, 5, "the lamp") == ["The lamp is old."]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD = st.sampled_from(
    [
        "keys", "secondary_keys", "content", "enabled", "constant", "selective", "case_sensitive",
        "insertion_order", "priority", "position", "use_regex", "extensions",
    ]
)  # fmt: skip
ENTRY = st.dictionaries(FIELD, JSON | st.lists(st.text(max_size=10), max_size=4), max_size=8)
BOOK = st.fixed_dictionaries(
    {"entries": st.lists(ENTRY | JSON, max_size=6)},
    optional={"scan_depth": JSON, "token_budget": JSON, "recursive_scanning": JSON},
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(book=BOOK | JSON, messages=st.lists(st.text(max_size=30), max_size=6))
def test_no_stored_book_makes_selection_raise(book, messages):
    chosen = select_entries(book, recent_messages=messages, char="K", user="A", token_budget=200)
    assert len(chosen) <= lorebook.MAX_ENTRIES
    assert all(isinstance(e.content, str) and e.content for e in chosen)


# --- in the prompt ---------------------------------------------------------------------------


def card_companion(user, character_book, **fields):
    card = {"personality": "stern", "scenario": "{{user}} is shipwrecked.", "character_book": character_book}
    return make_companion(user, name="Keeper", config={"card": card}, **fields)


@pytest.mark.django_db
def test_a_mentioned_entry_reaches_the_system_prompt_with_names_filled(user):
    companion = card_companion(user, book(entry("{{char}} found {{user}}'s lamp.", "lamp")))
    quiet = build_chat_messages(companion, user_name="Alice", history=[("user", "Hello")])
    assert "Keeper found" not in quiet[0]["content"] and "World info" not in quiet[0]["content"]
    asked = build_chat_messages(companion, user_name="Alice", history=[("user", "Where is my lamp?")])
    system = asked[0]["content"]
    assert "[World info: background facts, use them when relevant]\nKeeper found Alice's lamp.\n" in system
    assert "[End of world info]" in system


@pytest.mark.django_db
def test_lore_goes_before_or_after_the_character_as_each_entry_asks(user):
    lore = book(entry("BEFORE-TEXT", "lamp"), entry("AFTER-TEXT", "lamp", position="after_char"))
    system = build_chat_messages(card_companion(user, lore), user_name="Alice", history=[("user", "lamp")])[
        0
    ]["content"]
    assert system.index("BEFORE-TEXT") < system.index("Personality: stern")
    assert system.index("Scenario: Alice is shipwrecked.") < system.index("AFTER-TEXT")
    assert system.index("AFTER-TEXT") < system.index("Right now you are")


@pytest.mark.django_db
def test_the_site_budget_setting_applies(user, settings):
    companion = card_companion(user, book(LAMP))

    def system() -> str:
        return build_chat_messages(companion, user_name="Alice", history=[("user", "lamp")])[0]["content"]

    settings.CHAT_LOREBOOK_TOKEN_BUDGET = 4
    assert "The lamp is old." in system()
    settings.CHAT_LOREBOOK_TOKEN_BUDGET = 3  # the entry is four tokens
    assert "The lamp is old." not in system()


@pytest.mark.django_db
@pytest.mark.parametrize("bad_book", ["lamp", 3, [None, "x"], {"entries": [{"keys": "lamp"}]}], ids=repr)
def test_a_bad_stored_book_leaves_the_prompt_as_without_one(user, bad_book):
    with_bad = card_companion(user, bad_book)
    without = card_companion(user, None)
    history = [("user", "the lamp")]
    assert build_chat_messages(with_bad, user_name="Alice", history=history) == build_chat_messages(
        without, user_name="Alice", history=history
    )


@pytest.mark.django_db
def test_in_a_group_each_speaker_gets_only_its_own_lore(user):
    mika = make_companion(
        user, name="Mika", config={"card": {"character_book": book(entry("MIKA-LORE", "boat"))}}
    )
    rin = make_companion(
        user, name="Rin", config={"card": {"character_book": book(entry("RIN-LORE", "boat"))}}
    )
    history = [("user", "Alice: Whose boat is this?")]
    for speaker, other, own, theirs in (
        (mika, "Rin", "MIKA-LORE", "RIN-LORE"),
        (rin, "Mika", "RIN-LORE", "MIKA-LORE"),
    ):
        system = build_group_chat_messages(speaker, user_name="Alice", others=[other], history=history)[0][
            "content"
        ]
        assert own in system and theirs not in system


# --- the greeting is part of the history ----------------------------------------------------


def reply_prompt(user, companion, said: str) -> list[dict[str, str]]:
    """What the LLM is sent for a reply to ``said`` in the companion's new chat (greeting first)."""
    conversation = conversation_for_companion(user=user, companion=companion)
    message = add_user_message(conversation, said)
    run = run_create(
        companion=companion,
        want_image=False,
        admission=run_admit(user, want_image=False),
        conversation=conversation,
        turn=message.turn,
    )
    run = PipelineRun.objects.select_related("conversation", "turn__message", "companion").get(pk=run.pk)
    sent = ReplyWriter(run).chat_messages(companion, user_name="Alice")
    run_mark_cancelled(run.pk)  # the prompt is all the test wants: the chat is free again
    return sent


@pytest.mark.django_db
def test_a_key_only_in_the_greeting_brings_its_entry_in(user):
    companion = card_companion(user, book(LAMP), greeting="*{{char}} trims the wick of the LAMP.*")
    sent = reply_prompt(user, companion, "Where am I?")
    assert sent[1] == {"role": "assistant", "content": "*Keeper trims the wick of the LAMP.*"}
    assert sent[-1] == {"role": "user", "content": "Where am I?"}
    assert "[World info: background facts, use them when relevant]\nThe lamp is old.\n" in sent[0]["content"]


@pytest.mark.django_db
def test_without_the_key_in_the_greeting_or_the_message_the_entry_stays_out(user):
    companion = card_companion(user, book(LAMP), greeting="*{{char}} looks out to sea.*")
    sent = reply_prompt(user, companion, "Where am I?")
    assert sent[1]["content"] == "*Keeper looks out to sea.*"
    assert "The lamp is old." not in sent[0]["content"]


@pytest.mark.django_db
def test_the_greeting_shown_counts_not_its_other_versions(user):
    card = {"character_book": book(LAMP), "alternate_greetings": ["The lamp flickers."]}
    companion = make_companion(user, name="Keeper", greeting="Storm's coming.", config={"card": card})
    assert "The lamp is old." not in reply_prompt(user, companion, "Hello")[0]["content"]
    greeting = Message.objects.filter(role="assistant").get()
    message_show_alternative(user=user, conversation=greeting.conversation, message_id=greeting.pk)
    Message.objects.filter(role="user").delete()  # a fresh reply to the same greeting
    assert "The lamp is old." in reply_prompt(user, companion, "Hello")[0]["content"]
