"""Several chats per companion: start one, find the latest, rename, delete; their pages and sockets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from chat import events
from chat.conversations import (
    conversation_delete,
    conversation_for_companion,
    conversation_rename,
    conversation_start,
)
from chat.models import Conversation, Message, Participant, PipelineRun
from companionhub.errors import AppError
from tests.chat.factories import add_exchange, add_user_message, make_chat, make_group_of
from tests.companions.factories import make_companion


def aged(conversation: Conversation, minutes: int) -> Conversation:
    """Make ``conversation`` last active ``minutes`` ago."""
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=timezone.now() - timedelta(minutes=minutes)
    )
    conversation.refresh_from_db()
    return conversation


def live_run(conversation: Conversation, companion) -> PipelineRun:
    """A reply of ``companion`` being written in ``conversation`` right now."""
    said = add_user_message(conversation, "Still answering?")
    return PipelineRun.objects.create(
        conversation=conversation, turn=said.turn, companion=companion, status="running"
    )


# --- the services --------------------------------------------------------------------------


@pytest.mark.django_db
def test_start_makes_a_new_direct_chat_each_time(user, companion):
    first = conversation_start(user=user, companion=companion)
    second = conversation_start(user=user, companion=companion, title="  Beach day  ")
    assert first.pk != second.pk
    for conversation in (first, second):
        assert (conversation.owner_id, conversation.kind, conversation.is_group) == (user.pk, "direct", False)
        assert list(conversation.companions.all()) == [companion]
        assert list(Message.objects.filter(conversation=conversation).values_list("content", flat=True)) == [
            "Hey you!"
        ]
    assert (first.title, second.title) == ("", "Beach day")


@pytest.mark.django_db
def test_start_refuses_someone_elses_companion(user, other_user, companion):
    with pytest.raises(PermissionError):
        conversation_start(user=other_user, companion=companion)
    assert not Conversation.objects.exists()


@pytest.mark.django_db
def test_the_companions_latest_chat_is_started_only_when_it_has_none(user, companion):
    started = conversation_for_companion(user=user, companion=companion)
    assert conversation_for_companion(user=user, companion=companion) == started
    assert Conversation.objects.count() == 1
    assert Message.objects.filter(conversation=started).count() == 1  # one greeting, not two


@pytest.mark.django_db
def test_the_latest_chat_is_the_most_recently_active_one(user, companion):
    older = aged(make_chat(companion, title="Older"), 60)
    newer = aged(make_chat(companion, title="Newer"), 5)
    # A group with the companion, more recent still, is not its one-to-one chat.
    make_group_of(user, [companion, make_companion(user, name="Rin")])
    assert conversation_for_companion(user=user, companion=companion) == newer
    aged(older, 1)  # the older chat is written in again
    assert conversation_for_companion(user=user, companion=companion) == older
    assert Conversation.objects.filter(kind="direct").count() == 2


@pytest.mark.django_db
def test_the_latest_chat_is_the_companions_own(user, companion):
    """Another companion's chat, however recent, is not this companion's."""
    other = make_companion(user, name="Rin")
    mine = aged(make_chat(companion), 30)
    make_chat(other)
    assert conversation_for_companion(user=user, companion=companion) == mine


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("title", "stored"),
    [("  Beach day ", "Beach day"), ("", ""), ("x" * 100, "x" * 100)],
)
def test_rename(user, companion, title, stored):
    conversation = make_chat(companion, title="Old")
    assert conversation_rename(user=user, conversation=conversation, title=title).title == stored
    conversation.refresh_from_db()
    assert conversation.title == stored


@pytest.mark.django_db
@pytest.mark.parametrize("title", ["x" * 101, "Beach\x00day"])
def test_rename_refuses_a_long_title_or_a_nul(user, companion, title):
    conversation = make_chat(companion, title="Old")
    with pytest.raises(ValidationError):
        conversation_rename(user=user, conversation=conversation, title=title)
    conversation.refresh_from_db()
    assert conversation.title == "Old"


@pytest.mark.django_db
def test_a_group_keeps_a_title(user, companion):
    group = make_group_of(user, [companion, make_companion(user, name="Rin")], title="Crew")
    with pytest.raises(ValidationError):
        conversation_rename(user=user, conversation=group, title="   ")
    group.refresh_from_db()
    assert group.title == "Crew"


@pytest.mark.django_db
def test_only_the_owner_renames_or_deletes(user, other_user, companion):
    conversation = make_chat(companion, title="Mine")
    with pytest.raises(PermissionError):
        conversation_rename(user=other_user, conversation=conversation, title="Theirs")
    with pytest.raises(PermissionError):
        conversation_delete(user=other_user, conversation=conversation)
    conversation.refresh_from_db()
    assert conversation.title == "Mine"


@pytest.mark.django_db
def test_delete_takes_the_chat_and_only_the_chat(user, companion):
    rin = make_companion(user, name="Rin")
    doomed, kept = make_chat(companion), make_chat(companion)
    group = make_group_of(user, [companion, rin])
    for conversation in (doomed, kept, group):
        add_exchange(conversation, companion, "Hi", "Hello")
    conversation_delete(user=user, conversation=doomed)
    assert not Conversation.objects.filter(pk=doomed.pk).exists()
    assert not Message.objects.filter(conversation_id=doomed.pk).exists()
    for conversation in (kept, group):
        assert Message.objects.filter(conversation=conversation).count() == 2
    assert Participant.objects.filter(conversation=group).count() == 2
    companion.refresh_from_db()  # the companion stays


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["direct", "group"])
def test_delete_is_refused_while_a_reply_is_being_written(user, companion, kind):
    if kind == "group":
        conversation = make_group_of(user, [companion, make_companion(user, name="Rin")])
    else:
        conversation = make_chat(companion)
    live_run(conversation, companion)
    with pytest.raises(AppError) as refused:
        conversation_delete(user=user, conversation=conversation)
    assert refused.value.code == "busy"
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    PipelineRun.objects.update(status="cancelled")
    conversation_delete(user=user, conversation=conversation)
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


# --- the pages ------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_new_chat_starts_a_chat_with_the_greeting_and_opens_it(signed_in, user, companion):
    existing = make_chat(companion, title="First")
    response = signed_in.post(reverse("chat:new", args=[companion.pk]))
    made = Conversation.objects.exclude(pk=existing.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[made.pk])
    assert list(made.messages.values_list("content", flat=True)) == ["Hey you!"]
    page = signed_in.get(response["Location"])
    assert page.status_code == 200 and "Hey you!" in page.content.decode()


@pytest.mark.django_db
def test_new_chat_is_a_post_of_the_owner(client, signed_in, other_user, companion):
    assert signed_in.get(reverse("chat:new", args=[companion.pk])).status_code == 405
    client.force_login(other_user)
    assert client.post(reverse("chat:new", args=[companion.pk])).status_code == 404
    assert not Conversation.objects.exists()


@pytest.mark.django_db
def test_new_chats_count_against_the_settings_change_limit(signed_in, rate_limits, companion):
    allowed = int(rate_limits["settings_change"].split("/")[0])
    for _ in range(allowed):
        assert signed_in.post(reverse("chat:new", args=[companion.pk])).status_code == 302
    response = signed_in.post(reverse("chat:new", args=[companion.pk]))
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert Conversation.objects.count() == allowed


@pytest.mark.django_db
def test_the_chats_page_lists_every_chat_of_the_companion(signed_in, user, companion):
    rin = make_companion(user, name="Rin")
    chats = [make_chat(companion, title="Beach day"), make_chat(companion, title="Rainy day")]
    group = make_group_of(user, [companion, rin], title="Crew")
    rins_own = make_chat(rin, title="Only Rin")
    response = signed_in.get(reverse("chat:chats", args=[companion.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    for conversation in (*chats, group):
        assert f'data-chat-id="{conversation.pk}"' in page
        assert reverse("chat:conversation", args=[conversation.pk]) in page
    assert f'data-chat-id="{rins_own.pk}"' not in page and "Only Rin" not in page
    assert reverse("chat:new", args=[companion.pk]) in page


@pytest.mark.django_db
def test_the_chats_page_is_the_owners_and_a_get(client, signed_in, other_user, companion):
    assert signed_in.post(reverse("chat:chats", args=[companion.pk])).status_code == 405
    client.force_login(other_user)
    assert client.get(reverse("chat:chats", args=[companion.pk])).status_code == 404


@pytest.mark.django_db
def test_a_conversation_page_shows_that_chat(signed_in, companion):
    shown = make_chat(companion, title="Beach day")
    add_exchange(shown, companion, "Shall we swim?", "Race you!")
    other = make_chat(companion, title="Rainy day")
    add_exchange(other, companion, "Tea?", "Yes please.")
    response = signed_in.get(reverse("chat:conversation", args=[shown.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Shall we swim?" in page and "Race you!" in page
    assert "Tea?" not in page
    assert f"/ws/conversation/{shown.pk}/" in page


@pytest.mark.django_db
def test_a_conversation_page_is_the_owners_and_a_get(client, signed_in, other_user, companion):
    conversation = make_chat(companion)
    url = reverse("chat:conversation", args=[conversation.pk])
    assert signed_in.post(url).status_code == 405
    client.force_login(other_user)
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302  # to the sign-in page


@pytest.mark.django_db
def test_the_companions_page_opens_its_latest_chat(signed_in, companion):
    old = aged(make_chat(companion, greeting="An old hello"), 60)
    newest = make_chat(companion, greeting="The newest hello")
    response = signed_in.get(reverse("chat:page", args=[companion.pk]))
    assert response.context["conversation"] == newest
    shown = [m.content for m in response.context["history"]]
    assert shown == ["The newest hello"]
    assert f'data-chat-id="{old.pk}"' in response.content.decode()  # the other chat is a click away
    assert Conversation.objects.count() == 2


@pytest.mark.django_db
def test_rename_page(client, signed_in, other_user, companion):
    conversation = make_chat(companion, title="Old")
    url = reverse("chat:rename", args=[conversation.pk])
    response = signed_in.post(url, {"title": "  New  "})
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[conversation.pk])
    conversation.refresh_from_db()
    assert conversation.title == "New"
    response = signed_in.post(url, {"title": "x" * 101}, follow=True)
    assert "at most 100 characters" in response.content.decode()
    assert signed_in.get(url).status_code == 405
    client.force_login(other_user)
    assert client.post(url, {"title": "Theirs"}).status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == "New"


@pytest.mark.django_db
def test_delete_page_asks_first_then_deletes(signed_in, companion):
    doomed, kept = make_chat(companion, title="Doomed"), make_chat(companion, title="Kept")
    url = reverse("chat:delete", args=[doomed.pk])
    asked = signed_in.get(url)
    assert asked.status_code == 200 and "Doomed" in asked.content.decode()
    assert Conversation.objects.filter(pk=doomed.pk).exists()
    response = signed_in.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:chats", args=[companion.pk])
    assert list(Conversation.objects.all()) == [kept]


@pytest.mark.django_db
def test_delete_page_refuses_while_answering(signed_in, companion):
    conversation = make_chat(companion)
    live_run(conversation, companion)
    response = signed_in.post(reverse("chat:delete", args=[conversation.pk]), follow=True)
    assert "still being written" in response.content.decode()
    assert Conversation.objects.filter(pk=conversation.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_delete_page_is_the_owners(client, other_user, companion, method):
    conversation = make_chat(companion)
    client.force_login(other_user)
    assert getattr(client, method)(reverse("chat:delete", args=[conversation.pk])).status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk).exists()


# --- the sockets ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_companion_route_opens_its_most_recent_chat(connect, user, companion):
    older = await sync_to_async(lambda: aged(make_chat(companion), 60))()
    newer = await sync_to_async(lambda: aged(make_chat(companion), 5))()
    client = await connect(companion.pk, user=user)
    assert client.events[0]["conversation"]["id"] == newer.pk
    await sync_to_async(aged)(older, 1)
    client = await connect(companion.pk, user=user)
    assert client.events[0]["conversation"]["id"] == older.pk
    assert await sync_to_async(Conversation.objects.count)() == 2  # none started


@pytest.mark.django_db(transaction=True)
async def test_the_conversation_route_opens_the_owners_chat(connect_conversation, user, companion):
    older = await sync_to_async(lambda: aged(make_chat(companion, title="Older"), 60))()
    await sync_to_async(make_chat)(companion)
    client = await connect_conversation(older.pk, user=user)
    assert client.accepted
    snapshot = client.events[0]
    assert snapshot["type"] == "snapshot"
    assert (snapshot["conversation"]["id"], snapshot["conversation"]["title"]) == (older.pk, "Older")
    assert snapshot["companion"]["id"] == companion.pk


@pytest.mark.django_db(transaction=True)
async def test_the_conversation_route_serves_groups(connect_conversation, user, companion):
    rin = await sync_to_async(make_companion)(user, name="Rin")
    group = await sync_to_async(make_group_of)(user, [companion, rin], title="Crew")
    client = await connect_conversation(group.pk, user=user)
    snapshot = client.events[0]
    assert snapshot["type"] == "group.snapshot"
    assert snapshot["conversation"]["kind"] == "group"
    assert [c["name"] for c in snapshot["group"]["companions"]] == ["Mika", "Rin"]


@pytest.mark.django_db(transaction=True)
async def test_another_users_conversation_looks_missing(
    connect, connect_conversation, user, other_user, companion
):
    conversation = await sync_to_async(make_chat)(companion)
    rin = await sync_to_async(make_companion)(user, name="Rin")
    group = await sync_to_async(make_group_of)(user, [companion, rin])
    for path in (
        f"/ws/conversation/{conversation.pk}/",
        f"/ws/conversation/{group.pk}/",
        f"/ws/group/{group.pk}/",
    ):
        client = await connect(None, user=other_user, path=path)
        assert (client.accepted, client.close_code) == (False, events.CLOSE_NOT_FOUND)
    missing = await connect_conversation(987654, user=user)
    assert missing.close_code == events.CLOSE_NOT_FOUND
    anonymous = await connect_conversation(conversation.pk)
    assert anonymous.close_code == events.CLOSE_UNAUTHENTICATED


@pytest.mark.django_db(transaction=True)
async def test_the_group_route_refuses_a_direct_chat(connect, user, companion):
    conversation = await sync_to_async(make_chat)(companion)
    client = await connect(None, user=user, path=f"/ws/group/{conversation.pk}/")
    assert (client.accepted, client.close_code) == (False, events.CLOSE_NOT_FOUND)


@pytest.mark.django_db(transaction=True)
async def test_a_group_takes_every_frame(connect_conversation, user, companion):
    """One consumer for every chat: no frame is "unknown" in a group (as ``message.edit``,
    ``run.retry`` and the picture frames were on the old group socket)."""
    rin = await sync_to_async(make_companion)(user, name="Rin")
    group = await sync_to_async(make_group_of)(user, [companion, rin])
    client = await connect_conversation(group.pk, user=user)
    for kind in sorted(events.CLIENT_FRAMES):
        await client.send({"type": kind})
        answer = await client.receive()
        assert answer.get("code") != "unknown_type", (kind, answer)


@pytest.mark.django_db(transaction=True)
async def test_a_message_goes_to_the_chat_the_socket_names(
    worker, use_fake_llm, connect_conversation, user, companion
):
    """Two chats with one companion: each socket writes in its own, and the LLM hears only that one."""
    first = await sync_to_async(make_chat)(companion, title="First")
    await sync_to_async(add_exchange)(first, companion, "Remember the beach?", "How could I forget!")
    second = await sync_to_async(make_chat)(companion, title="Second")  # the latest
    client = await connect_conversation(first.pk, user=user)
    use_fake_llm.set_reply("Of course.")
    await client.send({"type": "message.send", "content": "Tell me again."})
    await client.receive_until("turn.done")
    said = await sync_to_async(
        lambda: {
            c.title: list(c.messages.values_list("content", flat=True)) for c in Conversation.objects.all()
        }
    )()
    assert said == {
        "First": ["Remember the beach?", "How could I forget!", "Tell me again.", "Of course."],
        "Second": [],
    }
    streamed = next(r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream"))
    assert [m["content"] for m in streamed["messages"] if m["role"] != "system"] == [
        "Remember the beach?",
        "How could I forget!",
        "Tell me again.",
    ]
    assert second.pk != first.pk
