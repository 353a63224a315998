import pytest
from django.urls import reverse

from accounts.models import User
from tests.conftest import PASSWORD

URL = reverse("accounts:register")


def post(client, **overrides):
    data = {
        "username": "newbie",
        "email": "newbie@example.com",
        "display_name": "New Bie",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    data.update(overrides)
    return client.post(URL, data)


@pytest.mark.django_db
def test_it_creates_the_account_and_signs_in(client):
    response = post(client, username="NewBie")
    assert response.status_code == 302
    user = User.objects.get()
    assert user.username == "newbie"  # stored lowercase
    assert user.display_name == "New Bie"
    assert user.password.startswith("argon2")
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_a_new_account_lands_on_making_its_first_companion(client):
    response = post(client)
    assert response.status_code == 302
    assert response["Location"] == reverse("companions:start")
    page = client.get(response["Location"])
    assert "Welcome to CompanionHub" in page.content.decode()  # the greeting is shown there


def test_it_rejects_a_username_taken_in_another_case(client, user):
    response = post(client, username="ALICE")
    assert response.status_code == 200
    assert "That username is taken." in response.context["form"].errors["username"]
    assert User.objects.count() == 1


@pytest.mark.parametrize("username", ["ab", "a" * 21, "bad name", "dash-es", "émile", "semi;colon"])
@pytest.mark.django_db
def test_it_rejects_a_bad_username(client, username):
    response = post(client, username=username)
    assert response.status_code == 200
    assert "username" in response.context["form"].errors
    assert not User.objects.exists()


@pytest.mark.django_db
def test_it_rejects_a_short_password(client):
    response = post(client, password1="Xy7!q", password2="Xy7!q")
    errors = response.context["form"].errors["password2"]
    assert any("at least 8 characters" in e for e in errors)
    assert not User.objects.exists()


@pytest.mark.django_db
def test_it_rejects_mismatched_passwords(client):
    response = post(client, password2=PASSWORD + "x")
    assert "password2" in response.context["form"].errors
    assert not User.objects.exists()


def test_it_rejects_an_email_taken_in_another_case(client, user):
    response = post(client, email="ALICE@example.COM")
    assert "An account with that email already exists." in response.context["form"].errors["email"]
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_it_requires_an_email(client):
    response = post(client, email="")
    assert "email" in response.context["form"].errors


@pytest.mark.django_db
def test_it_limits_the_display_name(client):
    response = post(client, display_name="x" * 51)
    assert "display_name" in response.context["form"].errors


@pytest.mark.django_db
def test_it_ignores_posted_privilege_fields(client):
    post(client, is_staff="on", is_superuser="on")
    user = User.objects.get()
    assert not user.is_staff and not user.is_superuser


@pytest.mark.django_db
def test_the_form_page_renders(client):
    response = client.get(URL)
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_the_database_refuses_a_case_variant_email(user):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username="other", email="alice@EXAMPLE.com", password=PASSWORD)
