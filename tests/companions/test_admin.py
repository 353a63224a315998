import pytest
from django.contrib import admin
from django.urls import reverse

from chat.admin import CompanionWithChatsAdmin
from chat.models import Conversation, Message
from companions.admin import CompanionAdmin
from companions.models import Companion
from media.models import StoredImage
from media.services import store_image
from tests.chat.factories import add_exchange, make_chat, make_group_of
from tests.companions.factories import make_companion, make_run, png_bytes


@pytest.fixture
def admin_client_(client, make_user):
    client.force_login(make_user(username="root", is_staff=True, is_superuser=True))
    return client


def test_companions_are_searchable_by_owner_with_reply_counts(admin_client_, user, other_user):
    mine = make_companion(user)
    make_companion(other_user, name="Zed")
    add_exchange(make_chat(mine), mine, "hi", "hello")  # the user's words are not the companion's
    page = admin_client_.get(reverse("admin:companions_companion_changelist"), {"q": "alice"})
    rows = list(page.context["cl"].result_list)
    assert rows == [mine]
    assert rows[0]._message_count == 1


def test_the_companion_admin_is_the_one_with_the_chats():
    registered = admin.site._registry[Companion]
    assert type(registered) is CompanionWithChatsAdmin
    assert isinstance(registered, CompanionAdmin)


def test_the_wipe_action_forgets_the_one_to_one_chats_and_keeps_the_groups(admin_client_, user):
    companion = make_companion(user)
    chat = make_chat(companion)
    add_exchange(chat, companion, "hi", "hello")
    add_exchange(make_chat(companion), companion, "again", "hello again")
    group = make_group_of(user, [companion, make_companion(user, name="Rin")])
    add_exchange(group, companion, "hi all", "hi from the group")
    response = admin_client_.post(
        reverse("admin:companions_companion_changelist"),
        {"action": "wipe_memory", "_selected_action": [companion.pk]},
    )
    assert response.status_code == 302
    assert list(Conversation.objects.all()) == [group]
    assert list(Message.objects.values_list("content", flat=True).order_by("pk")) == [
        "hi all",
        "hi from the group",
    ]
    assert Companion.objects.filter(pk=companion.pk).exists()


def test_the_wipe_action_spares_a_companion_still_replying(admin_client_, user):
    busy, idle = make_companion(user), make_companion(user, name="Rin")
    make_run(busy, status="running", answer="Half a reply")
    add_exchange(make_chat(idle), idle, "hi", "hello")
    response = admin_client_.post(
        reverse("admin:companions_companion_changelist"),
        {"action": "wipe_memory", "_selected_action": [busy.pk, idle.pk]},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert "Wiped the memory of 1 companion(s)." in shown
    assert "Still replying, not wiped: Mika." in shown
    assert list(Message.objects.values_list("sender__name", flat=True).exclude(sender=None)) == ["Mika"]


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
