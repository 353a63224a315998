from django.utils import translation

from companions import catalogue
from companions.models import Companion
from tests.companions.factories import make_companion


def test_the_catalogue_has_at_least_fifty_options():
    assert catalogue.option_count() >= 50


def test_values_are_unique_within_each_field():
    for field, options in {
        **catalogue.SINGLE_CHOICE,
        **{k: v[0] for k, v in catalogue.MULTI_CHOICE.items()},
    }.items():
        values = [o.value for o in options]
        assert len(values) == len(set(values)), field


def test_model_choices_come_from_the_catalogue():
    for field in catalogue.SINGLE_CHOICE:
        model_choices = Companion._meta.get_field(field).choices
        assert model_choices == catalogue.choices(field), field


def test_prompt_phrases_are_looked_up_by_value():
    assert catalogue.prompt_phrase("hair_color", "pink") == "pink hair"
    assert catalogue.prompt_phrase("hair_color", "no-such") == ""
    assert catalogue.label("style", "anime") == "Anime"


def test_labels_follow_the_active_language_and_values_and_prompts_do_not(translated):
    translated("de", {"hair colour\x04Pink": "Rosa"})
    with translation.override("de"):
        assert catalogue.label("hair_color", "pink") == "Rosa"
        assert ("pink", "Rosa") in [(value, str(label)) for value, label in catalogue.choices("hair_color")]
        assert catalogue.english_label("hair_color", "pink") == "Pink"
        assert catalogue.prompt_phrase("hair_color", "pink") == "pink hair"
        assert catalogue.option("hair_color", "pink").value == "pink"
    assert catalogue.label("hair_color", "pink") == "Pink"


def test_the_same_english_word_is_translated_per_field(translated):
    # Spanish hair is "pelo negro", a person "negro/a": one msgid each, told apart by context.
    translated("es", {"hair colour\x04Black": "Negro", "ethnicity\x04Black": "Negro/a"})
    with translation.override("es"):
        assert catalogue.label("hair_color", "black") == "Negro"
        assert catalogue.label("ethnicity", "black") == "Negro/a"


def test_model_choices_are_translated_when_shown_not_when_imported(translated, user):
    companion = make_companion(user, hair_color="pink")
    translated("de", {"hair colour\x04Pink": "Rosa"})
    with translation.override("de"):
        assert companion.get_hair_color_display() == "Rosa"
    assert companion.get_hair_color_display() == "Pink"
