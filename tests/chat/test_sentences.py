"""The streaming sentence cutter: where it cuts, where it never does, and that nothing is lost."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.sentences import SentenceCutter, is_speakable, speakable


def cut(text: str, **options) -> list[str]:
    cutter = SentenceCutter(**{"min_chars": 1, "max_chars": 400, **options})
    return [*cutter.feed(text), *cutter.flush()]


def test_it_cuts_at_sentence_ends_keeping_the_space_with_the_sentence():
    assert cut("Hello there! How are you? Fine.") == ["Hello there! ", "How are you? ", "Fine."]


def test_a_sentence_is_yielded_as_soon_as_the_next_one_starts():
    cutter = SentenceCutter(min_chars=1)
    assert cutter.feed("It is late.") == []
    assert cutter.feed(" ") == []
    assert cutter.feed("W") == ["It is late. "]


def test_the_last_sentence_always_comes_from_flush():
    cutter = SentenceCutter(min_chars=1)
    assert cutter.feed("One. Two.  \n") == ["One. "]
    assert cutter.flush() == ["Two.  \n"]


def test_ellipsis_and_newlines_end_sentences():
    assert cut("Well… I think so\nYes") == ["Well… ", "I think so\n", "Yes"]


def test_cjk_marks_end_sentences_without_a_space():
    assert cut("你好。再见！好吗？") == ["你好。", "再见！", "好吗？"]  # noqa: RUF001 - CJK marks on purpose


def test_numbers_and_abbreviations_do_not_end_sentences():
    text = "Dr. Smith paid 3.5 dollars, e.g. for J. R. R. Tolkien's book. Then left."
    assert cut(text) == ["Dr. Smith paid 3.5 dollars, e.g. for J. R. R. Tolkien's book. ", "Then left."]


def test_quotes_are_never_cut_inside():
    assert cut('She said "Stop. Now." and left. Ok.') == ['She said "Stop. Now." ', "and left. ", "Ok."]
    assert cut("He said “Wait. Please.” Then nothing.") == ["He said “Wait. Please.” ", "Then nothing."]


def test_actions_are_skipped_by_default():
    assert cut("Hi there. *smiles. Waves.* How are you?") == ["Hi there.  ", "How are you?"]


def test_actions_can_be_read_whole():
    assert cut("Hi there. *smiles. Waves.* How?", actions="read") == ["Hi there. ", "smiles. Waves. ", "How?"]


def test_a_line_break_closes_a_forgotten_quote_or_action():
    assert cut('"Open quote. Still.\nNext line. End.') == ['"Open quote. Still.\n', "Next line. ", "End."]
    assert cut("Before. *forgot to close\nAfter. Done.") == ["Before. \n", "After. ", "Done."]


def test_short_sentences_are_merged_with_the_next():
    assert cut("Oh! Hi! Hello there, friend. Bye.", min_chars=12) == ["Oh! Hi! Hello there, friend. ", "Bye."]


def test_run_ons_are_cut_at_a_comma_then_a_space():
    text = "one two three, four five six seven eight nine ten eleven twelve"
    pieces = cut(text, min_chars=3, max_chars=30)
    assert pieces[0] == "one two three,"
    assert all(len(p) <= 30 for p in pieces)
    assert "".join(pieces) == text


def test_a_word_longer_than_the_limit_is_cut_hard():
    pieces = cut("x" * 50, min_chars=2, max_chars=20)
    assert "".join(pieces) == "x" * 50 and all(len(p) <= 20 for p in pieces)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"actions": "shout"}, "actions"), ({"min_chars": 20, "max_chars": 30}, "max_chars")],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SentenceCutter(**options)


def test_speakable_says_whether_there_is_anything_to_say():
    assert is_speakable("Hi.") and is_speakable("3") and not is_speakable(" … ") and not is_speakable("")


ALPHABET = st.sampled_from([*'ab .!?…\n*"“”,3e.gDr。', "Dr.", "e.g.", " 3.5", "«", "»"])
TEXTS = st.lists(ALPHABET, max_size=120).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, data=st.data(), actions=st.sampled_from(["skip", "read"]))
def test_any_chunking_gives_the_same_sentences_and_loses_nothing(text, data, actions):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    whole = cut(text, actions=actions, min_chars=4, max_chars=40)
    cutter = SentenceCutter(actions=actions, min_chars=4, max_chars=40)
    pieces = [*(s for chunk in chunks for s in cutter.feed(chunk)), *cutter.flush()]
    assert pieces == whole
    assert "".join(pieces) == speakable(text, actions=actions)
    assert all(len(p) <= 40 for p in pieces)
    assert all(p.strip() for p in pieces[:-1])  # only the rest may be blank


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_skipping_actions_only_removes_what_is_between_asterisks(text):
    spoken = speakable(text.replace("*", ""), actions="skip")
    assert spoken == text.replace("*", "")
