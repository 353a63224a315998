"""A password change revokes the API tokens (unless the user keeps them, said plainly) and their sockets."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts import tokens
from accounts.models import ApiToken
from chat import events
from tests.chat.conftest import ORIGIN, ChatClient
from tests.companions.factories import make_companion
from tests.conftest import PASSWORD

PASSWORD_CHANGE = reverse("accounts:password_change")
NEW = "a-brand-new-passphrase"


def change(client, *, keep: bool = False, old: str = PASSWORD, follow: bool = False):
    data = {"old_password": old, "new_password1": NEW, "new_password2": NEW}
    if keep:
        data["keep_api_tokens"] = "on"
    return client.post(PASSWORD_CHANGE, data, follow=follow)


def test_it_revokes_every_token_and_says_so(client, user):
    _, first = tokens.token_create(user=user, name="laptop")
    _, second = tokens.token_create(user=user, name="phone")
    client.force_login(user)
    response = change(client, follow=True)
    assert tokens.token_authenticate(first) is None and tokens.token_authenticate(second) is None
    assert b"Other devices are signed out and your 2 API tokens revoked." in response.content


def test_ticking_the_box_keeps_the_tokens_and_says_so(client, user):
    _, secret = tokens.token_create(user=user, name="laptop")
    client.force_login(user)
    response = change(client, keep=True, follow=True)
    assert tokens.token_authenticate(secret) is not None
    assert b"Other devices are signed out; your 1 API token still works." in response.content


def test_the_box_is_offered_unticked_only_to_someone_with_tokens(client, user):
    client.force_login(user)
    assert b'name="keep_api_tokens"' not in client.get(PASSWORD_CHANGE).content
    assert b"Other devices are signed out." in change(client, follow=True).content
    tokens.token_create(user=user, name="laptop")
    page = client.get(PASSWORD_CHANGE).content.decode()
    box = page[page.index('name="keep_api_tokens"') - 200 :][:400]
    assert "Keep my API tokens working" in page and "checked" not in box
    assert "You have 1 API token. Left unticked, it stops working now" in page
    tokens.token_create(user=user, name="phone")
    assert (
        b"You have 2 API tokens. Left unticked, they stop working now" in client.get(PASSWORD_CHANGE).content
    )


def test_a_wrong_old_password_revokes_nothing(client, user):
    _, secret = tokens.token_create(user=user, name="laptop")
    client.force_login(user)
    response = change(client, old="not-my-password")
    assert "old_password" in response.context["form"].errors
    assert tokens.token_authenticate(secret) is not None


def test_only_the_users_own_tokens_are_revoked(client, user, other_user):
    _, secret = tokens.token_create(user=other_user, name="theirs")
    client.force_login(user)
    change(client)
    assert tokens.token_authenticate(secret) is not None
    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 0


async def open_token_socket(companion_id: int, secret: str) -> ChatClient:
    headers = [ORIGIN, (b"host", b"localhost:8000"), (b"authorization", f"Bearer {secret}".encode())]
    client = ChatClient(companion_id, headers)
    client.accepted, client.close_code = await client.connect()
    if client.accepted:
        assert (await client.receive())["type"] == "snapshot"
    return client


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("keep", [False, True])
async def test_a_token_socket_after_a_password_change(user, keep):
    """Refused once the password changed; still let in when the user chose to keep the tokens."""
    companion = await sync_to_async(make_companion)(user)
    await cache.adelete(f"ws-sockets:user:{user.pk}")  # socket counts outlive a test
    _, secret = await sync_to_async(tokens.token_create)(user=user, name="bot")
    program = await open_token_socket(companion.pk, secret)
    assert program.accepted, program.close_code
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    response = await sync_to_async(change)(browser, keep=keep)
    assert response.status_code == 302
    assert await program.receive_close() == events.CLOSE_SESSION_ENDED
    again = await open_token_socket(companion.pk, secret)
    try:
        if keep:
            assert again.accepted
        else:
            assert not again.accepted and again.close_code == events.CLOSE_UNAUTHENTICATED
    finally:
        await again.close()
        await program.close()
