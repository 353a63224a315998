"""The voice settings: the companion's config keys, the user's switches, and what they decide."""

import pytest

from chat.voice import voice_settings_for
from companions.config import config_problems, effective_config
from companions.models import Companion


def test_the_defaults_are_silent():
    config = effective_config({})
    assert config["voice_enabled"] is False and config["voice"] == "" and config["voice_speed"] == 1.0


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({"voice_enabled": "yes"}, {"voice_enabled": False}),
        ({"voice_enabled": True}, {"voice_enabled": True}),
        ({"voice_speed": 9}, {"voice_speed": 2.0}),
        ({"voice_speed": 0.1}, {"voice_speed": 0.5}),
        ({"voice_speed": "fast"}, {"voice_speed": 1.0}),
        ({"voice": "x" * 101}, {"voice": ""}),
        ({"voice": "bad\nname"}, {"voice": ""}),
        ({"voice": 5}, {"voice": ""}),
        ({"voice": " af_bella "}, {"voice": "af_bella"}),
    ],
)
def test_bad_values_fall_back_or_are_clamped(stored, expected):
    config = effective_config(stored)
    assert {k: config[k] for k in expected} == expected


@pytest.mark.parametrize(
    "stored", [{"voice_enabled": 1}, {"voice_speed": 3}, {"voice": "x" * 101}, {"voice": ["a"]}]
)
def test_the_admin_is_told_what_is_wrong(stored):
    assert config_problems(stored)


@pytest.mark.django_db
def test_voice_speaks_only_when_the_companion_and_the_user_both_want_it(companion, user):
    assert not voice_settings_for(companion, user).speaks
    Companion.objects.filter(pk=companion.pk).update(
        config={**companion.config, "voice_enabled": True, "voice": "nova", "voice_speed": 1.5}
    )
    voice = voice_settings_for(companion, user)
    assert voice.speaks and voice.voice == "nova" and voice.speed == 1.5 and voice.actions == "skip"
    user.read_aloud = False
    user.voice_actions = "read"
    assert not voice_settings_for(companion.pk, user).speaks
    assert voice_settings_for(companion.pk, user).actions == "read"
