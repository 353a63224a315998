"""A new user is shown how to make a first companion instead of the marketing page."""

import pytest
from django.urls import reverse

from tests.companions.factories import make_companion

START = reverse("companions:start")
HOME = reverse("home")

pytestmark = pytest.mark.django_db


def test_it_offers_the_wizard_and_a_card_import(client, user):
    client.force_login(user)
    response = client.get(START)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Create your first companion" in html
    assert reverse("companions:wizard_start") in html
    assert reverse("companions:card_import") in html


def test_it_needs_a_sign_in(client):
    response = client.get(START)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_it_rejects_post(client, user):
    client.force_login(user)
    assert client.post(START).status_code == 405


def test_the_site_root_takes_a_user_without_companions_there(client, user):
    client.force_login(user)
    response = client.get(HOME)
    assert response.status_code == 302
    assert response["Location"] == START


def test_a_user_with_a_companion_gets_the_site_root_as_before(client, user):
    make_companion(user)
    client.force_login(user)
    response = client.get(HOME)
    assert response.status_code == 200
    assert reverse("companions:list") in response.content.decode()


def test_another_users_companion_does_not_count(client, user, other_user):
    make_companion(other_user)
    client.force_login(user)
    assert client.get(HOME)["Location"] == START


def test_a_visitor_still_gets_the_landing_page(client):
    response = client.get(HOME)
    assert response.status_code == 200
    assert reverse("accounts:register") in response.content.decode()
