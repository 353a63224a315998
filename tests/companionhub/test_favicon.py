"""The icon: named by every page, the admin's too, and /favicon.ico is no 404."""

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["admin:login", "admin:index", "admin:chat_message_changelist"])
def test_admin_pages_name_the_icon(client, make_user, url):
    if url != "admin:login":
        client.force_login(make_user(is_staff=True, is_superuser=True))
    response = client.get(reverse(url))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<link rel="icon" href="{static("favicon.svg")}"' in page
    assert 'id="site-name"' in page  # Django's own header is still there


@pytest.mark.django_db
def test_favicon_ico_leads_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == static("favicon.svg")
    assert "max-age=86400" in response["Cache-Control"]
    assert finders.find("favicon.svg")  # the file it leads to exists


@pytest.mark.django_db
def test_favicon_ico_refuses_post(client):
    assert client.post("/favicon.ico").status_code == 405
