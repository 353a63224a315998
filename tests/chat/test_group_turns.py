"""Who answers in a group: round-robin that rotates, the named companion first, replies per turn."""

import pytest

from chat.turns import named_first, plan_turn

MEMBERS = [(1, "Mika"), (2, "Rin"), (3, "Aya")]


@pytest.mark.parametrize(("turn", "order"), [(0, [1, 2, 3]), (1, [2, 3, 1]), (2, [3, 1, 2]), (3, [1, 2, 3])])
def test_round_robin_rotates_who_starts(turn, order):
    assert plan_turn(MEMBERS, text="hello all", turn_index=turn, replies_per_turn=None) == order


def test_the_companion_named_answers_first_then_the_others_in_order():
    assert plan_turn(MEMBERS, text="What do you think, aya?", turn_index=0, replies_per_turn=None) == [
        3,
        1,
        2,
    ]
    assert plan_turn(MEMBERS, text="RIN! come here", turn_index=2, replies_per_turn=None) == [2, 3, 1]


def test_replies_per_turn_caps_how_many_answer():
    assert plan_turn(MEMBERS, text="hi", turn_index=1, replies_per_turn=1) == [2]
    assert plan_turn(MEMBERS, text="hi Aya", turn_index=0, replies_per_turn=2) == [3, 1]
    assert plan_turn(MEMBERS, text="hi", turn_index=0, replies_per_turn=9) == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Mikael is not Mika's friend", 1),  # the whole word only
        ("Mikael and Rinse", None),
        ("rin, then mika", 2),  # the earliest named
        ("", None),
    ],
)
def test_names_match_case_insensitively_on_word_boundaries(text, named):
    assert named_first(text, MEMBERS) == named


def test_names_with_regex_characters_are_literal():
    assert named_first("hey a.b", [(1, "a.b"), (2, "Rin")]) == 1
    assert named_first("hey axb", [(1, "a.b"), (2, "Rin")]) is None
