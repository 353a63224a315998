"""Wipe memory keeps the memories unless asked; the admin lists memories read-only and deletes
through the service."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from chat.conversations import companion_wipe_memory
from memories import vector_cache
from memories.models import Memory
from tests.chat.factories import add_exchange, make_chat
from tests.memories.conftest import MODEL, add_memory

pytestmark = pytest.mark.django_db


def test_the_wipe_page_offers_to_clear_memories_unticked(client, user, companion):
    client.force_login(user)
    page = client.get(reverse("chat:wipe", args=[companion.pk]))
    assert page.status_code == 200
    assert b'name="clear_memories"' in page.content
    assert page.context["form"]["clear_memories"].value() in (False, None)


def test_wipe_keeps_the_memories_by_default(client, user, companion):
    chat = make_chat(companion)
    add_exchange(chat, companion, "hi", "hello")
    memory = add_memory(companion, "The user's sister is called Mara")
    client.force_login(user)
    client.post(reverse("chat:wipe", args=[companion.pk]))
    assert Memory.objects.filter(pk=memory.pk).exists()
    assert not chat.__class__.objects.filter(pk=chat.pk).exists()


def test_wipe_clears_the_memories_when_asked(client, user, companion):
    from tests.companions.factories import make_companion

    add_memory(companion, "The user's sister is called Mara", pinned=True)
    kept = add_memory(make_companion(user, name="Aya"), "kept")
    client.force_login(user)
    client.post(reverse("chat:wipe", args=[companion.pk]), {"clear_memories": "on"})
    assert list(Memory.objects.values_list("pk", flat=True)) == [kept.pk]


def test_the_wipe_service_says_how_many_memories_went(companion):
    add_memory(companion, "one")
    add_memory(companion, "two")
    assert companion_wipe_memory(companion=companion)["memories"] == 0
    assert companion_wipe_memory(companion=companion, clear_memories=True)["memories"] == 2


def test_another_users_wipe_is_404_and_keeps_the_memories(client, other_user, companion):
    add_memory(companion, "one")
    client.force_login(other_user)
    assert client.post(reverse("chat:wipe", args=[companion.pk]), {"clear_memories": "on"}).status_code == 404
    assert Memory.objects.count() == 1


# --- admin ---------------------------------------------------------------------------------------


@pytest.fixture
def moderator(staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_memory"))
    return staff_user


def test_staff_with_the_view_permission_see_memories_read_only(client, moderator, companion):
    memory = add_memory(companion, "The user's sister is called Mara")
    client.force_login(moderator)
    listing = client.get(reverse("admin:memories_memory_changelist"), {"q": "sister"})
    assert listing.status_code == 200 and b"sister is called Mara" in listing.content
    page = client.get(reverse("admin:memories_memory_change", args=[memory.pk]))
    assert page.status_code == 200
    assert b'name="text"' not in page.content  # read-only
    client.post(reverse("admin:memories_memory_change", args=[memory.pk]), {"text": "changed"})
    memory.refresh_from_db()
    assert memory.text == "The user's sister is called Mara"
    assert client.get(reverse("admin:memories_memory_add")).status_code == 403


def test_the_admin_filters_by_owner_and_companion(client, moderator, companion, other_user):
    from tests.companions.factories import make_companion

    add_memory(companion, "mine")
    add_memory(make_companion(other_user), "theirs")
    client.force_login(moderator)
    changelist = reverse("admin:memories_memory_changelist")
    listing = client.get(changelist, {"owner__id__exact": companion.owner_id})
    assert b"mine" in listing.content and b"theirs" not in listing.content
    listing = client.get(changelist, {"companion__id__exact": companion.pk})
    assert b"mine" in listing.content and b"theirs" not in listing.content


def test_staff_without_the_permission_get_403(client, staff_user, companion):
    add_memory(companion, "x")
    client.force_login(staff_user)
    assert client.get(reverse("admin:memories_memory_changelist")).status_code == 403


def test_the_admins_bulk_delete_needs_the_permission_and_refreshes_the_vectors(
    client, moderator, companion, user, django_capture_on_commit_callbacks
):
    memory = add_memory(companion, "The user's sister is called Mara")
    client.force_login(moderator)
    changelist = reverse("admin:memories_memory_changelist")
    action = {"action": "delete_selected", "_selected_action": [memory.pk], "post": "yes"}
    client.post(changelist, action)
    assert Memory.objects.filter(pk=memory.pk).exists()
    moderator.user_permissions.add(Permission.objects.get(codename="delete_memory"))
    before = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, action)
    assert not Memory.objects.filter(pk=memory.pk).exists()
    after = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    assert after is not before and after.ids.size == 0
