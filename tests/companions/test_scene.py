"""The scene as one sentence: in the panel (the owner's language) and the prompt (English)."""

import pytest
from django.utils import translation

from companions.scene import prompt_scene_line, scene_sentence


@pytest.mark.parametrize(
    ("outfit", "location", "action", "sentence"),
    [
        ("sportswear", "the park", "working out", "Mika is at the park, wearing sportswear, working out."),
        ("sportswear", "in the park", "working", "Mika is in the park, wearing sportswear, working."),
        (
            "wearing a casual sweater and jeans",
            "at home in the living room",
            "relaxing on the sofa.",
            "Mika is at home in the living room, wearing a casual sweater and jeans, relaxing on the sofa.",
        ),
        ("", "  in   the kitchen ", "", "Mika is in the kitchen."),
        ("a red dress", "", "", "Mika is wearing a red dress."),
        ("", "", "", ""),
    ],
)
def test_the_scene_reads_as_a_sentence(outfit, location, action, sentence):
    with translation.override("en"):
        assert scene_sentence(name="Mika", outfit=outfit, location=location, action=action) == sentence


@pytest.mark.parametrize(
    ("language", "sentence"),
    [
        ("de", "Mika ist zu Hause im Wohnzimmer, trägt einen Pullover, entspannt auf dem Sofa."),
        ("es", "Mika está en casa, en el salón, lleva un jersey, descansando en el sofá."),
    ],
)
def test_the_sentence_is_translated(language, sentence):
    values = {
        "de": ("trägt einen Pullover", "zu Hause im Wohnzimmer", "entspannt auf dem Sofa"),
        "es": ("lleva un jersey", "en casa, en el salón", "descansando en el sofá"),
    }[language]
    with translation.override(language):
        assert scene_sentence(name="Mika", outfit=values[0], location=values[1], action=values[2]) == sentence


def test_bare_values_get_the_languages_words():
    with translation.override("de"):
        text = scene_sentence(name="Mika", outfit="Sportkleidung", location="Berlin", action="")
    assert text == "Mika ist in Berlin, trägt Sportkleidung."


def test_the_prompt_line_is_english_and_knows_the_values_language():
    assert prompt_scene_line(outfit="sportswear", location="the park", action="jogging", language="en") == (
        "You are at the park, wearing sportswear, jogging."
    )
    assert prompt_scene_line(outfit="trägt Jeans", location="zu Hause", action="liest", language="de") == (
        "You are zu Hause, trägt Jeans, liest."
    )
    assert prompt_scene_line(outfit="", location="", action="", language="en") == ""
