"""Body questions that make no sense for the chosen gender (a man's chest / breasts size) are
not asked, not kept and never put in prompts."""

import pytest

from chat.prompts import build_image_prompt, build_system_prompt, describe_appearance
from companions import catalogue
from companions.forms import BodyStep, CompanionSettingsForm
from companions.models import Companion
from companions.summary import companion_summary
from tests.companions.factories import VALID, make_companion
from tests.companions.test_wizard import step_data, step_url


def settings_data(**overrides):
    data = {**VALID, "reply_language": "", "image_seed": 7, **overrides}
    return {k: v for k, v in data.items() if v is not None}


def test_the_rule_is_the_catalogues():
    assert not catalogue.asks("chest", "male")
    assert catalogue.asks("chest", "female")
    assert catalogue.asks("chest", "non_binary")
    assert catalogue.asks("height", "male")


def test_the_body_step_leaves_the_chest_out_for_a_man():
    assert "chest" not in BodyStep(initial={"gender": "male"}).fields
    assert "chest" in BodyStep(initial={"gender": "female"}).fields
    form = BodyStep(data=step_data(3, chest=None), initial={"gender": "male"})
    assert form.is_valid(), form.errors


def test_the_body_step_still_asks_a_woman():
    form = BodyStep(data=step_data(3, chest=None), initial={"gender": "female"})
    assert not form.is_valid()
    assert "chest" in form.errors


def test_a_man_needs_no_chest_answer_and_one_posted_anyway_is_not_kept(user):
    companion = make_companion(user)
    form = CompanionSettingsForm(settings_data(gender="male", chest="large"), instance=companion)
    assert form.is_valid(), form.errors
    assert form.save().chest == ""
    form = CompanionSettingsForm(settings_data(gender="male", chest=None), instance=companion)
    assert form.is_valid(), form.errors


def test_the_settings_form_marks_the_question_for_the_pages_script(user):
    form = CompanionSettingsForm(instance=make_companion(user))
    assert form.fields["chest"].widget.attrs["data-not-for"] == "male"
    assert 'data-not-for="male"' in str(form["chest"])


def test_a_woman_still_has_to_answer(user):
    form = CompanionSettingsForm(settings_data(chest=None), instance=make_companion(user))
    assert not form.is_valid()
    assert "chest" in form.errors


def test_the_wizard_never_asks_a_man_and_creates_him(client, user):
    client.force_login(user)
    assert client.post(step_url(1), step_data(1, gender="male")).status_code == 302
    assert client.post(step_url(2), step_data(2)).status_code == 302
    page = client.get(step_url(3))
    assert b'name="chest"' not in page.content
    assert client.post(step_url(3), step_data(3, chest="large"))["Location"] == step_url(4)
    assert client.post(step_url(4), step_data(4))["Location"] == step_url(5)
    finish = client.get(step_url(5))
    assert finish.status_code == 200  # the draft is complete without a chest answer
    assert "Chest" not in finish.content.decode()
    client.post(step_url(5), {"action": "next"})
    companion = Companion.objects.get(owner=user)
    assert companion.gender == "male"
    assert companion.chest == ""


def test_a_woman_is_asked_in_the_wizard(client, user):
    client.force_login(user)
    client.post(step_url(1), step_data(1))
    client.post(step_url(2), step_data(2))
    assert b'name="chest"' in client.get(step_url(3)).content


@pytest.mark.parametrize("chest", ["large", "flat", ""])
def test_prompts_never_describe_a_mans_chest(user, chest):
    man = make_companion(user, gender="male", chest=chest)  # stored earlier, or posted around the form
    assert "chest" not in describe_appearance(man)
    assert "chest" not in build_system_prompt(man, user_name="Alice")
    assert "chest" not in build_image_prompt(man)[0]


def test_prompts_describe_a_womans_chest(user):
    woman = make_companion(user, gender="female", chest="large")
    assert "large chest" in describe_appearance(woman)
    assert "large chest" in build_image_prompt(woman)[0]


def test_the_summary_shows_no_chest_for_a_man():
    rows = [
        label for _section, shown in companion_summary({**VALID, "gender": "male"}) for label, _v in shown
    ]
    assert "Chest" not in [str(label) for label in rows]
    rows = [label for _section, shown in companion_summary(VALID) for label, _v in shown]
    assert "Chest" in [str(label) for label in rows]
