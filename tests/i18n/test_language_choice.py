"""Which language a page is in: a signed-in user's saved choice, else the language cookie
(the switcher), else the browser's Accept-Language; English for anyone else."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.language import user_language
from accounts.models import User
from companionhub import pagecache
from tests.companions.factories import make_companion

HOME = reverse("home")
PROFILE = reverse("accounts:profile")
SET_LANGUAGE = reverse("set_language")
COOKIE = settings.LANGUAGE_COOKIE_NAME


def page_language(response) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.content.decode())
    assert match, "no <html lang>"
    return match.group(1)


def csrf_token_of(response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert match, "no CSRF token on the page"
    return match.group(1)


def profile_data(user: User, **changes: str) -> dict[str, str]:
    return {
        "display_name": user.display_name,
        "email": user.email,
        "appearance": user.appearance,
        "language": user.language,
        **changes,
    }


# --- visitors ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "expected"),
    [("de-DE,de;q=0.9,en;q=0.5", "de"), ("es-MX,es;q=0.8", "es"), ("fr-FR,fr;q=0.9", "en"), ("", "en")],
)
def test_a_visitor_gets_the_browsers_language(client, header, expected):
    response = client.get(HOME, headers={"accept-language": header} if header else {})
    assert page_language(response) == expected
    assert response["Content-Language"] == expected
    assert "Accept-Language" in response.get("Vary", "")


@pytest.mark.django_db
def test_the_language_cookie_beats_the_browser(client):
    client.cookies[COOKIE] = "es"
    assert page_language(client.get(HOME, headers={"accept-language": "de"})) == "es"


@pytest.mark.django_db
def test_the_cached_landing_page_is_kept_per_language(client, settings):
    settings.CACHE_PAGES = True
    pagecache.reset_stats()
    for language in ("de", "en", "de", "en"):
        assert page_language(client.get(HOME, headers={"accept-language": language})) == language
    assert pagecache.stats()["pages"]["landing"] == {"hits": 2, "misses": 2, "ratio": 0.5}


# --- the switcher ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_switcher_sets_the_cookie_for_a_visitor_and_needs_the_csrf_token(settings):
    settings.CACHE_PAGES = True
    browser = Client(enforce_csrf_checks=True)
    browser.get(HOME)  # the landing page is cached now; the next visitor gets it from the cache
    other = Client(enforce_csrf_checks=True)
    page = other.get(HOME)
    assert other.post(SET_LANGUAGE, {"language": "de", "next": "/"}).status_code == 403
    token = csrf_token_of(page)
    response = other.post(SET_LANGUAGE, {"language": "de", "next": "/", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/"
    assert response.cookies[COOKIE].value == "de"
    assert page_language(other.get(HOME)) == "de"


def test_the_switcher_saves_a_signed_in_users_choice(client, user):
    client.force_login(user)
    response = client.post(SET_LANGUAGE, {"language": "es", "next": PROFILE})
    assert response.status_code == 302 and response.cookies[COOKIE].value == "es"
    user.refresh_from_db()
    assert user.language == "es"


def test_the_switcher_ignores_a_language_the_site_does_not_offer(client, user):
    user.language = "de"
    user.save()
    make_companion(user)  # (without one, the root leads to making the first)
    client.force_login(user)
    client.post(SET_LANGUAGE, {"language": "fr", "next": "/"})
    user.refresh_from_db()
    assert user.language == "de"
    assert page_language(client.get(HOME)) == "de"


def test_the_switcher_only_takes_posts(client, user):
    client.force_login(user)
    assert client.get(SET_LANGUAGE, {"language": "es"}).status_code == 405
    user.refresh_from_db()
    assert user.language == ""


def test_every_page_has_the_switcher_and_the_script_catalogue(client, user):
    for response in (client.get(HOME), client.get(reverse("accounts:login"))):
        html = response.content.decode()
        assert f'action="{SET_LANGUAGE}"' in html and 'name="language"' in html
        assert '<label for="language-header"' in html  # labelled for screen readers
        assert f'<script src="{reverse("javascript-catalog")}"></script>' in html


def test_the_script_catalogue_is_served_in_the_pages_language(client):
    response = client.get(reverse("javascript-catalog"), headers={"accept-language": "de"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert b"django.gettext" in response.content or b"gettext" in response.content
    assert response["Content-Language"] == "de"


# --- the profile -------------------------------------------------------------------


def test_the_saved_language_beats_cookie_and_browser(client, user):
    user.language = "es"
    user.save()
    client.force_login(user)
    client.cookies[COOKIE] = "de"
    assert page_language(client.get(PROFILE, headers={"accept-language": "de"})) == "es"


def test_the_profile_saves_the_language_and_remembers_it_in_the_browser(client, user):
    client.force_login(user)
    response = client.post(PROFILE, profile_data(user, language="de"))
    assert response.status_code == 302
    assert response.cookies[COOKIE].value == "de"
    user.refresh_from_db()
    assert user.language == "de"
    page = client.get(PROFILE)
    assert page_language(page) == "de"
    assert '<option value="de" selected>' in page.content.decode()


def test_the_profile_can_go_back_to_following_the_browser(client, user):
    user.language = "de"
    user.save()
    client.force_login(user)
    client.post(PROFILE, profile_data(user, language=""))
    user.refresh_from_db()
    assert user.language == ""
    assert page_language(client.get(PROFILE, headers={"accept-language": "es"})) == "es"


def test_the_profile_refuses_an_unknown_language_and_changes_nothing(client, user):
    client.force_login(user)
    response = client.post(PROFILE, profile_data(user, language="xx", display_name="Changed"))
    assert response.status_code == 200
    assert "language" in response.context["form"].errors
    user.refresh_from_db()
    assert (user.language, user.display_name) == ("", "Alice")


# --- for code without a request (websocket consumers, tasks) -----------------------


def test_user_language_is_the_saved_one_else_the_fallback_else_the_sites(user):
    assert user_language(user) == "en"
    assert user_language(user, fallback="es") == "es"
    assert user_language(user, fallback="fr") == "en"
    assert user_language(None) == "en"
    user.language = "de"
    assert user_language(user, fallback="es") == "de"


@pytest.mark.django_db
def test_a_requests_language_ends_with_it(client):
    client.get(HOME, headers={"accept-language": "de"})
    assert translation.get_language() == settings.LANGUAGE_CODE
