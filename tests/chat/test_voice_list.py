"""The settings' voice list: the speech server's voices, or word that there is no server."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.backends import reset_backends

pytestmark = pytest.mark.django_db


def test_without_a_speech_back_end_the_page_is_told_so(client, user, settings):
    settings.TTS_BASE_URL = ""
    reset_backends()
    client.force_login(user)
    assert client.get(reverse("chat:voices")).json() == {"available": False, "voices": []}


def test_the_speech_server_lists_its_voices(client, user, use_fake_audio):
    client.force_login(user)
    answer = client.get(reverse("chat:voices")).json()
    assert answer == {"available": True, "voices": use_fake_audio.voices}


def test_a_server_that_fails_to_list_leaves_the_suggestions(client, user, use_fake_audio):
    use_fake_audio.fail_next(status=500)
    client.force_login(user)
    assert client.get(reverse("chat:voices")).json()["available"] is True


def test_it_needs_a_sign_in(client):
    assert client.get(reverse("chat:voices")).status_code == 302
