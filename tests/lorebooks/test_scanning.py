"""World Info scanning: which entries a turn brings in, by SillyTavern's rules (``lorebooks.scanning``)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from companionhub import macros
from companions import cards
from lorebooks import scanning
from lorebooks.scanning import (
    AFTER_CHAR,
    AND_ALL,
    AND_ANY,
    AT_DEPTH,
    BEFORE_CHAR,
    NOT_ALL,
    NOT_ANY,
    ScanBook,
    ScanEntry,
    key_matches,
    regex_key_unusable,
    scan,
)


def words(text: str) -> int:
    """The tests' token count: one token a word, so budgets read plainly."""
    return len(text.split())


def entry(content: str, *keys: str, uid: int = 0, **fields) -> ScanEntry:
    return ScanEntry(uid=uid, keys=tuple(keys), content=content, **fields)


def book(*entries: ScanEntry, book_id: int = 1, name: str = "World", **fields) -> ScanBook:
    numbered = tuple(
        e if e.uid else ScanEntry(**{**e.__dict__, "uid": index}) for index, e in enumerate(entries, 1)
    )
    return ScanBook(book_id=book_id, name=name, entries=numbered, **fields)


def run(books, *messages: str, budget: int = 1000, always=(), rng=None, **kwargs) -> scanning.ScanResult:
    if isinstance(books, ScanBook):
        books = [books]
    return scan(
        books,
        messages=list(messages),
        always_scanned=always,
        char="Keeper",
        user="Alice",
        budget_tokens=budget,
        count_tokens=words,
        rng=rng,
        **kwargs,
    )


def pick(books, *messages: str, **kwargs) -> list[str]:
    """The texts fired for ``messages`` (oldest first), in insertion order."""
    return [fired.text for fired in run(books, *messages, **kwargs).fired]


LAMP = entry("The lamp is old.", "lamp")


# --- keys ------------------------------------------------------------------------------------


def test_an_entry_comes_in_only_when_a_key_is_mentioned():
    assert pick(book(LAMP), "Is the lamp lit?") == ["The lamp is old."]
    assert pick(book(LAMP), "Where am I?") == []


def test_any_key_of_an_entry_is_enough():
    assert pick(book(entry("The lamp is old.", "lamp", "lantern")), "Hand me the lantern.") == [
        "The lamp is old."
    ]


def test_keys_ignore_case_unless_the_entry_is_case_sensitive():
    assert pick(book(LAMP), "THE LAMP!") == ["The lamp is old."]
    strict = entry("Captain Lamp is the keeper's cat.", "Lamp", case_sensitive=True)
    assert pick(book(strict), "the lamp flickers") == []
    assert pick(book(strict), "Where is Lamp?") == ["Captain Lamp is the keeper's cat."]


def test_ignoring_case_is_casefolding():
    street = entry("The street floods.", "straße")
    assert pick(book(street), "THE STRASSE") == ["The street floods."]


def test_keys_match_inside_words_by_default():
    assert pick(book(LAMP), "The lamplight dims.") == ["The lamp is old."]


def test_a_whole_word_key_of_one_word_must_stand_alone():
    whole = entry("The lamp is old.", "lamp", match_whole_words=True)
    assert pick(book(whole), "The lamplight dims.") == []
    assert pick(book(whole), "an oil-lamp") == ["The lamp is old."]
    assert pick(book(whole), "The lamp, dim.") == ["The lamp is old."]
    assert pick(book(whole), "THE LAMP") == ["The lamp is old."]
    assert pick(book(whole), "lamp") == ["The lamp is old."]
    assert pick(book(whole), "lamp_post") == []  # "_" is a word character


def test_whole_words_know_letters_beyond_ascii():
    ber = entry("Ber is a town.", "ber", match_whole_words=True)
    assert pick(book(ber), "über alles") == []
    assert pick(book(ber), "to ber, then") == ["Ber is a town."]


def test_a_whole_word_key_with_punctuation_needs_no_word_next_to_it():
    mister = entry("A title.", "Mr.", match_whole_words=True)
    assert pick(book(mister), "Hello Mr. Grey") == ["A title."]
    assert pick(book(mister), "Hello Mr.Grey") == []
    bangs = entry("Never.", "!!!", match_whole_words=True)
    assert pick(book(bangs), "hi") == []
    assert pick(book(bangs), "wow !!!") == ["Never."]


def test_a_whole_word_key_of_several_words_matches_as_a_substring_as_in_sillytavern():
    phrase = entry("Ships wreck here.", "Black Rock", match_whole_words=True, case_sensitive=True)
    assert pick(book(phrase), "off the Black Rock!") == ["Ships wreck here."]
    assert pick(book(phrase), "off the Black Rocks") == ["Ships wreck here."]
    assert pick(book(phrase), "off the black rock") == []


def test_a_key_does_not_match_across_two_messages():
    assert pick(book(entry("Storms.", "night storm")), "a night", "storm") == []
    assert pick(book(entry("Storms.", r"/night\s+storm/")), "a night", "storm") == []
    assert pick(book(entry("Storms.", "/night.storm/s")), "a night", "storm") == []
    assert pick(book(entry("Storms.", "night storm")), "a night storm") == ["Storms."]


def test_names_are_filled_in_keys_and_content():
    own = entry("{{char}} owes {{user}} a favour.", "{{user}}'s boat")
    assert pick(book(own), "Take Alice's boat") == ["Keeper owes Alice a favour."]


def test_cards_and_lorebooks_fill_names_with_one_implementation():
    assert cards.fill_macros is macros.fill_macros


@pytest.mark.parametrize("key", ["", "   ", "{{original}}"])
def test_a_blank_key_never_matches(key):
    assert pick(book(entry("Blank.", key)), "anything at all") == []


def test_a_key_longer_than_the_cap_is_ignored():
    long_key = "l" * (scanning.MAX_KEY_CHARS + 1)
    assert pick(book(entry("Long.", long_key)), long_key) == []
    assert pick(book(entry("Long.", long_key, "lamp")), "lamp") == ["Long."]


# --- regex keys ---------------------------------------------------------------------------------

DRAGON = entry("Dragons hoard gold.", r"/\bdrag(on|ons)\b/i")


@pytest.mark.parametrize(
    ("said", "fires"),
    [
        ("A dragon!", True),
        ("DRAGONS above", True),
        ("dragonfly", False),
        ("a drag race", False),
        ("snapdragon", False),
    ],
)
def test_a_regex_key_matches_as_its_pattern_says(said, fires):
    assert pick(book(DRAGON), said) == (["Dragons hoard gold."] if fires else [])


def test_a_regex_key_follows_its_own_flags_not_the_entrys_case_or_whole_words():
    no_i = entry("Case.", "/Dragon/")
    assert pick(book(no_i), "a dragon") == []
    assert pick(book(no_i), "a Dragon") == ["Case."]
    strict = entry("Case.", "/dragon/i", case_sensitive=True, match_whole_words=True)
    assert pick(book(strict), "SNAPDRAGON") == ["Case."]


def test_regex_flags_m_and_s_work_and_g_u_y_are_ignored():
    line = entry("Line.", "/^lamp$/m")
    assert pick(book(line), "first", "lamp", "last") == ["Line."]
    assert pick(book(entry("Line.", "/^lamp$/")), "first", "lamp", "last") == []
    assert pick(book(entry("Dot.", "/a.b/s")), "a\nb") == ["Dot."]
    assert pick(book(entry("Dot.", "/a.b/")), "a\nb") == []
    assert pick(book(entry("Flags.", "/lamp/gimuy")), "LAMP") == ["Flags."]


def test_with_use_regex_every_key_is_a_pattern_whose_case_follows_the_entry():
    digits = entry("Digits.", r"\d{3}", "CALL", use_regex=True)
    assert pick(book(digits), "call 555") == ["Digits."]
    assert pick(book(digits), "call") == ["Digits."]
    strict = entry("Digits.", "CALL", use_regex=True, case_sensitive=True)
    assert pick(book(strict), "call") == []
    assert pick(book(entry("Slashed.", "/lamp/i", use_regex=True)), "LAMP") == ["Slashed."]


def test_a_key_with_an_unescaped_slash_inside_is_plain_text():
    path = entry("A path.", "/a/b/")
    assert pick(book(path), "see /a/b/ here") == ["A path."]
    assert pick(book(path), "ab") == []
    escaped = entry("A path.", r"/a\/b/")
    assert pick(book(escaped), "see a/b here") == ["A path."]


def test_a_catastrophic_pattern_completes_on_a_long_text():
    doom = entry("Doom.", "/(a+)+$/")
    text = "a" * 100_000 + "b"
    assert pick(book(doom), text, always=[text]) == []
    assert key_matches("/(a+)+$/", text) is False
    assert key_matches("/(a+)+b$/", text) is True


@pytest.mark.parametrize(
    "key",
    [
        r"/(?<=x)y/",
        r"/x(?=y)/",
        r"/(a)\1/",
        "/[/",
        "/(unclosed/",
        "/" + "a" * (scanning.MAX_PATTERN_CHARS + 1) + "/",
    ],
)
def test_a_pattern_re2_cannot_run_is_ignored_without_error(key):
    assert regex_key_unusable(key)
    assert pick(book(entry("Never.", key)), "xy xyz aa [ (unclosed " + "a" * 600) == []
    assert pick(book(entry("Other keys work.", key, "lamp")), "lamp") == ["Other keys work."]


def test_a_usable_or_plain_key_is_not_reported_unusable():
    assert not regex_key_unusable(r"/\bdrag(on|ons)\b/i")
    assert not regex_key_unusable("lamp")
    assert regex_key_unusable("(?<=x)y", use_regex=True)


def test_an_unusable_pattern_is_logged_once_while_cached(caplog):
    scanning._compile.cache_clear()
    scanning._key.cache_clear()
    key = r"/(?<=once)y/"
    with caplog.at_level("INFO", logger="lorebooks.scanning"):
        for _ in range(3):
            run(book(entry("Never.", key)), "oncey")
    assert sum("RE2 cannot run" in r.getMessage() for r in caplog.records) == 1


# --- constant, enabled, empty content ----------------------------------------------------------


def test_a_constant_entry_comes_in_without_any_key():
    always = entry("The sea is cold.", constant=True)
    result = run(book(always, LAMP), "Hello")
    assert [(f.text, f.reason) for f in result.fired] == [("The sea is cold.", "constant")]


def test_a_disabled_entry_never_comes_in():
    assert pick(book(entry("The lamp is old.", "lamp", enabled=False)), "lamp") == []
    assert pick(book(entry("The sea is cold.", constant=True, enabled=False)), "hi") == []


@pytest.mark.parametrize("content", ["", "   \n", "{{original}}"])
def test_an_entry_with_no_content_is_skipped(content):
    assert pick(book(entry(content, "lamp"), entry(content, constant=True)), "lamp") == []


def test_an_entry_without_keys_fires_only_when_constant():
    assert pick(book(entry("No keys.")), "No keys.") == []


# --- secondary keys ------------------------------------------------------------------------------


def oil(logic: int) -> ScanBook:
    return book(entry("Oil lore.", "lamp", secondary_keys=("oil", "fuel"), selective_logic=logic))


@pytest.mark.parametrize(
    ("logic", "said", "fires"),
    [
        (AND_ANY, "the lamp", False),
        (AND_ANY, "the lamp needs oil", True),
        (AND_ANY, "the lamp needs oil and fuel", True),
        (AND_ANY, "some oil", False),
        (AND_ALL, "the lamp needs oil", False),
        (AND_ALL, "the lamp needs oil and fuel", True),
        (NOT_ANY, "the lamp", True),
        (NOT_ANY, "the lamp needs oil", False),
        (NOT_ANY, "oil and fuel", False),
        (NOT_ALL, "the lamp", True),
        (NOT_ALL, "the lamp needs oil", True),
        (NOT_ALL, "the lamp needs oil and fuel", False),
    ],
)
def test_secondary_keys_follow_the_entrys_logic(logic, said, fires):
    assert pick(oil(logic), said) == (["Oil lore."] if fires else [])


@pytest.mark.parametrize("logic", [AND_ANY, NOT_ALL, NOT_ANY, AND_ALL])
def test_with_no_secondary_keys_the_primary_match_is_enough(logic):
    assert pick(book(entry("Lamp.", "lamp", selective_logic=logic)), "lamp") == ["Lamp."]


def test_an_unknown_logic_reads_as_and_any():
    odd = book(entry("Oil lore.", "lamp", secondary_keys=("oil",), selective_logic=9))
    assert pick(odd, "lamp") == []
    assert pick(odd, "lamp oil") == ["Oil lore."]


def test_the_reason_names_the_primary_key_that_matched():
    lamp = entry("Lamp.", "lantern", "lamp", secondary_keys=("oil",))
    assert run(book(lamp), "lamp oil").fired[0].reason == "key: lamp"


# --- what is scanned -------------------------------------------------------------------------------


def test_only_the_books_scan_depth_newest_messages_are_scanned():
    messages = ["the lamp", "a", "b", "c"]
    assert pick(book(LAMP, scan_depth=4), *messages) == ["The lamp is old."]
    assert pick(book(LAMP, scan_depth=3), *messages) == []


def test_each_book_scans_its_own_depth():
    deep = book(entry("Deep.", "lamp"), book_id=1, scan_depth=5)
    shallow = book(entry("Shallow.", "lamp"), book_id=2, scan_depth=1)
    assert pick([deep, shallow], "lamp", "x") == ["Deep."]


def test_the_greeting_and_summary_are_scanned_whatever_the_depth():
    messages = ["hello", *["x"] * 10]
    assert pick(book(LAMP, scan_depth=1), *messages, always=["*She trims the LAMP.*"]) == ["The lamp is old."]
    summary = "Alice found a lamp in the cellar."
    assert pick(book(LAMP, scan_depth=2), *messages, always=["Greeting.", summary]) == ["The lamp is old."]
    assert pick(book(LAMP, scan_depth=2), always=[summary]) == ["The lamp is old."]


def test_scan_depth_zero_brings_constant_entries_only():
    always = entry("Always.", constant=True)
    chained = entry("Chained.", "always")
    depth_zero = book(LAMP, always, chained, scan_depth=0)
    assert pick(depth_zero, "lamp", always=["the lamp"]) == ["Always."]


def test_a_huge_scan_depth_is_capped():
    messages = ["the lamp", *["x"] * scanning.MAX_SCAN_DEPTH]
    assert pick(book(LAMP, scan_depth=10**9), *messages) == []
    assert pick(book(LAMP, scan_depth=10**9), *messages[1:], "lamp") == ["The lamp is old."]


def test_each_scanned_text_keeps_only_its_end():
    early = "lamp " + "x " * scanning.MAX_MESSAGE_CHARS
    assert pick(book(LAMP), early) == []
    assert pick(book(LAMP), early, always=[early]) == []
    assert pick(book(LAMP), early + "lamp") == ["The lamp is old."]


def test_non_text_messages_are_ignored():
    assert pick(book(LAMP), None, 5, "the lamp") == ["The lamp is old."]


# --- recursion ----------------------------------------------------------------------------------------


def chain(**fields) -> ScanBook:
    """A's text names B, B's names C, C's names D."""
    return book(
        entry("Alpha mentions beta.", "alpha", uid=1),
        entry("Beta mentions gamma.", "beta", uid=2),
        entry("Gamma mentions delta.", "gamma", uid=3),
        entry("Delta ends it.", "delta", uid=4),
        **fields,
    )


def test_a_recursive_chain_is_followed():
    result = run(chain(recursion_depth=3), "alpha")
    assert [(f.uid, f.reason) for f in result.fired] == [
        (1, "key: alpha"),
        (2, "recursion: beta"),
        (3, "recursion: gamma"),
        (4, "recursion: delta"),
    ]


@pytest.mark.parametrize(("depth", "uids"), [(0, [1]), (1, [1, 2]), (2, [1, 2, 3]), (3, [1, 2, 3, 4])])
def test_recursion_goes_only_as_deep_as_the_book_allows(depth, uids):
    assert [f.uid for f in run(chain(recursion_depth=depth), "alpha").fired] == uids


def test_recursion_is_bounded_however_deep_a_book_asks():
    links = [entry(f"link{n + 1}", f"link{n}", uid=n + 1) for n in range(30)]
    fired = run(book(*links, recursion_depth=10**6), "link0").fired
    assert len(fired) == scanning.MAX_RECURSION_DEPTH + 1


def test_a_cycle_fires_each_entry_once():
    cycle = book(entry("Ping: pong.", "ping"), entry("Pong: ping.", "pong"), entry("Self: self", "self"))
    assert sorted(pick(cycle, "ping self", budget=100)) == ["Ping: pong.", "Pong: ping.", "Self: self"]


def test_an_exclude_recursion_entry_is_not_triggered_by_other_entries():
    excluded = book(entry("Alpha mentions beta.", "alpha"), entry("Beta.", "beta", exclude_recursion=True))
    assert pick(excluded, "alpha") == ["Alpha mentions beta."]
    assert sorted(pick(excluded, "alpha beta")) == ["Alpha mentions beta.", "Beta."]


def test_a_prevent_recursion_entry_triggers_no_other():
    quiet = book(entry("Alpha mentions beta.", "alpha", prevent_recursion=True), entry("Beta.", "beta"))
    assert pick(quiet, "alpha") == ["Alpha mentions beta."]


def test_a_constant_entry_can_start_a_chain():
    started = book(entry("Always beta.", constant=True), entry("Beta.", "beta"))
    assert [f.reason for f in run(started, "hi").fired] == ["constant", "recursion: beta"]


def test_recursion_reaches_across_books_as_deep_as_the_reached_book_allows():
    first = book(entry("Alpha mentions beta.", "alpha"), book_id=1, recursion_depth=0)
    second = book(entry("Beta.", "beta"), book_id=2, recursion_depth=1)
    third = book(entry("Beta again.", "beta"), book_id=3, recursion_depth=0)
    assert pick([first, second, third], "alpha") == ["Alpha mentions beta.", "Beta."]


def test_secondary_keys_may_be_met_by_recursion():
    both = book(entry("Oil lamp.", "oil"), entry("Both.", "lamp", secondary_keys=("oil",)))
    result = run(both, "lamp and fire", "oil")
    assert {f.reason for f in result.fired} == {"key: oil", "key: lamp"}
    chained = book(entry("Mentions oil.", "fire"), entry("Both.", "lamp", secondary_keys=("oil",)))
    assert [f.reason for f in run(chained, "lamp fire").fired] == ["key: fire", "recursion: lamp"]


# --- probability --------------------------------------------------------------------------------------


class NoDice(random.Random):
    def random(self) -> float:
        raise AssertionError("rolled")


def test_probability_zero_never_fires():
    for seed in range(50):
        assert pick(book(entry("Rare.", "lamp", probability=0)), "lamp", rng=random.Random(seed)) == []


def test_probability_hundred_always_fires_without_rolling():
    assert pick(book(entry("Sure.", "lamp", probability=100)), "lamp", rng=NoDice()) == ["Sure."]


def test_a_fifty_percent_entry_is_decided_by_the_seeded_rng():
    entries = [entry(f"Coin {n}.", "coin", uid=n + 1, probability=50) for n in range(40)]
    dice = random.Random(7)
    expected = [f"Coin {n}." for n in range(40) if dice.random() * 100 <= 50]
    assert 0 < len(expected) < 40
    got = pick(book(*entries), "coin", rng=random.Random(7), max_entries=50)
    assert sorted(got) == sorted(expected)
    assert pick(book(*entries), "coin", rng=random.Random(7)) == got


def test_constant_entries_roll_too():
    assert pick(book(entry("Rare.", constant=True, probability=0)), "hi") == []


def test_an_entry_that_lost_its_roll_is_not_rolled_again_by_recursion():
    class Once(random.Random):
        rolls = 0

        def random(self) -> float:
            self.rolls += 1
            return 0.99

    dice = Once()
    lost = book(entry("Beta beta.", "beta", probability=50), entry("Alpha mentions beta.", "alpha"))
    assert pick(lost, "alpha beta", rng=dice) == ["Alpha mentions beta."]
    assert dice.rolls == 1


def test_odd_probabilities_are_clamped():
    assert pick(book(entry("Over.", "lamp", probability=150)), "lamp", rng=NoDice()) == ["Over."]
    assert pick(book(entry("Under.", "lamp", probability=-5)), "lamp", rng=NoDice()) == []


# --- budget -----------------------------------------------------------------------------------------------


def five(label: str) -> str:
    return f"{label} one two three four"  # five tokens


def test_over_budget_the_lowest_order_entries_are_left_out_first():
    low = entry(five("low"), "lamp", order=1)
    high = entry(five("high"), "lamp", order=300)
    middle = entry(five("mid"), "lamp", order=50)
    result = run(book(low, high, middle), "lamp", budget=12)
    assert [f.text.split()[0] for f in result.fired] == ["mid", "high"]
    assert [f.text.split()[0] for f in result.over_budget] == ["low"]
    assert result.tokens == 10


def test_once_an_entry_does_not_fit_the_ones_after_it_are_left_out_too():
    huge = entry("huge " * 50, "lamp", order=200)
    small = entry("small", "lamp", order=1)
    result = run(book(huge, small), "lamp", budget=20)
    assert result.fired == []
    assert [f.text for f in result.over_budget] == ["huge " * 49 + "huge", "small"]


def test_an_entry_exactly_filling_the_budget_fits():
    assert pick(book(entry(five("x"), "lamp")), "lamp", budget=5) == [five("x")]


def test_a_zero_budget_turns_lorebooks_off():
    result = run(book(LAMP, entry("always", constant=True)), "lamp", budget=0)
    assert result.fired == [] and result.over_budget == []


def test_a_books_own_budget_closes_that_book_and_others_go_on():
    capped = book(
        entry(five("a1"), "lamp", order=3), entry(five("a2"), "lamp", order=2), entry("a3", "lamp", order=1),
        book_id=1, token_budget=7,
    )  # fmt: skip
    other = book(entry(five("b1"), "lamp"), book_id=2)
    result = run([capped, other], "lamp", budget=100)
    assert sorted(f.text.split()[0] for f in result.fired) == ["a1", "b1"]
    assert [f.text.split()[0] for f in result.over_budget] == ["a2", "a3"]


def test_books_given_first_take_the_budget_first():
    chat_book = book(entry(five("chat"), "lamp", order=1), book_id=1)
    character_book = book(entry(five("character"), "lamp", order=999), book_id=2)
    result = run([chat_book, character_book], "lamp", budget=5)
    assert [f.book_id for f in result.fired] == [1]
    assert [f.book_id for f in result.over_budget] == [2]


def test_entries_found_by_recursion_come_after_the_first_pass_in_the_budget():
    chained = book(entry(five("alpha beta"), "alpha", order=1), entry(five("beta"), "beta", order=999))
    result = run(chained, "alpha", budget=6)
    assert [f.reason for f in result.fired] == ["key: alpha"]
    assert [f.reason for f in result.over_budget] == ["recursion: beta"]


def test_overflow_stops_recursion():
    chained = book(entry("Alpha mentions beta.", "alpha", order=2), entry(five("big"), "lamp", order=1))
    result = run(chained, "alpha lamp", budget=4)  # "Alpha mentions beta." is three tokens
    assert [f.text for f in result.fired] == ["Alpha mentions beta."]
    assert [f.text for f in result.over_budget] == [five("big")]


def test_at_most_max_entries_come_in():
    many = [entry(f"fact {n}", "lamp", uid=n + 1) for n in range(scanning.MAX_FIRED + 5)]
    result = run(book(*many), "lamp", budget=100_000)
    assert len(result.fired) == scanning.MAX_FIRED
    assert len(result.over_budget) == 5
    assert len(run(book(*many), "lamp", budget=100_000, max_entries=3).fired) == 3
    assert len(run(book(*many), "lamp", budget=100_000, max_entries=10**6).fired) == scanning.MAX_FIRED


def test_the_over_budget_list_is_bounded():
    many = [entry(f"fact {n}", "lamp", uid=n + 1) for n in range(scanning.MAX_OVER_BUDGET + 30)]
    assert len(run(book(*many), "lamp", budget=1).over_budget) == scanning.MAX_OVER_BUDGET


# --- order, position, depth ---------------------------------------------------------------------------


def test_entries_are_ordered_by_order_then_book_then_entry():
    first = entry("first", "lamp", order=1, uid=30)
    second = entry("second", "lamp", order=5, uid=20)
    third = entry("third", "lamp", order=5, uid=10)
    other = book(entry("other", "lamp", order=5), book_id=2)
    assert pick([book(third, second, first), other], "lamp") == ["first", "third", "second", "other"]


def test_each_entry_keeps_its_position_and_depth_entries_their_depth():
    entries = book(
        entry("before", "lamp", order=1),
        entry("after", "lamp", order=2, position=AFTER_CHAR),
        entry("deep", "lamp", order=3, position=AT_DEPTH, depth=2),
        entry("odd", "lamp", order=4, position="top", depth=7),
        entry("clamped", "lamp", order=5, position=AT_DEPTH, depth=-3),
    )
    result = run(entries, "lamp")
    assert [(f.text, f.position, f.depth) for f in result.fired] == [
        ("before", BEFORE_CHAR, 0),
        ("after", AFTER_CHAR, 0),
        ("deep", AT_DEPTH, 2),
        ("odd", BEFORE_CHAR, 0),
        ("clamped", AT_DEPTH, 0),
    ]


def test_a_fired_entry_says_where_it_came_from():
    lamp = entry("{{char}} trims the lamp.", "lamp", uid=7, comment="Lamp", order=3)
    titled = book(lamp, book_id=9, name="Sea")
    (fired,) = run(titled, "lamp").fired
    assert fired == scanning.Fired(
        book_id=9, book_name="Sea", uid=7, comment="Lamp", text="Keeper trims the lamp.",
        position=BEFORE_CHAR, depth=0, order=3, tokens=4, reason="key: lamp",
    )  # fmt: skip


# --- odd values: bounded, never raised -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"scan_depth": -1, "recursion_depth": -1, "token_budget": -5},
        {"scan_depth": 10**9, "recursion_depth": 10**9, "token_budget": 10**9},
    ],
    ids=repr,
)
def test_odd_book_settings_are_clamped(fields):
    result = run(book(LAMP, **fields), "the lamp")
    assert [f.text for f in result.fired] == ([] if fields["scan_depth"] < 0 else ["The lamp is old."])


def test_non_text_keys_are_dropped_and_the_text_ones_kept():
    mixed = ScanEntry(uid=1, keys=(1, None, "lamp"), content="The lamp is old.")  # type: ignore[arg-type]
    assert pick(book(mixed), "the lamp") == ["The lamp is old."]


def test_entries_past_the_cap_of_a_book_are_not_looked_at():
    filler = [entry("filler", "zzz", uid=n + 1) for n in range(scanning.MAX_BOOK_ENTRIES)]
    assert pick(book(*filler, entry("late", "lamp", uid=10**6)), "lamp") == []


KEY = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["/(a+)+$/", "/(?<=x)y/", r"/\bx\b/i", "/[/", "{{user}}", "/a/b/", "lamp", ""]),
)
ENTRY = st.builds(
    ScanEntry,
    uid=st.integers(0, 50),
    keys=st.lists(KEY, max_size=3).map(tuple),
    content=st.text(max_size=30),
    secondary_keys=st.lists(KEY, max_size=3).map(tuple),
    selective_logic=st.integers(-1, 5),
    constant=st.booleans(),
    enabled=st.booleans(),
    order=st.integers(-(10**6), 10**6),
    position=st.sampled_from([BEFORE_CHAR, AFTER_CHAR, AT_DEPTH, "x"]),
    depth=st.integers(-5, 10**5),
    probability=st.integers(-10, 200),
    case_sensitive=st.booleans(),
    match_whole_words=st.booleans(),
    use_regex=st.booleans(),
    exclude_recursion=st.booleans(),
    prevent_recursion=st.booleans(),
)
BOOK = st.builds(
    ScanBook,
    book_id=st.integers(1, 5),
    name=st.text(max_size=5),
    entries=st.lists(ENTRY, max_size=8).map(tuple),
    scan_depth=st.integers(-2, 2000),
    recursion_depth=st.integers(-2, 50),
    token_budget=st.integers(-5, 100),
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    books=st.lists(BOOK, max_size=3),
    messages=st.lists(st.text(max_size=30), max_size=6),
    always=st.lists(st.text(max_size=30), max_size=2),
    budget=st.integers(-5, 200),
    seed=st.integers(0, 2**32),
)
def test_no_book_makes_scanning_raise_or_overflow(books, messages, always, budget, seed):
    result = run(books, *messages, always=always, budget=budget, rng=random.Random(seed))
    assert len(result.fired) <= scanning.MAX_FIRED
    assert result.tokens <= max(budget, 0)
    assert all(f.text and f.text == f.text.strip() for f in result.fired)
    assert [f.order for f in result.fired] == sorted(f.order for f in result.fired)
    assert len({(f.book_id, id(f)) for f in result.fired}) == len(result.fired)
