import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import User
from tests.accounts.roles import grant, moderators_group


def test_staff_can_search_users_by_email(client, make_user, user, other_user):
    admin = make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.get(reverse("admin:accounts_user_changelist"), {"q": "mallory@"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [other_user]


def test_users_are_filterable_by_active_staff_and_date(client, make_user):
    admin = make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.get(reverse("admin:accounts_user_changelist"), {"is_active__exact": "1"})
    assert response.status_code == 200
    filters = {spec.title for spec in response.context["cl"].filter_specs}
    assert {"active", "staff status", "date joined"} <= filters


def test_non_staff_are_sent_to_the_admin_login(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_deactivating_in_the_admin_ends_sessions_and_tokens(client, staff_user, user):
    from django.contrib.sessions.models import Session

    from accounts import tokens

    _, secret = tokens.token_create(user=user, name="bot")
    other_browser = client.__class__()
    other_browser.force_login(user)
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:accounts_user_changelist"), {"action": "deactivate", "_selected_action": [user.pk]}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.is_active
    assert tokens.token_authenticate(secret) is None
    sessions = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert str(user.pk) not in sessions
    assert other_browser.get(reverse("accounts:profile")).status_code == 302  # signed out


def test_unticking_active_in_the_form_does_the_same(client, staff_user, user):
    from accounts import tokens

    _, secret = tokens.token_create(user=user, name="bot")
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    url = reverse("admin:accounts_user_change", args=[user.pk])
    page = client.get(url)
    data = {k: v for k, v in page.context["adminform"].form.initial.items() if v is not None}
    data.update({"username": user.username, "email": user.email, "date_joined_0": "2026-01-01",
                 "date_joined_1": "00:00:00", "is_active": ""})  # fmt: skip
    data.pop("is_active")
    data.pop("groups", None)
    data.pop("user_permissions", None)
    data.pop("last_login", None)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert tokens.token_authenticate(secret) is None


# Who may change whom (docs/security.md, "Admin roles"). "Support" holds
# change_user without being superuser: the role the pen test abused.


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Several accounts a test: Argon2 would spend most of it hashing passwords nobody types."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def root(make_user):
    return make_user(username="root", email="root@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def support(make_user):
    support = make_user(username="support", email="support@example.com", is_staff=True)
    grant(support, "accounts.view_user", "accounts.change_user")
    return support


@pytest.fixture
def moderator(make_user):
    moderator = make_user(username="moder", email="moder@example.com", is_staff=True)
    moderator.groups.add(moderators_group())
    return moderator


def change_form(target, **extra) -> dict:
    """A complete change-form POST for ``target``, asking for every privilege there is."""
    return {
        "username": target.username,
        "email": target.email,
        "display_name": "Renamed",
        "first_name": "",
        "last_name": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "groups": [moderators_group().pk],
        "user_permissions": [Permission.objects.get(codename="change_user").pk],
        **extra,
    }


def privileges(user) -> tuple:
    user.refresh_from_db()
    return (user.is_staff, user.is_superuser, list(user.groups.all()), list(user.user_permissions.all()))


def test_a_moderator_cannot_change_accounts_at_all(client, moderator, user):
    client.force_login(moderator)
    for target in (moderator, user):
        before = privileges(target)
        response = client.post(reverse("admin:accounts_user_change", args=[target.pk]), change_form(target))
        assert response.status_code == 403
        assert privileges(target) == before


def test_changing_users_grants_no_privileges_to_oneself_or_others(client, support, user):
    client.force_login(support)
    for target in (support, user):
        before = privileges(target)
        url = reverse("admin:accounts_user_change", args=[target.pk])
        response = client.post(url, change_form(target))
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert privileges(target) == before
        assert target.display_name == "Renamed"  # the profile is theirs to edit, the privileges are not
        page = client.get(url).content.decode()
        assert 'name="is_superuser"' not in page and 'name="user_permissions"' not in page


def test_a_superusers_account_is_read_only_to_everyone_else(client, support, root):
    client.force_login(support)
    url = reverse("admin:accounts_user_change", args=[root.pk])
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    response = client.post(url, change_form(root, email="support@evil.example", is_superuser=""))
    assert response.status_code == 403
    root.refresh_from_db()
    assert root.email == "root@example.com" and root.is_superuser


def test_only_a_superuser_sets_someone_elses_password(client, support, root, user):
    from tests.conftest import PASSWORD

    new = {
        "password1": "a-new-long-passphrase",
        "password2": "a-new-long-passphrase",
        "set_usable_password": "true",
    }
    client.force_login(support)
    for target in (root, user):
        url = reverse("admin:auth_user_password_change", args=[target.pk])
        assert client.get(url).status_code == 403
        assert client.post(url, new).status_code == 403
        target.refresh_from_db()
        assert target.check_password(PASSWORD)
    own = reverse("admin:auth_user_password_change", args=[support.pk])
    assert client.get(own).status_code == 200
    client.force_login(root)
    assert client.post(reverse("admin:auth_user_password_change", args=[user.pk]), new).status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-new-long-passphrase")


def test_deleting_a_superuser_takes_a_superuser(client, support, root, user):
    grant(support, "accounts.delete_user")
    client.force_login(support)
    assert client.get(reverse("admin:accounts_user_delete", args=[root.pk])).status_code == 403
    assert (
        client.post(reverse("admin:accounts_user_delete", args=[root.pk]), {"post": "yes"}).status_code == 403
    )
    client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [root.pk, user.pk], "post": "yes"},
    )
    assert User.objects.filter(pk__in=[root.pk, user.pk]).count() == 2


def test_deactivating_spares_superusers_and_oneself_unless_a_superuser_does_it(
    client, moderator, root, user, make_user
):
    changelist = reverse("admin:accounts_user_changelist")
    client.force_login(moderator)
    response = client.post(
        changelist, {"action": "deactivate", "_selected_action": [root.pk, moderator.pk, user.pk]}
    )
    assert response.status_code == 302
    active = dict(User.objects.values_list("username", "is_active"))
    assert active == {"root": True, "moder": True, "alice": False}
    other_root = make_user(username="root2", is_staff=True, is_superuser=True)
    client.force_login(root)
    client.post(changelist, {"action": "deactivate", "_selected_action": [other_root.pk, root.pk]})
    other_root.refresh_from_db()
    root.refresh_from_db()
    assert not other_root.is_active and root.is_active


def test_the_active_box_takes_the_deactivate_permission(client, support, user):
    from accounts import tokens

    _, secret = tokens.token_create(user=user, name="bot")
    client.force_login(support)
    url = reverse("admin:accounts_user_change", args=[user.pk])
    client.post(url, change_form(user, is_active=""))
    user.refresh_from_db()
    assert user.is_active  # change_user alone: the box is read-only
    grant(support, "accounts.deactivate_user")
    client.post(url, change_form(user, is_active=""))
    user.refresh_from_db()
    assert not user.is_active
    assert tokens.token_authenticate(secret) is None  # the same as the action: tokens revoked


def test_nobody_but_a_superuser_changes_a_group_of_permissions(client, support):
    moderators = moderators_group()
    grant(support, "auth.view_group", "auth.add_group", "auth.change_group", "auth.delete_group")
    client.force_login(support)
    before = set(moderators.permissions.all())
    url = reverse("admin:auth_group_change", args=[moderators.pk])
    assert 'name="_save"' not in client.get(url).content.decode()
    everything = [p.pk for p in Permission.objects.all()]
    assert client.post(url, {"name": "Moderators", "permissions": everything}).status_code == 403
    assert set(moderators.permissions.all()) == before
    assert client.get(reverse("admin:auth_group_add")).status_code == 403
    assert client.get(reverse("admin:auth_group_delete", args=[moderators.pk])).status_code == 403


def test_a_password_set_in_the_admin_revokes_the_users_api_tokens(client, make_user, user):
    from accounts import tokens

    _, secret = tokens.token_create(user=user, name="bot")
    root = make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    new_password = "another-long-passphrase-77"
    response = client.post(
        url, {"password1": new_password, "password2": new_password, "usable_password": "true"}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)
    assert tokens.token_authenticate(secret) is None


def test_a_refused_admin_password_form_keeps_the_tokens(client, make_user, user):
    from accounts import tokens

    tokens.token_create(user=user, name="bot")
    root = make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    response = client.post(url, {"password1": "one-long-passphrase", "password2": "another-passphrase"})
    assert response.status_code == 200  # the form again, with its error
    assert tokens.active_token_count(user) == 1
