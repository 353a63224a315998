"""Upload size is capped by Django itself, before the body is parsed."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.companions.factories import make_companion, png_bytes


def test_a_declared_oversize_body_is_refused_before_reading(client, user, settings):
    settings.IMAGE_MAX_BYTES = 1024
    companion = make_companion(user)
    client.force_login(user)
    response = client.post(
        reverse("companions:settings", args=[companion.pk]),
        {"name": "X", "header_image": SimpleUploadedFile("big.png", b"x" * (300 * 1024))},
    )
    assert response.status_code == 413
    assert b"too large" in response.content


def test_a_normal_picture_still_goes_through(client, user, settings, tmp_path):
    from tests.companions.test_pages import settings_data

    settings.MEDIA_ROOT = tmp_path
    companion = make_companion(user)
    client.force_login(user)
    picture = SimpleUploadedFile("me.png", png_bytes(300, 300), content_type="image/png")
    response = client.post(
        reverse("companions:settings", args=[companion.pk]), settings_data(companion, header_image=picture)
    )
    assert response.status_code == 302
    companion.refresh_from_db()
    assert companion.header_image is not None
