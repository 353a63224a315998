"""Walk every URL that names an object with another user's ids: 404 (or 405), and nothing changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken
from chat.models import Conversation, Message, Participant, PipelineRun, SpeechClip, Turn
from companions.models import Companion
from lorebooks.models import Lorebook, LoreEntry
from media.models import StoredImage
from media.services import store_image
from memories.models import Memory
from portability.models import AccountExport
from tests.chat.factories import add_exchange, add_reply, make_chat, make_group_of
from tests.companions.factories import make_companion, png_bytes

OBJECT_KWARGS = {
    "companion_id",
    "token_id",
    "image_id",
    "group_id",
    "conversation_id",
    "message_id",
    "export_id",
    "lorebook_id",
    "entry_id",
    "memory_id",
    "clip_id",
}
DAY = timedelta(days=1)
# The wizard's step number belongs to the signed-in user's own draft; an export's format is a name.
NOT_OBJECTS = {"step", "fmt"}
NOT_OBJECT_VALUES = {"fmt": "jsonl"}  # what the walk puts in a URL for them
# Every page of a conversation and of a companion's chats: each must be in the walk.
CHAT_URLS = {
    "chat:page",
    "chat:new",
    "chat:chats",
    "chat:wipe",
    "chat:model",
    "chat:conversation",
    "chat:send",
    "chat:older",
    "chat:rename",
    "chat:delete",
    "chat:export",
    "chat:branch",
    "chat:edit",
    "chat:picture_paint_again",
    "chat:picture_use_as_header",
    "chat:picture_delete",
    "groups:page",
    "groups:edit",
    "groups:delete",
    "chat:lorebooks",
}
# The URLs that name a message of a conversation: the message must be of that conversation.
MESSAGE_URLS = sorted(
    name for name in CHAT_URLS if name.startswith(("chat:picture_", "chat:branch", "chat:edit"))
)


def object_patterns():
    found = []

    def walk(patterns, namespace="", outer=frozenset()):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue
                walk(
                    pattern.url_patterns,
                    f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace,
                    outer | set(pattern.pattern.converters),  # an include's ids (companions/<id>/...)
                )
            elif isinstance(pattern, URLPattern):
                kwargs = outer | set(pattern.pattern.converters)
                if kwargs - NOT_OBJECTS:
                    found.append((f"{namespace}{pattern.name}", kwargs))

    walk(get_resolver().url_patterns)
    return found


def test_every_object_kwarg_is_covered():
    kwargs = set().union(*(k for _, k in object_patterns())) - NOT_OBJECTS
    assert kwargs <= OBJECT_KWARGS, f"add ids for {kwargs - OBJECT_KWARGS} to this walk"


def test_every_chat_url_is_walked():
    assert {name for name, _ in object_patterns()} >= CHAT_URLS


def picture_reply(conversation, companion, *, text: str) -> Message:
    """A reply with a picture in ``conversation`` (the picture buttons name it), with its run."""
    said, reply = add_exchange(conversation, companion, "private words", text)
    reply.image = store_image(png_bytes(), companion, "generated")
    reply.save()
    PipelineRun.objects.create(
        conversation=conversation, turn=said.turn, companion=companion, reply=reply, status="completed"
    )
    return reply


@pytest.fixture(params=["direct", "group"])
def victim_objects(request, user, settings, tmp_path):
    """The victim's ids; ``conversation_id`` and ``message_id`` name a one-to-one chat and a reply in
    it, or a group and a reply in the group."""
    settings.MEDIA_ROOT = tmp_path
    companion = make_companion(user)
    chat = make_chat(companion, title="Private chat")
    direct_reply = picture_reply(chat, companion, text="private words")
    group = make_group_of(user, [companion, make_companion(user, name="Rin")], title="Victims")
    group_reply = picture_reply(group, companion, text="private words in a group")
    token, _ = tokens.token_create(user=user, name="victim")
    export = AccountExport.objects.create(
        owner=user, status="ready", file="exports/victim.zip", byte_size=1, expires_at=timezone.now() + DAY
    )
    conversation, message = (chat, direct_reply) if request.param == "direct" else (group, group_reply)
    book = Lorebook.objects.create(owner=user, name="Private lore")
    entry = LoreEntry.objects.create(lorebook=book, uid=0, keys=["secret"], content="private words")
    memory = Memory.objects.create(owner=user, companion=companion, text="private words")
    clip = SpeechClip.objects.create(
        message=message,
        index=0,
        text="private words",
        file="audio/x.wav",
        content_type="audio/wav",
        duration_ms=1,
        chars=13,
    )
    return {
        "clip_id": clip.pk,
        "memory_id": memory.pk,
        "lorebook_id": book.pk,
        "entry_id": entry.pk,
        "companion_id": companion.pk,
        "token_id": token.pk,
        "image_id": direct_reply.image_id,
        "group_id": group.pk,
        "conversation_id": conversation.pk,
        "message_id": message.pk,
        "export_id": export.pk,
    }


def snapshot():
    return (
        list(Companion.objects.values_list("pk", "name", "current_outfit", "header_image_id")),
        list(Conversation.objects.values_list("pk", "owner_id", "kind", "title", "replies_per_turn")),
        list(Participant.objects.values_list("pk", "conversation_id", "companion_id", "position")),
        list(
            Message.objects.values_list(
                "pk", "conversation_id", "content", "image_id", "alternatives", "edited_at"
            )
        ),
        list(Turn.objects.values_list("pk", "status", "order")),
        list(PipelineRun.objects.values_list("pk", "status")),
        list(StoredImage.objects.values_list("pk", flat=True)),
        list(ApiToken.objects.values_list("pk", "revoked_at")),
        list(AccountExport.objects.values_list("pk", "status", "file")),
        list(Lorebook.objects.values_list("pk", "name", "description", "scan_depth")),
        list(LoreEntry.objects.values_list("pk", "content", "keys", "enabled")),
        list(Conversation.lorebooks.through.objects.values_list("pk", flat=True)),
    )


PAYLOAD = {
    "content": "hijack",
    "name": "Hijacked",
    "title": "Hijacked",
    "before": "1",
    "confirm": "on",
    "replies_per_turn": "1",
}


@pytest.mark.parametrize(("name", "kwargs"), object_patterns())
def test_another_users_objects_are_not_found(client, other_user, victim_objects, name, kwargs):
    """GET and POST with the victim's ids: 404 for the method the page takes (405 for the other),
    nothing changes, nothing private shows."""
    mine = make_companion(other_user, name="Mine")
    client.force_login(other_user)
    url = reverse(name, kwargs={k: NOT_OBJECT_VALUES.get(k) or victim_objects[k] for k in kwargs})
    before = snapshot()
    statuses = {}
    for method in ("get", "post"):
        response = getattr(client, method)(url, {**PAYLOAD, "companions": [mine.pk]})
        statuses[method] = response.status_code
        assert b"private words" not in response.content, (url, method)
        assert b"Private chat" not in response.content and b"Victims" not in response.content
    assert set(statuses.values()) <= {404, 405}, (url, statuses)
    assert 404 in statuses.values(), (url, statuses)
    assert snapshot() == before


@pytest.mark.parametrize("name", MESSAGE_URLS)
def test_a_message_of_another_users_conversation_is_not_found_through_mine(
    client, user, other_user, settings, tmp_path, name
):
    """My own conversation's URL with the victim's message id: the message is looked up in mine."""
    settings.MEDIA_ROOT = tmp_path
    victim = make_companion(user)
    theirs = picture_reply(make_chat(victim), victim, text="private words")
    mine = make_companion(other_user, name="Mine")
    own_chat = make_chat(mine)
    picture_reply(own_chat, mine, text="my own words")
    client.force_login(other_user)
    before = snapshot()
    response = client.post(reverse(name, args=[own_chat.pk, theirs.pk]), PAYLOAD)
    assert response.status_code == 404, (name, response.status_code)
    assert b"private words" not in response.content
    assert snapshot() == before


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


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"companion": "companion_id"},
        {"conversation": "conversation_id"},
        {"conversation": "group_id"},
        {"author": "companion_id"},
    ],
)
def test_search_never_shows_another_users_messages(client, other_user, victim_objects, filters):
    """The search page over the victim's words, with their ids as filters: a 404 for a foreign
    id, and never a word, title or companion of theirs."""
    mine = make_companion(other_user, name="Mine")
    add_reply(make_chat(mine), mine, "my own words, not private")
    client.force_login(other_user)
    params = {"q": "private"}  # the box shows the query: the victim's words would be "private words"
    for name, key in filters.items():
        value = victim_objects[key]
        params[name] = f"c{value}" if name == "author" else value
    before = snapshot()
    response = client.get(reverse("search"), params)
    assert response.status_code == (404 if filters else 200)
    assert b"private words" not in response.content
    if not filters:  # the searcher's own message is found, and only it
        assert response.content.count(b"<mark>") == 1 and b"my own words" in response.content
    assert b"Private chat" not in response.content and b"Victims" not in response.content
    assert snapshot() == before
