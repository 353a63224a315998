"""Personal API tokens on the profile page: shown once, stored hashed, revocable by their owner only."""

import pytest
from django.urls import reverse

from accounts import tokens
from accounts.models import ApiToken
from accounts.sockets import CLOSE_SESSION_ENDED
from chat import events
from tests.conftest import PASSWORD

CREATE = reverse("accounts:token_create")


def test_it_creates_a_token_and_shows_it_once(client, user):
    client.force_login(user)
    response = client.post(CREATE, {"name": "laptop script", "password": PASSWORD})
    assert response.status_code == 200
    secret = response.context["new_secret"]
    assert secret.startswith(tokens.TOKEN_PREFIX)
    assert secret.encode() in response.content
    assert response["Cache-Control"] == "no-store"
    row = ApiToken.objects.get(user=user)
    assert row.name == "laptop script"
    assert row.digest == tokens.digest(secret) and secret not in row.digest
    # The next visit lists the token by its prefix, never the secret.
    page = client.get(reverse("accounts:profile"))
    assert secret.encode() not in page.content
    assert row.prefix.encode() in page.content


def test_the_secret_authenticates_until_revoked(user):
    token, secret = tokens.token_create(user=user, name="bot")
    assert tokens.token_authenticate(secret) == token
    assert tokens.token_authenticate(secret + "x") is None
    assert tokens.token_authenticate("not-a-token") is None
    assert tokens.token_revoke(user=user, token_id=token.pk)
    assert tokens.token_authenticate(secret) is None


def test_an_inactive_users_token_does_not_authenticate(user):
    _, secret = tokens.token_create(user=user, name="bot")
    user.is_active = False
    user.save()
    assert tokens.token_authenticate(secret) is None


@pytest.mark.parametrize("name", ["", "   ", "x" * 51])
def test_it_requires_a_sensible_name(client, user, name):
    client.force_login(user)
    response = client.post(CREATE, {"name": name, "password": PASSWORD})
    assert "name" in response.context["token_form"].errors
    assert not ApiToken.objects.exists()


def test_it_limits_active_tokens(client, user):
    for n in range(tokens.MAX_ACTIVE_TOKENS):
        tokens.token_create(user=user, name=f"t{n}")
    client.force_login(user)
    response = client.post(CREATE, {"name": "one too many", "password": PASSWORD})
    assert response.context["token_form"].non_field_errors()
    assert ApiToken.objects.filter(user=user).count() == tokens.MAX_ACTIVE_TOKENS


@pytest.mark.parametrize("password", [None, "", "not-my-password", PASSWORD.upper()])
def test_it_asks_for_the_password_again(client, user, password):
    client.force_login(user)
    data = {"name": "laptop script"} if password is None else {"name": "laptop script", "password": password}
    response = client.post(CREATE, data)
    assert response.status_code == 200
    assert "password" in response.context["token_form"].errors
    assert "new_secret" not in response.context
    assert tokens.TOKEN_PREFIX.encode() not in response.content
    assert not ApiToken.objects.exists()


def test_the_profile_page_asks_for_the_password_with_the_token_name(client, user):
    client.force_login(user)
    page = client.get(reverse("accounts:profile")).content.decode()
    form = page[page.index('action="' + CREATE) :]
    form = form[: form.index("</form>")]
    assert 'name="password"' in form and 'autocomplete="current-password"' in form


def test_it_revokes_the_owners_token(client, user):
    token, _ = tokens.token_create(user=user, name="bot")
    client.force_login(user)
    response = client.post(reverse("accounts:token_revoke", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_it_checks_owner(client, user, other_user):
    token, _ = tokens.token_create(user=user, name="bot")
    client.force_login(other_user)
    assert client.post(reverse("accounts:token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_rejects_get(client, user):
    client.force_login(user)
    assert client.get(CREATE).status_code == 405


def test_it_requires_login(client, db):
    response = client.post(CREATE, {"name": "x"})
    assert response.status_code == 302
    assert not ApiToken.objects.exists()


def test_the_close_code_is_the_one_the_chat_protocol_documents():
    assert CLOSE_SESSION_ENDED == events.CLOSE_SESSION_ENDED == 4403
