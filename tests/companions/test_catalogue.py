from companions import catalogue
from companions.models import Companion


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
