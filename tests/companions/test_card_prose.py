"""A wizard companion's card reads as a full character in other apps, and comes back exact."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from companions import cards, catalogue
from companions.cards.prose import join_words
from companions.services import companion_import_card
from tests.companions.factories import make_companion
from tests.companions.test_cards import v2_card

pytestmark = pytest.mark.django_db


def reimport(user, card: dict):
    companion, _ = companion_import_card(
        user=user, upload=SimpleUploadedFile("c.json", json.dumps(card).encode())
    )
    companion.refresh_from_db()
    return companion


def test_a_wizard_companion_has_a_readable_description(user):
    data = cards.build_card(make_companion(user))["data"]
    assert data["description"] == (
        "Mika is a 25-year-old woman of East Asian descent with long wavy pink hair, green eyes"
        " and fair skin. She is of average height, with a slim build."
        " Distinguishing features: a small star tattoo.\n\nGrew up by the sea."
    )


def test_a_wizard_companion_has_a_personality_and_a_scenario(user):
    data = cards.build_card(make_companion(user, gender="male", occupation="engineer"))["data"]
    assert (
        data["personality"]
        == "Mika is playful and caring. He loves video games and music. He is a software engineer."
    )
    assert data["scenario"] == (
        "Mika is {{user}}'s friend. Right now he is at home in the living room,"
        " wearing a casual sweater and jeans, relaxing on the sofa."
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"gender": "non_binary"}, ["non-binary person", "They are of average height", "They love"]),
        ({"ethnicity": "latino", "gender": "female"}, ["25-year-old Latina woman"]),
        ({"ethnicity": "mixed"}, ["of mixed heritage"]),
        ({"hair_style": "ponytail", "hair_color": "red"}, ["red hair in a ponytail"]),
        ({"hair_style": "bun"}, ["pink hair in a bun"]),
        ({"height": "tall", "body_type": "athletic"}, ["She is tall, with an athletic build."]),
        ({"hobbies": []}, []),
    ],
)
def test_the_prose_follows_the_answers(user, fields, words):
    card = cards.build_card(make_companion(user, **fields))["data"]
    text = f"{card['description']} {card['personality']}"
    for word in words:
        assert word in text
    if fields == {"hobbies": []}:
        assert "love" not in card["personality"]


def test_join_words():
    assert [join_words(w) for w in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == [
        "",
        "a",
        "a and b",
        "a, b and c",
    ]


def test_the_export_records_what_was_composed_and_the_exact_backstory(user):
    hub = cards.build_card(make_companion(user))["data"]["extensions"][cards.HUB_EXTENSION]
    assert set(hub["composed"]) == {"description", "personality", "scenario"}
    assert hub["backstory"] == "Grew up by the sea."


def test_reimporting_our_export_restores_the_columns_not_the_prose(user):
    original = make_companion(user)
    card = cards.build_card(original)
    copy = reimport(user, card)
    assert copy.backstory == "Grew up by the sea."
    assert copy.config["card"]["personality"] == copy.config["card"]["scenario"] == ""
    assert copy.config["card"]["composed"] == ["description", "personality", "scenario"]
    again = cards.build_card(copy)["data"]  # and it keeps composing: the same card again
    for name in ("description", "personality", "scenario"):
        assert again[name] == card["data"][name]


def test_a_description_edited_in_another_app_is_taken_as_written(user):
    card = cards.build_card(make_companion(user))
    card["data"]["description"] = "Edited in SillyTavern."
    card["data"]["personality"] = "Grumpy."
    copy = reimport(user, card)
    assert copy.backstory == "Edited in SillyTavern."
    assert copy.config["card"]["personality"] == "Grumpy."
    assert copy.config["card"]["composed"] == ["scenario"]


def test_an_imported_card_keeps_its_own_text(user):
    companion = reimport(user, v2_card())
    data = cards.build_card(companion)["data"]
    assert data["description"] == v2_card()["data"]["description"]
    assert data["personality"] == v2_card()["data"]["personality"]
    assert data["scenario"] == v2_card()["data"]["scenario"]
    assert "composed" not in data["extensions"][cards.HUB_EXTENSION]


def test_an_imported_card_says_nothing_of_its_stand_in_look(user):
    companion = reimport(user, v2_card(description="", personality=""))
    data = cards.build_card(companion)["data"]
    assert (data["description"], data["personality"]) == ("", "")


def test_answers_set_after_an_import_fill_the_empty_fields(user):
    companion = reimport(user, v2_card(description="", personality=""))
    companion.hair_color = "red"
    companion.personality_traits = ["witty"]
    data = cards.build_card(companion)["data"]
    assert data["description"] == "Seraphina is a non-binary person with red hair."  # the style a stand-in
    assert data["personality"] == "Seraphina is witty."
    assert data["scenario"] == v2_card()["data"]["scenario"]  # the card's own


def test_the_prose_stays_english_whatever_language_the_page_is_in(user, translated):
    companion = make_companion(user)
    english = cards.build_card(companion)["data"]
    translated(
        "de",
        {
            "hair colour\x04Pink": "Rosa",
            "eye colour\x04Green": "Grün",
            "ethnicity\x04East Asian": "Ostasiatisch",
            "personality trait\x04Playful": "Verspielt",
        },
    )
    with translation.override("de"):
        assert catalogue.label("hair_color", "pink") == "Rosa"  # the catalogue is in place
        german_page = cards.build_card(companion)["data"]
    for field in ("description", "personality", "scenario"):
        assert german_page[field] == english[field]
    assert "long wavy pink hair, green eyes" in german_page["description"]
    assert "of East Asian descent" in german_page["description"]
