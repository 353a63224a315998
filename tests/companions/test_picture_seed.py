"""A companion's fixed picture seed and its "use header picture as reference" choice."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse

from companions.models import MAX_IMAGE_SEED, Companion
from tests.companions.factories import make_companion
from tests.companions.test_pages import settings_data


def test_each_new_companion_gets_its_own_seed(user):
    seeds = {make_companion(user, name=f"C{i}").image_seed for i in range(5)}
    assert len(seeds) == 5
    assert all(0 <= seed <= MAX_IMAGE_SEED for seed in seeds)


def test_the_reference_choice_is_off_by_default(companion):
    assert companion.use_header_as_reference is False


def test_the_migration_gives_existing_companions_different_seeds(user):
    for i in range(4):
        make_companion(user, name=f"C{i}")
    Companion.objects.update(image_seed=7)  # what AddField's one-time default leaves behind
    migration = importlib.import_module("companions.migrations.0004_companion_image_seed_and_reference")
    # The migration works on the database of its schema editor's connection.
    migration.give_each_companion_its_own_seed(apps, SimpleNamespace(connection=connection))
    assert len(set(Companion.objects.values_list("image_seed", flat=True))) == 4


def test_the_settings_page_shows_the_seed_the_choice_and_the_reroll_button(client, user, companion):
    client.force_login(user)
    page = client.get(reverse("companions:settings", args=[companion.pk]))
    html = page.content.decode()
    assert f'value="{companion.image_seed}"' in html
    assert 'name="use_header_as_reference"' in html
    assert reverse("companions:reroll_seed", args=[companion.pk]) in html
    assert 'data-testid="reroll-seed"' in html


def test_settings_change_the_seed_and_the_reference_choice(client, user, companion):
    client.force_login(user)
    response = client.post(
        reverse("companions:settings", args=[companion.pk]),
        settings_data(companion, image_seed="123456", use_header_as_reference="on"),
    )
    assert response.status_code == 302
    companion.refresh_from_db()
    assert (companion.image_seed, companion.use_header_as_reference) == (123456, True)


def test_a_blank_seed_keeps_the_current_one(client, user, companion):
    client.force_login(user)
    before = companion.image_seed
    client.post(reverse("companions:settings", args=[companion.pk]), settings_data(companion, image_seed=""))
    companion.refresh_from_db()
    assert companion.image_seed == before


@pytest.mark.parametrize("seed", ["-1", str(MAX_IMAGE_SEED + 1), "abc"])
def test_a_bad_seed_is_refused(client, user, companion, seed):
    client.force_login(user)
    before = companion.image_seed
    response = client.post(
        reverse("companions:settings", args=[companion.pk]), settings_data(companion, image_seed=seed)
    )
    assert response.status_code == 200
    assert "image_seed" in response.context["form"].errors
    companion.refresh_from_db()
    assert companion.image_seed == before


def test_reroll_gives_a_new_seed(client, user, companion):
    client.force_login(user)
    before = companion.image_seed
    response = client.post(reverse("companions:reroll_seed", args=[companion.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("companions:settings", args=[companion.pk])
    companion.refresh_from_db()
    assert companion.image_seed != before


def test_reroll_of_another_users_companion_is_404(client, other_user, companion):
    client.force_login(other_user)
    before = companion.image_seed
    assert client.post(reverse("companions:reroll_seed", args=[companion.pk])).status_code == 404
    companion.refresh_from_db()
    assert companion.image_seed == before


def test_reroll_needs_a_signed_in_post(client, user, companion):
    url = reverse("companions:reroll_seed", args=[companion.pk])
    before = companion.image_seed
    assert client.post(url).status_code == 302  # to the login page
    client.force_login(user)
    assert client.get(url).status_code == 405
    companion.refresh_from_db()
    assert companion.image_seed == before


def test_reroll_needs_the_csrf_token(user, companion):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    before = companion.image_seed
    assert strict.post(reverse("companions:reroll_seed", args=[companion.pk])).status_code == 403
    companion.refresh_from_db()
    assert companion.image_seed == before


def test_reroll_is_rate_limited(client, user, companion, rate_limits):
    client.force_login(user)
    url = reverse("companions:reroll_seed", args=[companion.pk])
    statuses = [client.post(url).status_code for _ in range(3)]
    assert statuses == [302, 302, 429]
