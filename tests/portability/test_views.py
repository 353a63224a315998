"""Export pages: start (POST, rate-limited), status, download; the owner only, while ready."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from portability import services
from portability.models import AccountExport


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(services.current_app, "send_task", lambda name, args=(), **kw: calls.append(args[0]))
    return calls


def ready_export(owner, *, expires_in=timedelta(hours=1), content=b"PK zip bytes") -> AccountExport:
    name = default_storage.save("exports/test.zip", ContentFile(content))
    return AccountExport.objects.create(
        owner=owner,
        status="ready",
        progress=100,
        file=name,
        byte_size=len(content),
        expires_at=timezone.now() + expires_in,
        finished_at=timezone.now(),
    )


def download(export) -> str:
    return reverse("portability:download", args=[export.pk])


def status(export) -> str:
    return reverse("portability:status", args=[export.pk])


def test_the_profile_offers_an_export(client, user):
    client.force_login(user)
    page = client.get(reverse("accounts:profile")).content.decode()
    assert reverse("portability:start") in page and "data-export-start" in page


def test_starting_an_export_queues_one(client, user, sent, django_capture_on_commit_callbacks):
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("portability:start"))
    assert response.status_code == 302 and response["Location"].endswith("#export")
    export = AccountExport.objects.get(owner=user)
    assert export.status == "queued" and sent == [str(export.pk)]


def test_a_second_export_while_one_is_built_is_refused_with_a_message(
    client, user, django_capture_on_commit_callbacks
):
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portability:start"))
        response = client.post(reverse("portability:start"), follow=True)
    assert "already being prepared" in response.content.decode()
    assert AccountExport.objects.filter(owner=user).count() == 1


def test_starting_is_post_only_and_needs_a_sign_in(client, user):
    assert client.post(reverse("portability:start")).status_code == 302
    assert not AccountExport.objects.exists()
    client.force_login(user)
    assert client.get(reverse("portability:start")).status_code == 405


def test_starting_exports_is_rate_limited(client, user, rate_limits, django_capture_on_commit_callbacks):
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("portability:start")).status_code == 302
        AccountExport.objects.update(status="failed")
        response = client.post(reverse("portability:start"))
    assert response.status_code == 429 and response["Retry-After"]
    assert AccountExport.objects.count() == 1


def test_the_profile_shows_progress_while_an_export_is_built(client, user):
    export = AccountExport.objects.create(owner=user, status="running", progress=40)
    client.force_login(user)
    page = client.get(reverse("accounts:profile")).content.decode()
    assert status(export) in page and 'value="40"' in page and "js/export.js" in page
    assert "data-export-start" not in page


def test_status_reports_progress_to_the_owner(client, user):
    export = AccountExport.objects.create(owner=user, status="running", progress=40)
    client.force_login(user)
    response = client.get(status(export))
    assert response.json() == {
        "id": str(export.pk),
        "status": "running",
        "progress": 40,
        "expires_at": None,
        "error": "",
    }
    assert "no-cache" in response["Cache-Control"]


def test_the_owner_downloads_a_ready_export(client, user):
    export = ready_export(user)
    client.force_login(user)
    page = client.get(reverse("accounts:profile")).content.decode()
    assert download(export) in page and "until" in page
    response = client.get(download(export))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"PK zip bytes"
    assert response["Content-Type"] == "application/zip"
    assert f"companionhub-{user.username}-" in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]


def test_in_production_nginx_sends_the_file(client, user, settings):
    settings.MEDIA_X_ACCEL_REDIRECT = True
    export = ready_export(user)
    client.force_login(user)
    response = client.get(download(export))
    assert response["X-Accel-Redirect"] == settings.MEDIA_X_ACCEL_PREFIX + export.file


def test_a_username_with_accents_makes_a_valid_file_name(client, user, settings):
    """Usernames may hold any letter; a header is Latin-1, so the name is encoded as RFC 6266 says."""
    user.username = "zoë_ŝ"
    user.save(update_fields=["username"])
    export = ready_export(user)
    client.force_login(user)
    for accel in (False, True):
        settings.MEDIA_X_ACCEL_REDIRECT = accel
        disposition = client.get(download(export))["Content-Disposition"]
        disposition.encode("latin-1")
        assert "filename*=utf-8''companionhub-zo%C3%AB_%C5%9D-" in disposition


def test_another_users_export_is_not_found(client, user, other_user):
    export = ready_export(user)
    client.force_login(other_user)
    assert client.get(download(export)).status_code == 404
    assert client.get(status(export)).status_code == 404
    assert download(export) not in client.get(reverse("accounts:profile")).content.decode()


def test_an_anonymous_download_goes_to_sign_in(client, user):
    response = client.get(download(ready_export(user)))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_an_export_not_ready_cannot_be_downloaded(client, user):
    export = AccountExport.objects.create(owner=user, status="running", progress=10)
    client.force_login(user)
    assert client.get(download(export)).status_code == 404


def test_an_expired_export_is_gone_and_listed_as_expired(client, user):
    export = ready_export(user, expires_in=timedelta(seconds=-1))
    client.force_login(user)
    assert client.get(download(export)).status_code == 404
    assert client.get(status(export)).json()["status"] == "expired"
    page = client.get(reverse("accounts:profile")).content.decode()
    assert download(export) not in page and 'data-export-state="expired"' in page


def test_a_failed_export_says_why(client, user):
    AccountExport.objects.create(owner=user, status="failed", error_text="Something <b>broke</b>.")
    client.force_login(user)
    page = client.get(reverse("accounts:profile")).content.decode()
    assert "failed: Something &lt;b&gt;broke&lt;/b&gt;." in page
