"""Each limit: the N+1-th request gets 429 + Retry-After; other keys are untouched; the window ends."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import ApiToken, RateLimitRecord, User
from accounts.services import rate_limit_clear, rate_limits_delete_expired
from chat.models import Conversation, Message, PipelineRun
from companions.models import Companion
from tests.chat.factories import add_exchange, make_chat
from tests.companions.factories import make_companion

LOGIN = reverse("accounts:login")
PASSWORD = "correct-horse-battery-staple"


def login(client, ip, username="alice", password="wrong-password", **headers):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, **headers)


def assert_limited(response):
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many" in response.content


def test_login_is_limited_per_address_and_account(client, rate_limits, user, ip):
    for _ in range(3):
        assert login(client, ip).status_code == 200  # the form again, with its error
    assert_limited(login(client, ip))
    # Another account from the same address, or the same account from another address, still works.
    assert login(client, ip, username="someone-else").status_code == 200
    assert login(client, "192.0.2.77", password=PASSWORD).status_code == 302


def test_the_window_ends(client, rate_limits, user, ip, rate_limit_clock):
    for _ in range(3):
        login(client, ip)
    assert_limited(login(client, ip))
    rate_limit_clock.advance(16 * 60)
    assert login(client, ip, password=PASSWORD).status_code == 302


def test_a_spoofed_forwarded_for_does_not_change_the_key(client, rate_limits, user, ip):
    for n in range(3):
        login(client, ip, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert_limited(login(client, ip, HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_with_a_trusted_proxy_the_forwarded_address_is_the_key(client, rate_limits, settings, user):
    settings.TRUSTED_PROXY_HOPS = 1
    proxy = "10.0.0.1"
    for _ in range(3):
        login(client, proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert_limited(login(client, proxy, HTTP_X_FORWARDED_FOR="198.51.100.7"))
    # Another client behind the same proxy is not affected; a forged left-hand entry is ignored.
    assert login(client, proxy, HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.8").status_code == 200


def test_failed_logins_lock_the_account_from_any_address(client, rate_limits, user):
    for n in range(4):
        login(client, f"198.18.0.{n}")
    assert_limited(login(client, "198.18.1.1", password=PASSWORD))
    assert "_auth_user_id" not in client.session


def test_the_lockout_does_not_reveal_whether_an_account_exists(client, rate_limits):
    for n in range(4):
        login(client, f"198.18.2.{n}", username="nobody")
    assert_limited(login(client, "198.18.3.1", username="nobody"))


def test_registration_is_limited_per_address(client, rate_limits, ip):
    def register(n):
        data = {
            "username": f"newbie{n}",
            "email": f"newbie{n}@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        }
        return client.post(reverse("accounts:register"), data, REMOTE_ADDR=ip)

    assert register(1).status_code == 302
    client.logout()
    assert register(2).status_code == 302
    client.logout()
    assert_limited(register(3))
    assert not User.objects.filter(username="newbie3").exists()


def test_chat_messages_are_limited_and_a_refused_one_is_not_saved(
    client, rate_limits, user, django_capture_on_commit_callbacks
):
    chat = make_chat(make_companion(user))
    client.force_login(user)
    url = reverse("chat:send", args=[chat.pk])
    for n in range(2):
        with django_capture_on_commit_callbacks():
            client.post(url, {"content": f"message {n}"})
        PipelineRun.objects.update(status="completed")  # no worker here: let the next one start
    assert_limited(client.post(url, {"content": "one too many"}))
    assert not Message.objects.filter(content="one too many").exists()


def test_new_chats_and_branches_are_settings_changes(client, rate_limits, user):
    """Starting a chat and branching one make rows like a settings change: the same limit."""
    companion = make_companion(user)
    chat = make_chat(companion)
    _, reply = add_exchange(chat, companion, "hi", "hello")
    client.force_login(user)
    assert client.post(reverse("chat:new", args=[companion.pk])).status_code == 302
    assert client.post(reverse("chat:branch", args=[chat.pk, reply.pk])).status_code == 302
    assert_limited(client.post(reverse("chat:new", args=[companion.pk])))
    assert_limited(client.post(reverse("chat:branch", args=[chat.pk, reply.pk])))
    assert Conversation.objects.filter(owner=user).count() == 3


def test_companion_creation_is_limited(client, rate_limits, user):
    from tests.companions.test_wizard import step_url, walk_to_finish

    client.force_login(user)
    walk_to_finish(client)
    assert client.post(step_url(5), {"action": "next"}).status_code == 302
    walk_to_finish(client)
    assert_limited(client.post(step_url(5), {"action": "next"}))
    assert Companion.objects.filter(owner=user).count() == 1


def test_settings_changes_are_limited(client, rate_limits, user):
    client.force_login(user)
    for _ in range(2):
        client.post(reverse("accounts:profile"), {"display_name": "A", "email": user.email})
    assert_limited(client.post(reverse("accounts:profile"), {"display_name": "B", "email": user.email}))
    user.refresh_from_db()
    assert user.display_name == "A"


def test_an_email_change_costs_what_a_registration_costs(client, rate_limits, user, other_user, ip):
    """Both answers say whether an address has an account: both spend the address's registrations."""
    rate_limits["settings_change"] = "100/1h"

    def save(email, name="A"):
        return client.post(
            reverse("accounts:profile"), {"display_name": name, "email": email}, REMOTE_ADDR=ip
        )

    client.force_login(user)
    assert save("Alice@example.com").status_code == 302  # its own address: not a question, not counted
    assert "email" in save("mallory@example.com").context["form"].errors  # taken: said, and counted
    assert save("new@example.com").status_code == 302
    assert_limited(save("newer@example.com"))
    user.refresh_from_db()
    assert user.email == "new@example.com"
    assert save("NEW@example.com", name="B").status_code == 302  # display name and own address still save
    registration = {"username": "newbie", "email": "newbie@example.com", "password1": PASSWORD}
    client.logout()
    assert_limited(client.post(reverse("accounts:register"), registration, REMOTE_ADDR=ip))


def test_token_creation_is_limited(client, rate_limits, user):
    client.force_login(user)
    for n in range(2):
        client.post(reverse("accounts:token_create"), {"name": f"t{n}", "password": PASSWORD})
    assert_limited(client.post(reverse("accounts:token_create"), {"name": "t3", "password": PASSWORD}))
    assert ApiToken.objects.filter(user=user).count() == 2


def test_json_clients_get_json(client, rate_limits, user, ip):
    for _ in range(3):
        login(client, ip)
    response = login(client, ip, HTTP_ACCEPT="application/json")
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "rate_limited" and body["retry_after"] == int(response["Retry-After"])


def test_hits_are_recorded_and_clearing_really_unblocks(client, rate_limits, user, ip):
    for _ in range(3):
        login(client, ip)
    assert_limited(login(client, ip))
    record = RateLimitRecord.objects.get(scope="login")
    assert ip in record.key and record.hits == 4
    rate_limit_clear(record=record)
    assert login(client, ip, password=PASSWORD).status_code == 302


def test_expired_records_are_deleted(rate_limits, user):
    from datetime import timedelta

    from django.utils import timezone

    old = RateLimitRecord.objects.create(
        scope="login", key="x", hits=9, reset_at=timezone.now() - timedelta(1)
    )
    current = RateLimitRecord.objects.create(
        scope="login", key="y", hits=9, reset_at=timezone.now() + timedelta(1)
    )
    assert rate_limits_delete_expired() == 1
    assert list(RateLimitRecord.objects.all()) == [current]
    assert not RateLimitRecord.objects.filter(pk=old.pk).exists()


def test_staff_can_clear_a_limit_in_the_admin(client, rate_limits, staff_user, user, ip):
    for _ in range(4):
        login(client, ip)
    record = RateLimitRecord.objects.get(scope="login")
    staff_user.is_superuser = True
    staff_user.save()
    admin = client.__class__()
    admin.force_login(staff_user)
    response = admin.post(
        reverse("admin:accounts_ratelimitrecord_changelist"),
        {"action": "clear", "_selected_action": [record.pk]},
    )
    assert response.status_code == 302
    assert not RateLimitRecord.objects.exists()
    assert login(client, ip, password=PASSWORD).status_code == 302


def test_a_dead_cache_refuses_logins_but_not_the_rest(client, rate_limits, user, ip, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("companionhub.ratelimits.get_usage", broken)
    assert_limited(login(client, ip, password=PASSWORD))
    client.force_login(user)
    # Asking for the password again is a sign-in of sorts: it refuses too.
    assert_limited(client.post(reverse("accounts:token_create"), {"name": "t", "password": PASSWORD}))
    response = client.post(reverse("accounts:profile"), {"display_name": "Still works", "email": user.email})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.display_name == "Still works"


@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "expected"),
    [
        ("10.0.0.1", None, 0, "10.0.0.1"),
        ("10.0.0.1", "6.6.6.6", 0, "10.0.0.1"),
        ("10.0.0.1", "6.6.6.6, 198.51.100.1", 1, "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.2", 2, "198.51.100.1"),
        ("10.0.0.1", "198.51.100.1", 2, "10.0.0.1"),  # fewer entries than trusted hops: do not guess
        (None, None, 0, "unknown"),
    ],
)
def test_client_ip(settings, remote, forwarded, hops, expected):
    from companionhub.ratelimits import client_ip

    settings.TRUSTED_PROXY_HOPS = hops
    assert client_ip(remote_addr=remote, forwarded_for=forwarded) == expected


def test_the_admin_sign_in_counts_against_the_same_limits(client, rate_limits, make_user, ip):
    make_user(username="root", is_staff=True, is_superuser=True)
    admin_login = reverse("admin:login")

    def attempt(password="wrong-password"):
        return client.post(admin_login, {"username": "root", "password": password}, REMOTE_ADDR=ip)

    for _ in range(3):
        assert attempt().status_code == 200  # the form again, with its error
    assert_limited(attempt())
    assert_limited(attempt(password=PASSWORD))  # the right password waits for the window too


def test_the_admin_sign_in_still_admits_staff_only(client, rate_limits, make_user, user, ip):
    make_user(username="root", is_staff=True, is_superuser=True)
    admin_login = reverse("admin:login")
    refused = client.post(admin_login, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR=ip)
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    signed_in = client.post(admin_login, {"username": "root", "password": PASSWORD}, REMOTE_ADDR=ip)
    assert signed_in.status_code == 302
