"""The companion replies in a stated language: its own setting, else its owner's, else the site's.
Prompts stay English; the scene analysis keeps English JSON keys whatever the chat's language."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.prompts import build_analysis_messages, build_system_prompt
from companions.forms import CompanionSettingsForm
from tests.companions.factories import make_companion
from tests.companions.test_pages import settings_data


@pytest.mark.parametrize(
    ("reply_language", "owner_language", "expected"),
    [
        ("es", "de", "Always reply in Spanish."),  # the companion's own setting wins
        ("", "de", "Always reply in German."),  # else the owner's language
        ("", "", "Always reply in English."),  # else the site's (LANGUAGE_CODE)
        ("en", "es", "Always reply in English."),
    ],
)
def test_the_system_prompt_states_the_reply_language(user, reply_language, owner_language, expected):
    user.language = owner_language
    user.save()
    companion = make_companion(user, reply_language=reply_language)
    prompt = build_system_prompt(companion, user_name="Alice")
    assert expected in prompt
    assert prompt.count("Always reply in") == 1


def test_the_site_default_decides_when_nobody_chose(user, settings):
    settings.LANGUAGE_CODE = "de"
    assert "Always reply in German." in build_system_prompt(make_companion(user), user_name="Alice")


def test_the_scene_analysis_keeps_english_json_keys(user):
    user.language = "es"
    user.save()
    system = build_analysis_messages(make_companion(user), text="Hola", speaker="Alice")[0]["content"]
    assert "write the JSON keys exactly as shown, in English" in system
    assert '"outfit"' in system and '"wants_image"' in system


def test_the_settings_form_offers_the_owners_language_and_each_site_language(user):
    field = CompanionSettingsForm(instance=make_companion(user)).fields["reply_language"]
    assert [value for value, _ in field.choices] == ["", "en", "de", "es"]


def test_the_settings_page_saves_the_reply_language(client, user):
    companion = make_companion(user)
    client.force_login(user)
    url = reverse("companions:settings", args=[companion.pk])
    response = client.post(url, settings_data(companion, reply_language="de"))
    assert response.status_code == 302
    companion.refresh_from_db()
    assert companion.reply_language == "de"
    response = client.post(url, settings_data(companion, reply_language="fr"))
    assert response.status_code == 200 and "reply_language" in response.context["form"].errors
    companion.refresh_from_db()
    assert companion.reply_language == "de"
