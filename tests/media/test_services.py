import base64
import io

import pytest
from django.urls import reverse
from PIL import Image

from media.imaging import ImageRejected
from media.models import StoredImage
from media.services import storage_stats, store_image
from tests.companions.factories import make_companion, png_bytes


def test_it_stores_an_optimized_jpeg_under_a_generated_name(companion, media_root):
    image = store_image(png_bytes(1200, 900), companion, "header")
    assert image.file.name.startswith(f"companions/{companion.pk}/headers/")
    assert image.file.name.endswith(".jpg")
    stored = Image.open(media_root / image.file.name)
    assert stored.format == "JPEG"
    assert max(stored.size) == 800 == max(image.width, image.height)
    assert image.byte_size == (media_root / image.file.name).stat().st_size
    assert image.original_size == len(png_bytes(1200, 900))


def test_generated_pictures_go_to_their_own_folder_and_keep_size(companion):
    image = store_image(png_bytes(832, 1216), companion, "generated")
    assert f"companions/{companion.pk}/generated/" in image.file.name
    assert (image.width, image.height) == (832, 1216)


def test_base64_and_data_urls_are_accepted(companion):
    encoded = base64.b64encode(png_bytes()).decode()
    assert store_image(encoded, companion, "generated").width == 64
    assert store_image("data:image/png;base64," + encoded, companion, "generated").width == 64


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"hello, not a picture", "not_an_image"),
        ("!!!not base64!!!", "bad_base64"),
    ],
)
def test_rejections_write_nothing(companion, media_root, data, code):
    with pytest.raises(ImageRejected) as caught:
        store_image(data, companion, "header")
    assert caught.value.code == code
    assert caught.value.message
    assert not StoredImage.objects.exists()
    assert not any(p.is_file() for p in media_root.rglob("*"))


def test_too_big_is_refused_before_decoding(companion, settings):
    settings.IMAGE_MAX_BYTES = 1000
    with pytest.raises(ImageRejected) as caught:
        store_image(png_bytes(400, 400) + b"\0" * 2000, companion, "header")
    assert caught.value.code == "too_large"


def test_a_name_from_input_never_reaches_the_path(companion):
    image = store_image(png_bytes(), companion, "header")
    assert ".." not in image.file.name and "me.png" not in image.file.name


def test_storage_stats_count_images_bytes_and_companions(companion, user):
    other = make_companion(user, name="Other")
    a = store_image(png_bytes(), companion, "header")
    b = store_image(png_bytes(), other, "generated")
    stats = storage_stats()
    assert (stats.images, stats.bytes, stats.companions_with_images) == (2, a.byte_size + b.byte_size, 2)


def test_the_owner_gets_the_file_with_private_immutable_caching(client, user, companion):
    image = store_image(png_bytes(), companion, "generated")
    client.force_login(user)
    response = client.get(image.url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"] and "immutable" in response["Cache-Control"]
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"


def test_another_user_gets_404(client, other_user, companion):
    image = store_image(png_bytes(), companion, "generated")
    client.force_login(other_user)
    assert client.get(image.url).status_code == 404


def test_anonymous_visitors_are_sent_to_login(client, companion):
    image = store_image(png_bytes(), companion, "generated")
    assert client.get(image.url).status_code == 302


def test_staff_see_any_image_only_with_the_permission(client, staff_user, companion):
    from tests.accounts.roles import grant

    image = store_image(png_bytes(), companion, "generated")
    client.force_login(staff_user)
    assert client.get(image.url).status_code == 404  # being staff is not a permission
    grant(staff_user, "media.view_any_image")
    assert client.get(image.url).status_code == 200


def test_production_hands_the_file_to_nginx(client, user, companion, settings):
    settings.MEDIA_X_ACCEL_REDIRECT = True
    image = store_image(png_bytes(), companion, "generated")
    client.force_login(user)
    response = client.get(image.url)
    assert response["X-Accel-Redirect"] == "/protected-media/" + image.file.name
    assert response.content == b""


def test_an_unknown_id_is_404(client, user):
    client.force_login(user)
    url = reverse("media:image", args=["00000000-0000-0000-0000-000000000000"])
    assert client.get(url).status_code == 404


def test_exif_is_stripped_from_the_stored_file(companion, media_root):
    source = Image.new("RGB", (300, 200), (10, 200, 30))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90
    buffer = io.BytesIO()
    source.save(buffer, format="JPEG", exif=exif)
    image = store_image(buffer.getvalue(), companion, "generated")
    stored = Image.open(media_root / image.file.name)
    assert not stored.getexif()
    assert "exif" not in stored.info
    assert stored.size == (200, 300)  # orientation applied before stripping
