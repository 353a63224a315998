"""A companion's model page: owner only, CSRF, rate-limited; choosing a connection, model and preset."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from chat.connections import connection_save
from chat.models import CompanionBackend, Connection, SamplerPreset
from tests.companions.factories import make_companion


@pytest.fixture
def server(db):
    return connection_save(
        connection=Connection(name="Big box", kind="llm", provider="openai-compatible",
                              base_url="http://127.0.0.1:9/v1", default_model="m", models_list=["m", "n"]),
        api_key="sk-page-secret",
    )  # fmt: skip


@pytest.fixture
def companion(user):
    return make_companion(user)


def page(companion) -> str:
    return reverse("chat:model", args=[companion.pk])


def test_it_works(client, user, companion, server):
    shared = SamplerPreset.objects.create(name="Shared warm", temperature=1.0)
    client.force_login(user)
    response = client.get(page(companion))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Big box" in body and "Shared warm" in body and '<option value="n">' in body
    assert "sk-page-secret" not in body
    response = client.post(page(companion), {"llm_connection": server.pk, "model": "n", "preset": shared.pk})
    assert response.status_code == 302
    choice = CompanionBackend.objects.get(companion=companion)
    assert (choice.llm_connection, choice.model, choice.preset) == (server, "n", shared)


def test_the_settings_page_links_to_it(client, user, companion):
    client.force_login(user)
    assert page(companion) in client.get(reverse("companions:settings", args=[companion.pk])).content.decode()


def test_a_model_the_server_does_not_offer_is_refused(client, user, companion, server):
    client.force_login(user)
    response = client.post(page(companion), {"llm_connection": server.pk, "model": "nope"})
    assert response.status_code == 200 and "offers no model" in response.content.decode()
    assert not CompanionBackend.objects.exists()


def test_it_checks_owner(client, other_user, companion, server):
    client.force_login(other_user)
    assert client.get(page(companion)).status_code == 404
    assert client.post(page(companion), {"llm_connection": server.pk}).status_code == 404
    assert not CompanionBackend.objects.exists()


def test_anonymous_is_sent_to_log_in(client, companion, server):
    response = client.post(page(companion), {"llm_connection": server.pk})
    assert response.status_code == 302 and "login" in response["Location"]
    assert not CompanionBackend.objects.exists()


def test_it_needs_the_csrf_token(user, companion, server):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(page(companion), {"llm_connection": server.pk}).status_code == 403


def test_other_users_presets_are_neither_shown_nor_accepted(client, user, other_user, companion):
    theirs = SamplerPreset.objects.create(name="Their secret sauce", owner=other_user, temperature=1.9)
    client.force_login(user)
    assert "Their secret sauce" not in client.get(page(companion)).content.decode()
    response = client.post(page(companion), {"preset": theirs.pk})
    assert response.status_code == 200
    assert not CompanionBackend.objects.exists()


def test_a_user_imports_a_preset_of_their_own(client, user, companion):
    client.force_login(user)
    response = client.post(
        page(companion),
        {"import": "1", "name": "Mine", "text": json.dumps({"temperature": 0.6, "top_k": 20})},
    )
    assert response.status_code == 302
    preset = SamplerPreset.objects.get(name="Mine")
    assert preset.owner == user and preset.top_k == 20


def test_a_bad_import_says_why(client, user, companion):
    client.force_login(user)
    response = client.post(page(companion), {"import": "1", "name": "Bad", "text": "{oops"})
    assert response.status_code == 200 and "not valid JSON" in response.content.decode()
    assert not SamplerPreset.objects.exists()


def test_changes_are_rate_limited(client, user, companion, rate_limits):
    client.force_login(user)
    statuses = [client.post(page(companion), {}).status_code for _ in range(3)]
    assert statuses == [302, 302, 429]
