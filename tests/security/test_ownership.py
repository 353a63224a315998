"""Walk every URL that names an object with another user's ids: 404 (or 405), and nothing changes."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import tokens
from accounts.models import ApiToken
from chat.models import Message
from companions.models import Companion
from groups.models import GroupChat, GroupMessage
from media.models import StoredImage
from media.services import store_image
from tests.companions.factories import make_companion, png_bytes

OBJECT_KWARGS = {"companion_id", "token_id", "image_id", "group_id", "message_id"}
NOT_OBJECTS = {"step"}  # the wizard's step number belongs to the signed-in user's own draft


def object_patterns():
    found = []

    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue
                walk(
                    pattern.url_patterns,
                    f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace,
                )
            elif isinstance(pattern, URLPattern):
                kwargs = set(pattern.pattern.converters)
                if kwargs - NOT_OBJECTS:
                    found.append((f"{namespace}{pattern.name}", kwargs - NOT_OBJECTS))

    walk(get_resolver().url_patterns)
    return found


def test_every_object_kwarg_is_covered():
    kwargs = set().union(*(k for _, k in object_patterns()))
    assert kwargs <= OBJECT_KWARGS, f"add ids for {kwargs - OBJECT_KWARGS} to this walk"


@pytest.fixture
def victim_objects(user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    companion = make_companion(user)
    image = store_image(png_bytes(), companion, "generated")
    # A reply with a picture: the picture buttons name it.
    message = Message.objects.create(
        companion=companion, role="assistant", content="private words", image=image
    )
    token, _ = tokens.token_create(user=user, name="victim")
    group = GroupChat.objects.create(creator=user, title="Victims")
    group.companions.set([companion, make_companion(user, name="Rin")])
    GroupMessage.objects.create(group=group, content="private words")
    return {
        "companion_id": companion.pk,
        "token_id": token.pk,
        "image_id": image.pk,
        "group_id": group.pk,
        "message_id": message.pk,
    }


def snapshot():
    return (
        list(Companion.objects.values_list("pk", "name", "current_outfit")),
        list(Message.objects.values_list("pk", "content", "image_id")),
        list(StoredImage.objects.values_list("pk", flat=True)),
        list(ApiToken.objects.values_list("pk", "revoked_at")),
        list(GroupChat.objects.values_list("pk", "title")),
        list(GroupMessage.objects.values_list("pk", "content")),
    )


@pytest.mark.parametrize(("name", "kwargs"), object_patterns())
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_users_objects_are_not_found(client, other_user, victim_objects, name, kwargs, method):
    client.force_login(other_user)
    url = reverse(name, kwargs={k: victim_objects[k] for k in kwargs})
    before = snapshot()
    payload = {"content": "hijack", "name": "Hijacked", "before": "1", "confirm": "on"}
    response = getattr(client, method)(url, payload)
    assert response.status_code in (404, 405), (url, method, response.status_code)
    assert snapshot() == before
    assert b"private words" not in response.content


def test_posted_owner_and_staff_fields_are_ignored(client, user, other_user):
    companion = make_companion(user)
    client.force_login(user)
    client.post(
        reverse("accounts:profile"),
        {"display_name": "A", "email": user.email, "is_staff": "on", "is_superuser": "on"},
    )
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser
    client.post(reverse("companions:settings", args=[companion.pk]), {"owner": other_user.pk, "name": "Mika"})
    companion.refresh_from_db()
    assert companion.owner == user
