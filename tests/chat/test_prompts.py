"""Prompt rules: each one tested without a back end."""

import pytest

from chat.prompts import (
    SceneState,
    build_chat_messages,
    build_image_prompt,
    build_system_prompt,
    extract_state,
    filter_outfit,
    trim_history,
)
from tests.companions.factories import make_companion

CURRENT = SceneState("jeans", "at home", "reading")


@pytest.mark.parametrize(
    "raw",
    [
        '{"outfit": "red dress", "location": "park", "action": "walking", "wants_image": true}',
        'Sure!\n```json\n{"outfit": "red dress", "location": "park", "action": "walking", '
        '"wants_image": true}\n```',
        "{'outfit': 'red dress', 'location': 'park', 'action': 'walking', 'wants_image': 'true'}",
        '{"outfit": "red dress", "location": "park", "action": "walking", "wants_image": true,}',
    ],
)
def test_state_is_extracted_from_chatty_output(raw):
    assert extract_state(raw, current=CURRENT) == SceneState("red dress", "park", "walking", True)


@pytest.mark.parametrize(
    "raw", ["", "no json here", "{broken", '["a list"]', '{"outfit": 5, "location": ""}']
)
def test_unreadable_values_keep_the_current_state(raw):
    assert extract_state(raw, current=CURRENT) == CURRENT


def test_long_values_are_trimmed():
    state = extract_state('{"outfit": "' + "very " * 100 + 'long"}', current=CURRENT)
    assert len(state.outfit) <= 200


@pytest.mark.parametrize(
    ("outfit", "visible"),
    [
        ("a red dress and lace lingerie", "a red dress"),
        ("jeans, a t-shirt, a bra", "jeans, a t-shirt"),
        ("lace lingerie", "lace lingerie"),  # nothing over it: it is what shows
        ("a blue hoodie", "a blue hoodie"),
    ],
)
def test_underwear_is_dropped_under_outerwear(outfit, visible):
    assert filter_outfit(outfit) == visible


def test_history_keeps_the_newest_within_the_budget():
    history = [("user", "a" * 50), ("assistant", "b" * 50), ("user", "c" * 50)]
    assert trim_history(history, max_chars=120) == history[1:]
    assert trim_history(history, max_chars=10) == [("user", "c" * 10)]


def test_the_system_prompt_carries_persona_state_and_custom_prompt(user):
    companion = make_companion(user, system_prompt="Always answer in rhyme.", current_location="on a boat")
    prompt = build_system_prompt(companion, user_name="Alice")
    assert "You are Mika, chatting with Alice" in prompt
    assert "on a boat" in prompt
    assert "Always answer in rhyme." in prompt
    assert "pink" in prompt.lower()  # appearance from the catalogue


def test_chat_messages_put_history_after_the_system_prompt(user):
    companion = make_companion(user)
    messages = build_chat_messages(companion, user_name="Alice", history=[("user", "hi"), ("assistant", "")])
    assert [m["role"] for m in messages] == ["system", "user"]


def test_the_image_prompt_shows_the_scene_and_the_user_only_when_involved(user):
    companion = make_companion(
        user,
        current_outfit="a red dress and lingerie",
        current_location="at the beach",
        current_action="smiling",
    )
    prompt, negative = build_image_prompt(
        companion, user_appearance="tall man with a beard", scene_text="hello"
    )
    assert "a red dress" in prompt and "lingerie" not in prompt
    assert "at the beach" in prompt and "smiling" in prompt
    assert "beard" not in prompt
    assert "lowres" in negative
    together, _ = build_image_prompt(
        companion, user_appearance="tall man with a beard", scene_text="hug me, we are together"
    )
    assert "beard" in together
