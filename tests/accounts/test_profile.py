from django.urls import reverse

from tests.conftest import PASSWORD

PROFILE = reverse("accounts:profile")
PASSWORD_CHANGE = reverse("accounts:password_change")


def test_it_requires_login(client, db):
    response = client.get(PROFILE)
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_it_updates_display_name_and_email(client, user):
    client.force_login(user)
    response = client.post(PROFILE, {"display_name": "Ally", "email": "ally@example.com"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.display_name, user.email) == ("Ally", "ally@example.com")


def test_it_refuses_another_users_email(client, user, other_user):
    client.force_login(user)
    response = client.post(PROFILE, {"display_name": "", "email": "MALLORY@example.com"})
    assert "email" in response.context["form"].errors
    user.refresh_from_db()
    assert user.email == "Alice@example.com"  # domain normalized on create


def test_it_keeps_the_users_own_email(client, user):
    client.force_login(user)
    response = client.post(PROFILE, {"display_name": "A", "email": "alice@example.com"})
    assert response.status_code == 302


def test_password_change_keeps_this_session_and_ends_others(client, user, django_user_model):
    from django.test import Client

    other_device = Client()
    other_device.force_login(user)
    client.force_login(user)
    new = "a-brand-new-passphrase"
    response = client.post(
        PASSWORD_CHANGE, {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    assert client.get(PROFILE).status_code == 200
    assert other_device.get(PROFILE).status_code == 302  # signed out


def test_password_change_needs_the_old_password(client, user):
    client.force_login(user)
    new = "a-brand-new-passphrase"
    response = client.post(
        PASSWORD_CHANGE, {"old_password": "wrong", "new_password1": new, "new_password2": new}
    )
    assert "old_password" in response.context["form"].errors
