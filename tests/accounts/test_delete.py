"""Deleting an account: every row and file of the user goes, sessions, tokens and sockets end,
other users keep everything; from the profile page (password again) and from the admin."""

from __future__ import annotations

from collections import deque

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.test import Client
from django.urls import reverse

from accounts import services, tokens
from accounts.models import User
from tests.accounts.roles import grant, moderators_group
from tests.conftest import PASSWORD
from tests.portability.factories import make_account


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


def paths_to_user(model: type[models.Model], depth: int = 4) -> list[str]:
    """Every lookup from ``model`` to a user along foreign keys (``companion__owner``, ``user``...)."""
    found: list[str] = []
    queue: deque[tuple[type[models.Model], str, int]] = deque([(model, "", 0)])
    while queue:
        current, prefix, level = queue.popleft()
        for field in current._meta.get_fields():
            if (
                not (field.many_to_one or field.one_to_one)
                or not field.concrete
                or field.related_model is None
            ):
                continue
            path = f"{prefix}{field.name}"
            if field.related_model is User:
                found.append(path)
            elif level + 1 < depth:
                queue.append((field.related_model, f"{path}__", level + 1))
    return found


def rows_of(user_id: int) -> dict[str, set[str]]:
    """The primary keys of every row in the project that leads to ``user_id`` by a foreign key."""
    rows: dict[str, set[str]] = {}
    for model in apps.get_models(include_auto_created=True):
        query = models.Q()
        for path in paths_to_user(model):
            query |= models.Q(**{path: user_id})
        if not query:
            continue
        pks = set(map(str, model._default_manager.filter(query).values_list("pk", flat=True)))
        if model is User:
            pks |= set(map(str, User.objects.filter(pk=user_id).values_list("pk", flat=True)))
        if pks:
            rows[model._meta.label] = pks
    if User.objects.filter(pk=user_id).exists():
        rows.setdefault("accounts.User", set()).add(str(user_id))
    return rows


def sessions_of(user_id: int) -> int:
    return sum(1 for s in Session.objects.all() if str(s.get_decoded().get("_auth_user_id")) == str(user_id))


@pytest.fixture
def two_accounts(user, other_user):
    return make_account(user), make_account(other_user, name="Aya", shade=90)


def test_the_walk_finds_every_kind_of_row_an_account_owns(two_accounts):
    mine, _ = two_accounts
    found = set(rows_of(mine.user.pk))
    assert found >= {
        "accounts.User",
        "accounts.ApiToken",
        "accounts.UserUsage",
        "accounts.UsageTransaction",
        "companions.Companion",
        "companions.CompanionDraft",
        "chat.Conversation",
        "chat.Participant",
        "chat.Message",
        "chat.Turn",
        "chat.PipelineRun",
        "chat.SamplerPreset",
        "media.StoredImage",
        "memories.Memory",
        "portability.AccountExport",
    }


def test_deleting_an_account_leaves_no_row_or_file_of_it_and_touches_no_one_else(
    two_accounts, django_capture_on_commit_callbacks
):
    mine, theirs = two_accounts
    user_id = mine.user.pk
    Client().force_login(mine.user)
    Client().force_login(theirs.user)
    others_before = rows_of(theirs.user.pk)
    assert all(default_storage.exists(name) for name in mine.files + theirs.files)

    with django_capture_on_commit_callbacks(execute=True):
        services.user_delete(user=mine.user)

    assert rows_of(user_id) == {}
    assert not [name for name in mine.files if default_storage.exists(name)]
    assert sessions_of(user_id) == 0
    assert not User.objects.filter(pk=user_id).exists()
    assert rows_of(theirs.user.pk) == others_before
    assert all(default_storage.exists(name) for name in theirs.files)
    assert sessions_of(theirs.user.pk) == 1
    assert tokens.token_authenticate(theirs.token_secret) is not None


def test_the_accounts_rate_limit_records_go_and_others_stay(two_accounts, django_capture_on_commit_callbacks):
    from accounts.models import RateLimitRecord

    mine, theirs = two_accounts
    with django_capture_on_commit_callbacks(execute=True):
        services.user_delete(user=mine.user)
    assert list(RateLimitRecord.objects.values_list("key", flat=True)) == [f"user:{theirs.user.pk}"]


def test_a_rolled_back_deletion_keeps_rows_and_files(two_accounts, django_capture_on_commit_callbacks):
    mine, _ = two_accounts
    user_id = mine.user.pk
    before = rows_of(user_id)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        services.user_delete(user=mine.user)
        raise RuntimeError("something later in the same transaction failed")
    assert rows_of(user_id) == before
    assert all(default_storage.exists(name) for name in mine.files)


def test_sessions_tokens_and_sockets_end(user, django_capture_on_commit_callbacks, monkeypatch):
    closed: list[str] = []
    monkeypatch.setattr("accounts.services.close_sockets", lambda group, *a, **k: closed.append(group))
    browser = Client()
    browser.force_login(user)
    _, secret = tokens.token_create(user=user, name="script")
    user_id = user.pk
    with django_capture_on_commit_callbacks(execute=True):
        services.user_delete(user=user)
    assert closed == [tokens.user_group(user_id)]
    assert tokens.token_authenticate(secret) is None
    response = browser.get(reverse("accounts:profile"))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


# --- the profile page ---


def test_the_profile_page_links_to_deletion(client, user):
    client.force_login(user)
    assert reverse("accounts:delete") in client.get(reverse("accounts:profile")).content.decode()


def test_the_confirm_page_asks_for_the_password(client, user):
    client.force_login(user)
    response = client.get(reverse("accounts:delete"))
    assert response.status_code == 200
    assert 'type="password"' in response.content.decode()


def test_a_wrong_password_deletes_nothing(client, user, django_capture_on_commit_callbacks):
    account = make_account(user)
    before = rows_of(user.pk)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:delete"), {"password": "not-my-password"})
    assert response.status_code == 200
    assert "That is not your password." in response.content.decode()
    assert rows_of(user.pk) == before
    assert all(default_storage.exists(name) for name in account.files)
    assert client.get(reverse("accounts:profile")).status_code == 200  # still signed in


def test_the_right_password_deletes_everything_and_signs_out(
    client, user, django_capture_on_commit_callbacks
):
    account = make_account(user)
    user_id = user.pk
    client.login(username=user.username, password=PASSWORD)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:delete"), {"password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("home")
    assert "Your account is deleted" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated
    assert rows_of(user_id) == {}
    assert not [name for name in account.files if default_storage.exists(name)]
    assert client.get(reverse("accounts:profile")).status_code == 302


def test_deletion_is_post_only_and_needs_a_sign_in(client, user):
    response = client.post(reverse("accounts:delete"), {"password": PASSWORD})
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]
    assert User.objects.filter(pk=user.pk).exists()
    client.force_login(user)
    assert client.put(reverse("accounts:delete")).status_code == 405


# --- the admin ---


def _post_action(client, *users, confirm: bool = True):
    data = {"action": "delete_accounts", "_selected_action": [str(u.pk) for u in users]}
    if confirm:
        data["post"] = "yes"
    return client.post(reverse("admin:accounts_user_changelist"), data)


def test_staff_without_the_delete_permission_cannot_delete(client, staff_user, user):
    grant(staff_user, "accounts.view_user")
    client.force_login(staff_user)
    _post_action(client, user)
    assert User.objects.filter(pk=user.pk).exists()


def test_a_moderator_deletes_an_account_and_all_its_data(
    client, staff_user, user, other_user, django_capture_on_commit_callbacks
):
    staff_user.groups.add(moderators_group())
    account = make_account(user)
    others = rows_of(other_user.pk)
    victim_browser = Client()
    victim_browser.force_login(user)
    user_id = user.pk
    client.force_login(staff_user)
    confirm = _post_action(client, user, confirm=False)
    assert confirm.status_code == 200 and user.username in confirm.content.decode()
    assert User.objects.filter(pk=user_id).exists()  # asked first
    with django_capture_on_commit_callbacks(execute=True):
        _post_action(client, user)
    assert rows_of(user_id) == {}
    assert not [name for name in account.files if default_storage.exists(name)]
    assert sessions_of(user_id) == 0
    assert rows_of(other_user.pk) == others


def test_staff_cannot_delete_a_superuser_or_themself(client, staff_user, make_user):
    grant(staff_user, "accounts.view_user", "accounts.delete_user")
    root = make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(staff_user)
    _post_action(client, root, staff_user)
    assert User.objects.filter(pk__in=[root.pk, staff_user.pk]).count() == 2


def test_a_superuser_deletes_a_superuser(client, make_user, django_capture_on_commit_callbacks):
    root = make_user(username="root", is_staff=True, is_superuser=True)
    other_root = make_user(username="root2", is_staff=True, is_superuser=True)
    client.force_login(root)
    with django_capture_on_commit_callbacks(execute=True):
        _post_action(client, other_root)
    assert not User.objects.filter(pk=other_root.pk).exists()


def test_the_admins_delete_page_goes_through_the_service(
    client, staff_user, user, django_capture_on_commit_callbacks
):
    staff_user.groups.add(moderators_group())
    account = make_account(user)
    Client().force_login(user)
    user_id = user.pk
    client.force_login(staff_user)
    url = reverse("admin:accounts_user_delete", args=[user_id])
    assert client.get(url).status_code == 200  # a moderator needs no delete permission of each kind of row
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert rows_of(user_id) == {}
    assert sessions_of(user_id) == 0
    assert not [name for name in account.files if default_storage.exists(name)]


def test_djangos_bulk_delete_is_not_offered_for_accounts(client, make_user):
    root = make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert 'value="delete_accounts"' in page
    assert 'value="delete_selected"' not in page
