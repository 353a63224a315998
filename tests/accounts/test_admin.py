from django.urls import reverse


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
