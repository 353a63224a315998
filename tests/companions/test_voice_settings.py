"""The companion settings' Voice card: on/off, voice name and speed, kept in the companion's config."""

import pytest
from django.urls import reverse

from tests.companions.factories import make_companion
from tests.companions.test_pages import settings_data


def _post(client, companion, **voice):
    data = settings_data(companion)
    data.update({f"voice-{name}": value for name, value in voice.items()})
    return client.post(reverse("companions:settings", args=[companion.pk]), data)


@pytest.fixture
def companion(user):
    return make_companion(user, name="Mika")


def test_the_page_shows_the_voice_card_with_suggested_voices(client, user, companion):
    client.force_login(user)
    html = client.get(reverse("companions:settings", args=[companion.pk])).content.decode()
    assert 'name="voice-voice_enabled"' in html and 'name="voice-voice_speed"' in html
    assert 'list="voice-names"' in html
    assert all(f'<option value="{name}">' in html for name in ("alloy", "nova", "shimmer"))


def test_it_saves_the_voice_in_the_config(client, user, companion):
    client.force_login(user)
    response = _post(client, companion, voice_enabled="on", voice="af_sky+af_bella", voice_speed="1.25")
    assert response.status_code == 302
    companion.refresh_from_db()
    assert companion.config["voice_enabled"] is True
    assert companion.config["voice"] == "af_sky+af_bella"
    assert companion.config["voice_speed"] == 1.25
    assert companion.config["temperature"]  # the advanced settings are still there


def test_an_empty_speed_keeps_the_stored_one(client, user, companion):
    client.force_login(user)
    _post(client, companion, voice_enabled="on", voice="nova", voice_speed="1.5")
    _post(client, companion, voice="nova", voice_speed="")
    companion.refresh_from_db()
    assert companion.config["voice_speed"] == 1.5
    assert companion.config["voice_enabled"] is False  # the box was left unticked


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("voice_speed", "0.4"),
        ("voice_speed", "2.5"),
        ("voice_speed", "fast"),
        ("voice", "nova<script>"),
        ("voice", "x" * 65),
    ],
)
def test_it_refuses_a_bad_voice_or_speed(client, user, companion, field, value):
    client.force_login(user)
    response = _post(
        client, companion, **{"voice_enabled": "on", "voice": "nova", "voice_speed": "1", field: value}
    )
    assert response.status_code == 200
    assert field in response.context["voice_form"].errors
    companion.refresh_from_db()
    assert "voice_enabled" not in companion.config


def test_another_users_companion_is_404(client, other_user, companion):
    client.force_login(other_user)
    response = client.post(reverse("companions:settings", args=[companion.pk]), {"voice-voice": "nova"})
    assert response.status_code == 404
