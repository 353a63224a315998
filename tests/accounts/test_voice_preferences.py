"""The profile's voice preferences: "Read replies aloud" and what to do with *actions*."""

import pytest
from django.urls import reverse

from accounts.forms import ProfileForm
from accounts.models import User

PROFILE = reverse("accounts:profile")
HAS_FIELDS = all(any(f.name == n for f in User._meta.get_fields()) for n in ("read_aloud", "voice_actions"))


def test_the_profile_page_offers_both_choices(client, user):
    client.force_login(user)
    html = client.get(PROFILE).content.decode()
    assert 'name="read_aloud"' in html
    assert 'name="voice_actions" value="skip"' in html and 'name="voice_actions" value="read"' in html


def test_an_unknown_choice_for_actions_is_refused(user):
    form = ProfileForm({"email": user.email, "voice_actions": "sing"}, instance=user)
    assert not form.is_valid()
    assert "voice_actions" in form.errors


def test_a_page_without_the_choices_still_saves(client, user):
    client.force_login(user)
    response = client.post(PROFILE, {"display_name": "Ally", "email": "alice@example.com"})
    assert response.status_code == 302


@pytest.mark.skipif(not HAS_FIELDS, reason="the User fields come with the text-to-speech work")
def test_it_saves_the_choices(client, user):
    client.force_login(user)
    client.post(PROFILE, {"display_name": "A", "email": "alice@example.com", "voice_actions": "read"})
    user.refresh_from_db()
    assert user.read_aloud is False  # unticked
    assert user.voice_actions == "read"
    client.post(PROFILE, {"email": "alice@example.com", "read_aloud": "on", "voice_actions": "skip"})
    user.refresh_from_db()
    assert (user.read_aloud, user.voice_actions) == (True, "skip")
