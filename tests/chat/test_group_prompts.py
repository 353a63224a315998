"""The group prompt: the companion is told it is in a group, and every line names its speaker."""

import pytest

from chat import prompts
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db


def test_the_group_prompt_names_everyone_and_keeps_the_labelled_lines(user):
    mika = make_companion(user, name="Mika")
    history = [("user", "Alice: Hi all"), ("user", "Rin: Hey!"), ("assistant", "Mika: Hello")]
    sent = prompts.build_group_chat_messages(mika, user_name="Alice", others=["Rin", "Aya"], history=history)
    system = sent[0]["content"]
    assert system.startswith(prompts.build_system_prompt(mika, user_name="Alice"))
    assert "group conversation between Alice" in system and "Rin, Aya" in system
    assert "Reply only as Mika" in system
    assert sent[1:] == [{"role": role, "content": text} for role, text in history]


def test_card_post_history_instructions_still_come_last(user):
    mika = make_companion(user, name="Mika", config={"card": {"post_history_instructions": "Be brief."}})
    sent = prompts.build_group_chat_messages(mika, user_name="Alice", others=["Rin"], history=[("user", "x")])
    assert sent[-1] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Mika: Hello there", "Hello there"),
        ("**mika:** Hello", "Hello"),
        ("Hello, Mika: nice", "Hello, Mika: nice"),
        ("Mikaela: hi", "Mikaela: hi"),
    ],
)
def test_a_copied_name_label_is_dropped(text, kept):
    assert prompts.strip_speaker_label(text, "Mika") == kept
