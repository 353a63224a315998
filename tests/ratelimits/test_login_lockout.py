"""The per-account sign-in lockout: one count per account, visible and liftable, not a lock on the owner.

Limits are the small ones of ``tests.conftest.SMALL``: 4 failures per account
per hour (``login_account``), 3 attempts per address + account (``login``),
so each failed attempt here comes from an address of its own.
"""

from __future__ import annotations

import itertools

import pytest
from django.test import Client
from django.urls import reverse

from accounts import signin
from accounts.models import ApiToken, RateLimitRecord
from accounts.services import rate_limit_clear
from tests.conftest import PASSWORD

LOGIN = reverse("accounts:login")
_addresses = (f"198.51.{a}.{b}" for a, b in itertools.product(range(100, 200), range(1, 255)))


def attempt(client: Client, identifier: str, password: str = "wrong-password"):
    return client.post(LOGIN, {"username": identifier, "password": password}, REMOTE_ADDR=next(_addresses))


def fail(identifiers: list[str]) -> None:
    """One failed attempt per identifier, each from a fresh browser and address."""
    for identifier in identifiers:
        assert attempt(Client(), identifier).status_code == 200


@pytest.mark.parametrize("last", ["alice", "ALICE@example.com"])
def test_username_and_email_share_one_count(rate_limits, user, last):
    fail(["alice", "alice@example.com", "Alice", "ALICE@EXAMPLE.COM"])
    response = attempt(Client(), last, PASSWORD)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_a_name_with_no_account_is_limited_the_same_way(rate_limits, user):
    fail(["nobody"] * 4)
    assert attempt(Client(), "nobody").status_code == 429
    # ... and only that name: it is not the same count as an account's.
    assert attempt(Client(), "alice", PASSWORD).status_code == 302


def test_the_lockout_is_recorded_and_lifting_it_lets_the_owner_in(rate_limits, user):
    fail(["alice", "alice@example.com"] * 2)
    assert attempt(Client(), "alice", PASSWORD).status_code == 429
    record = RateLimitRecord.objects.get(scope="login_account")
    assert record.key == f"user:{user.pk}"
    rate_limit_clear(record=record)
    assert attempt(Client(), "alice@example.com", PASSWORD).status_code == 302


def test_the_admin_lists_the_lockout_and_lifts_it(rate_limits, user, staff_user):
    fail(["alice"] * 4)
    assert attempt(Client(), "alice", PASSWORD).status_code == 429
    staff_user.is_superuser = True
    staff_user.save()
    admin = Client()
    admin.force_login(staff_user)
    page = admin.get(reverse("admin:accounts_ratelimitrecord_changelist"), {"scope": "login_account"})
    assert f"user:{user.pk}".encode() in page.content
    record = RateLimitRecord.objects.get(scope="login_account")
    admin.post(
        reverse("admin:accounts_ratelimitrecord_changelist"),
        {"action": "clear", "_selected_action": [record.pk]},
    )
    assert attempt(Client(), "alice", PASSWORD).status_code == 302


def test_a_browser_that_signed_in_before_is_not_locked_out_by_others(rate_limits, user):
    owner = Client()
    assert attempt(owner, "alice", PASSWORD).status_code == 302
    owner.post(reverse("accounts:logout"))
    fail(["alice"] * 4)  # a stranger spends the account's failures
    assert attempt(Client(), "alice", PASSWORD).status_code == 429  # a new browser is held...
    assert attempt(owner, "alice", PASSWORD).status_code == 302  # ...the owner's own is not


def test_a_known_browser_has_a_limited_budget_of_its_own(rate_limits, user):
    thief = Client()
    assert attempt(thief, "alice", PASSWORD).status_code == 302
    thief.post(reverse("accounts:logout"))
    for _ in range(4):
        assert attempt(thief, "alice").status_code == 200
    assert attempt(thief, "alice", PASSWORD).status_code == 429
    assert RateLimitRecord.objects.filter(scope="login_account", key__contains="|device:").exists()
    # Its failures were its own: a new browser still signs in.
    assert attempt(Client(), "alice", PASSWORD).status_code == 302


def test_a_device_cookie_counts_only_for_its_own_account(rate_limits, user, other_user):
    browser = Client()
    assert attempt(browser, "mallory", PASSWORD).status_code == 302  # known to mallory, not alice
    browser.post(reverse("accounts:logout"))
    fail(["alice"] * 4)
    assert attempt(browser, "alice", PASSWORD).status_code == 429


def test_a_forged_device_cookie_is_ignored(rate_limits, user):
    fail(["alice"] * 4)
    forger = Client()
    forger.cookies[signin.DEVICE_COOKIE] = f"{user.pk}:made-up"
    assert attempt(forger, "alice", PASSWORD).status_code == 429


def test_the_device_cookie_is_httponly_and_lax(client, user):
    response = attempt(client, "alice", PASSWORD)
    cookie = response.cookies[signin.DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) > 0
    assert str(user.pk) in cookie.value and PASSWORD not in cookie.value


def test_passwords_asked_again_count_as_failed_sign_ins(rate_limits, user):
    """New token and new password forms are no cheaper an oracle than the sign-in page."""
    session = Client()
    session.force_login(user)  # a session alone: a stolen cookie, say
    new = "a-brand-new-passphrase"
    for _ in range(2):
        session.post(reverse("accounts:token_create"), {"name": "t", "password": "guess"})
        session.post(
            reverse("accounts:password_change"),
            {"old_password": "guess", "new_password1": new, "new_password2": new},
        )
    assert not ApiToken.objects.exists()
    refused = session.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert refused.status_code == 429
    assert attempt(Client(), "alice", PASSWORD).status_code == 429  # the same count as sign-in
