import pytest
from django.urls import reverse

from chat.models import Message
from companions.models import Companion
from media.models import StoredImage
from media.services import store_image
from tests.companions.factories import make_companion, png_bytes


@pytest.fixture
def admin_client_(client, make_user):
    client.force_login(make_user(username="root", is_staff=True, is_superuser=True))
    return client


def test_companions_are_searchable_by_owner_with_message_counts(admin_client_, user, other_user):
    mine = make_companion(user)
    make_companion(other_user, name="Zed")
    Message.objects.create(companion=mine, role="user", content="hi")
    page = admin_client_.get(reverse("admin:companions_companion_changelist"), {"q": "alice"})
    rows = list(page.context["cl"].result_list)
    assert rows == [mine]
    assert rows[0]._message_count == 1


def test_the_wipe_action(admin_client_, user):
    companion = make_companion(user)
    Message.objects.create(companion=companion, role="user", content="hi")
    admin_client_.post(
        reverse("admin:companions_companion_changelist"),
        {"action": "wipe_memory", "_selected_action": [companion.pk]},
    )
    assert not Message.objects.exists()


def test_the_remove_header_action(
    admin_client_, user, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    companion = make_companion(user)
    companion.header_image = store_image(png_bytes(), companion, "header")
    companion.save()
    path = tmp_path / companion.header_image.file.name
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(
            reverse("admin:companions_companion_changelist"),
            {"action": "remove_header_image", "_selected_action": [companion.pk]},
        )
    companion.refresh_from_db()
    assert companion.header_image is None
    assert not path.exists()


def test_admin_bulk_delete_still_removes_files(
    admin_client_, user, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    companion = make_companion(user)
    image = store_image(png_bytes(), companion, "generated")
    path = tmp_path / image.file.name
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(
            reverse("admin:companions_companion_changelist"),
            {"action": "delete_selected", "_selected_action": [companion.pk], "post": "yes"},
        )
    assert not Companion.objects.exists()
    assert not StoredImage.objects.exists()
    assert not path.exists()


def test_staff_without_permission_get_403(client, make_user):
    client.force_login(make_user(username="helper", is_staff=True))
    assert client.get(reverse("admin:companions_companion_changelist")).status_code == 403
