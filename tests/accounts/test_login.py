import re

import pytest
from django.contrib.auth.hashers import make_password
from django.test import override_settings
from django.urls import reverse

from tests.conftest import PASSWORD

LOGIN = reverse("accounts:login")
LOGOUT = reverse("accounts:logout")


def login(client, identifier, password=PASSWORD):
    return client.post(LOGIN, {"username": identifier, "password": password})


@pytest.mark.parametrize("identifier", ["alice", "ALICE", "aLiCe", "alice@example.com", "ALICE@EXAMPLE.COM"])
def test_it_logs_in_by_username_or_email_in_any_case(client, user, identifier):
    response = login(client, identifier)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_wrong_password_and_an_unknown_user_look_the_same(client, user):
    wrong_password = login(client, "alice", "not-the-password")
    unknown_user = login(client, "nobody", "not-the-password")
    assert wrong_password.status_code == unknown_user.status_code == 200
    assert wrong_password.context["form"].errors == unknown_user.context["form"].errors
    assert "_auth_user_id" not in client.session


def test_it_refuses_an_inactive_user(client, user):
    user.is_active = False
    user.save()
    login(client, "alice")
    assert "_auth_user_id" not in client.session


def test_login_rotates_the_session_id(client, user):
    client.get(LOGIN)
    session = client.session
    session["probe"] = 1
    session.save()
    before = session.session_key
    login(client, "alice")
    assert client.session.session_key != before


def test_logout_signs_out(client, user):
    client.force_login(user)
    response = client.post(LOGOUT)
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_logout_rejects_get(client, user):
    client.force_login(user)
    assert client.get(LOGOUT).status_code == 405
    assert client.session["_auth_user_id"] == str(user.pk)


def test_sessions_last_thirty_days(client, user):
    login(client, "alice")
    assert client.session.get_expiry_age() == 30 * 24 * 3600


@override_settings(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
)
def test_an_old_pbkdf2_hash_is_upgraded_to_argon2_at_login(client, user):
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save()
    login(client, "alice")
    user.refresh_from_db()
    assert user.password.startswith("argon2")


def test_argon2_is_the_first_hasher(settings):
    assert settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_the_session_cookie_is_httponly_and_lax(client, user):
    response = login(client, "alice")
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"


@pytest.mark.parametrize("host", ["testserver", "127.0.0.1"])
def test_the_sign_in_page_says_companionhub_never_the_host(client, host):
    html = client.get(LOGIN, HTTP_HOST=host).content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.DOTALL).group(1)
    brand = re.search(r'<a class="brand"[^>]*>(.*?)</a>', html, re.DOTALL).group(1)
    footer = re.search(r'<footer class="site-footer[^>]*>(.*?)</footer>', html, re.DOTALL).group(1)
    for part in (title, brand, footer):
        assert "CompanionHub" in part
        assert host not in part
    assert host not in html


def test_the_password_page_says_companionhub(client, user):
    client.force_login(user)
    html = client.get(reverse("accounts:password_change")).content.decode()
    assert "<title>" in html and "testserver" not in html and "CompanionHub" in html
