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
