"""Prompt rules: each one tested without a back end."""

import pytest

from chat.prompts import (
    SceneState,
    build_chat_messages,
    build_image_prompt,
    build_system_prompt,
    extract_state,
    filter_outfit,
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


# --- imported character cards ---------------------------------------------------------


def imported_card_companion(user):
    """A companion as companion_import_card leaves it: stand-in look, card text in config."""
    from companions import cards

    card = {
        "spec": "chara_card_v2",
        "personality": "stern but kind to {{user}}",
        "scenario": "{{user}} visits {{char}}'s lighthouse.",
        "mes_example": (
            "<START>\n{{user}}: Hello?\n{{char}}: *looks up* Who goes there?\n<START>\n{{char}}: Hm."
        ),
        "post_history_instructions": "Never speak for {{user}}.",
        "defaults": dict(cards.DEFAULT_LOOK),
    }
    return make_companion(
        user,
        name="Keeper",
        backstory="{{char}} keeps the light.",
        system_prompt="{{original}}\nWrite in past tense.",
        config={"card": card},
        **cards.DEFAULT_LOOK,
    )


def test_an_imported_cards_text_reaches_the_system_prompt_with_names_filled(user):
    prompt = build_system_prompt(imported_card_companion(user), user_name="Alice")
    assert "Personality: stern but kind to Alice" in prompt
    assert "Scenario: Alice visits Keeper's lighthouse." in prompt
    assert "Backstory: Keeper keeps the light." in prompt
    assert "Alice: Hello?\nKeeper: *looks up* Who goes there?" in prompt
    assert "<START>" not in prompt
    assert prompt.endswith("Write in past tense.")
    assert "{{" not in prompt


def test_stand_in_catalogue_answers_stay_out_of_the_prompt_until_edited(user):
    companion = imported_card_companion(user)
    prompt = build_system_prompt(companion, user_name="Alice")
    assert "Appearance:" not in prompt
    assert "Occupation:" not in prompt
    assert "Alice's friend" not in prompt
    assert "curious" not in prompt
    companion.hair_color, companion.occupation = "red", "doctor"
    edited = build_system_prompt(companion, user_name="Alice")
    assert "red hair" in edited
    assert "Occupation: doctor." in edited


def test_look_fields_match_the_stand_ins_an_import_fills():
    from chat.prompts import LOOK_FIELDS
    from companions import cards

    assert set(cards.DEFAULT_LOOK) >= LOOK_FIELDS


def test_post_history_instructions_come_after_the_conversation(user):
    messages = build_chat_messages(
        imported_card_companion(user), user_name="Alice", history=[("user", "hi"), ("assistant", "hello")]
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "system"]
    assert messages[-1]["content"] == "Never speak for Alice."


def test_a_wizard_companion_has_no_card_lines(user):
    messages = build_chat_messages(make_companion(user), user_name="Alice", history=[("user", "hi")])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Scenario:" not in messages[0]["content"]
    assert "Examples of how you talk" not in messages[0]["content"]
    assert "Occupation: artist." in messages[0]["content"]
