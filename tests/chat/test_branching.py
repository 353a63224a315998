"""Branching: a new conversation goes on from any message; the original stays as it was."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from django.utils import timezone

from chat.conversations import conversation_branch
from chat.models import Conversation, Message, Participant, PipelineRun, Turn
from companionhub.errors import AppError
from media.services import store_image
from tests.chat.factories import add_reply, add_user_message, make_chat, make_group
from tests.companions.factories import make_companion, png_bytes

COPIED = (
    "role",
    "sender_id",
    "content",
    "reasoning",
    "image_id",
    "alternatives",
    "is_complete",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "created_at",
    "edited_at",
)


def story(companion, *, title: str = "") -> tuple[Conversation, dict[str, Message]]:
    """A chat: the greeting (two versions), two exchanges; the first reply has everything a
    message can carry (versions, reasoning, a picture, a correction)."""
    conversation = make_chat(companion, title=title)
    rows = {
        "greeting": add_reply(conversation, companion, "Hey you!", alternatives=["Hi there!"]),
        "said": add_user_message(conversation, "Shall we go to the beach?"),
        "reply": add_reply(
            conversation,
            companion,
            "Yes! *grabs a towel*",
            reasoning="They like the sea.",
            alternatives=["Sure."],
            image=store_image(png_bytes(), companion, "generated", prompt="Mika at the beach"),
            finish_reason="length",
            prompt_tokens=12,
            completion_tokens=7,
            edited_at=timezone.now(),
        ),
        "later": add_user_message(conversation, "Race you to the water!"),
        "last": add_reply(conversation, companion, "You're on!"),
    }
    return conversation, rows


def fields(message: Message) -> tuple:
    return tuple(getattr(message, name) for name in COPIED)


def history(conversation: Conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("created_at", "pk"))


def everything(conversation: Conversation) -> tuple:
    """The conversation's rows, to compare before and after."""
    conversation.refresh_from_db()
    turns = list(Turn.objects.filter(conversation=conversation).values_list("message_id", "order", "status"))
    return (
        (conversation.title, conversation.branched_from_id),
        [fields(m) for m in history(conversation)],
        turns,
    )


# --- the service ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_branch_holds_the_history_up_to_and_including_the_message(user, companion):
    original, rows = story(companion, title="Beach day")
    before = everything(original)
    branch = conversation_branch(user=user, conversation=original, message_id=rows["reply"].pk)
    assert branch.pk != original.pk
    assert (branch.owner_id, branch.kind, branch.title) == (user.pk, "direct", "Beach day (branch)")
    assert branch.branched_from_id == rows["reply"].pk
    assert list(branch.companions.all()) == [companion]
    copied = history(branch)
    assert [fields(m) for m in copied] == [fields(rows[name]) for name in ("greeting", "said", "reply")]
    assert not {m.pk for m in copied} & {m.pk for m in history(original)}  # copies, not moved
    # The user's message keeps its turn (who answered it), over and done with.
    [turn] = Turn.objects.filter(conversation=branch)
    assert (turn.message_id, turn.order, turn.status) == (copied[1].pk, [companion.pk], "done")
    assert not PipelineRun.objects.filter(conversation=branch).exists()
    assert everything(original) == before  # the original is untouched


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("", "Mika (branch)"),  # an untitled chat is named after its companion
        ("Beach day (branch)", "Beach day (branch) (branch)"),
        ("x" * 100, "x" * 91 + " (branch)"),  # cut to fit the 100 characters a title has
    ],
)
def test_the_branch_is_titled_after_the_original(user, companion, title, expected):
    original, rows = story(companion, title=title)
    branch = conversation_branch(user=user, conversation=original, message_id=rows["said"].pk)
    assert branch.title == expected
    assert len(branch.title) <= 100


@pytest.mark.django_db
def test_branching_at_the_first_or_the_last_message(user, companion):
    original, rows = story(companion)
    at_greeting = conversation_branch(user=user, conversation=original, message_id=rows["greeting"].pk)
    assert [m.content for m in history(at_greeting)] == ["Hey you!"]
    assert not Turn.objects.filter(conversation=at_greeting).exists()
    at_end = conversation_branch(user=user, conversation=original, message_id=rows["last"].pk)
    assert [fields(m) for m in history(at_end)] == [fields(m) for m in history(original)]
    assert Turn.objects.filter(conversation=at_end).count() == 2


@pytest.mark.django_db
def test_a_group_branches_with_its_members_and_settings(user):
    group = make_group(user, "Mika", "Rin", "Aya", title="Crew", replies_per_turn=2)
    mika, rin, aya = (group.companions.get(name=name) for name in ("Mika", "Rin", "Aya"))
    said = add_user_message(group, "Hello all", order=[rin.pk, aya.pk])
    add_reply(group, rin, "Hi!")
    target = add_reply(group, aya, "Hey!")
    add_user_message(group, "Later")
    branch = conversation_branch(user=user, conversation=group, message_id=target.pk)
    assert (branch.kind, branch.title, branch.replies_per_turn) == ("group", "Crew (branch)", 2)
    standing = list(Participant.objects.filter(conversation=branch).values_list("companion_id", "position"))
    assert standing == list(
        Participant.objects.filter(conversation=group).values_list("companion_id", "position")
    )
    assert [(m.sender_id, m.content) for m in history(branch)] == [
        (None, "Hello all"),
        (rin.pk, "Hi!"),
        (aya.pk, "Hey!"),
    ]
    assert list(Turn.objects.filter(conversation=branch).values_list("order", flat=True)) == [
        [rin.pk, aya.pk]
    ]
    assert said.turn.order == [rin.pk, aya.pk] and mika.pk not in said.turn.order


@pytest.mark.django_db
@pytest.mark.parametrize("message_id", ["elsewhere", "theirs", "1", True, 0, -1, 2**63, None, 1.0])
def test_only_a_message_of_this_conversation_can_be_branched(user, other_user, companion, message_id):
    original, _ = story(companion)
    if message_id == "elsewhere":  # the same owner's other chat with the same companion
        message_id = add_reply(make_chat(companion), companion, "Elsewhere").pk
    elif message_id == "theirs":
        theirs = make_companion(other_user)
        message_id = add_reply(make_chat(theirs), theirs, "Not yours").pk
    count = Conversation.objects.count()
    with pytest.raises(AppError) as refused:
        conversation_branch(user=user, conversation=original, message_id=message_id)
    assert refused.value.code == "not_found"
    assert Conversation.objects.count() == count


@pytest.mark.django_db
def test_only_the_owner_branches(user, other_user, companion):
    original, rows = story(companion)
    with pytest.raises(PermissionError):
        conversation_branch(user=other_user, conversation=original, message_id=rows["reply"].pk)
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_a_reply_still_being_written_cannot_be_branched_yet(user, companion):
    original, rows = story(companion)
    said = add_user_message(original, "One more?")
    writing = add_reply(original, companion, "Let me th", is_complete=False)
    run = PipelineRun.objects.create(
        conversation=original, turn=said.turn, companion=companion, reply=writing, status="running"
    )
    with pytest.raises(AppError) as refused:
        conversation_branch(user=user, conversation=original, message_id=writing.pk)
    assert refused.value.code == "busy"
    # An earlier, finished message can be branched meanwhile: the branch has nothing live.
    branch = conversation_branch(user=user, conversation=original, message_id=rows["last"].pk)
    assert len(history(branch)) == 5
    # Once the reply has ended (cut short), what there is of it can be branched.
    PipelineRun.objects.filter(pk=run.pk).update(status="cancelled")
    branch = conversation_branch(user=user, conversation=original, message_id=writing.pk)
    assert (history(branch)[-1].content, history(branch)[-1].is_complete) == ("Let me th", False)


@pytest.mark.django_db
def test_branching_counts_against_the_settings_change_limit(user, companion, rate_limits):
    original, rows = story(companion)
    allowed = int(rate_limits["settings_change"].split("/")[0])
    for _ in range(allowed):
        conversation_branch(user=user, conversation=original, message_id=rows["reply"].pk)
    with pytest.raises(AppError) as refused:
        conversation_branch(user=user, conversation=original, message_id=rows["reply"].pk)
    assert refused.value.code == "rate_limited" and refused.value.retry_after > 0
    assert Conversation.objects.count() == 1 + allowed


# --- over the socket ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_branch_frame_answers_with_the_new_conversation(connect, user, companion):
    original, rows = await sync_to_async(story)(companion, title="Beach day")
    tab, other_tab = await connect(companion.pk, user=user), await connect(companion.pk, user=user)
    await tab.send({"type": "conversation.branch", "message_id": rows["reply"].pk, "client_id": "b1"})
    answer = await tab.receive()
    branch = await sync_to_async(Conversation.objects.exclude(pk=original.pk).get)()
    assert answer == {
        "type": "conversation.branched",
        "client_id": "b1",
        "conversation_id": branch.pk,
        "url": reverse("chat:conversation", args=[branch.pk]),
    }
    assert await other_tab.nothing_more()  # only the socket that asked is answered
    assert branch.title == "Beach day (branch)"


@pytest.mark.django_db(transaction=True)
async def test_the_branchs_snapshot_links_back(connect_conversation, user, companion):
    original, rows = await sync_to_async(story)(companion)
    branch = await sync_to_async(conversation_branch)(
        user=user, conversation=original, message_id=rows["reply"].pk
    )
    client = await connect_conversation(branch.pk, user=user)
    assert client.events[0]["conversation"]["branched_from"] == {
        "conversation_id": original.pk,
        "message_id": rows["reply"].pk,
    }


@pytest.mark.django_db(transaction=True)
async def test_the_branch_frame_refuses_what_is_not_here(connect_conversation, user, other_user, companion):
    original, _ = await sync_to_async(story)(companion)

    @sync_to_async
    def elsewhere():
        theirs = make_companion(other_user)
        return add_reply(make_chat(companion), companion, "Mine").pk, add_reply(
            make_chat(theirs), theirs, "Theirs"
        ).pk

    mine_elsewhere, theirs = await elsewhere()
    client = await connect_conversation(original.pk, user=user)
    for message_id in (mine_elsewhere, theirs, 0, 2**70):
        await client.send({"type": "conversation.branch", "message_id": message_id})
        assert (await client.receive())["code"] == "not_found"
    await client.send({"type": "conversation.branch", "message_id": "1"})
    assert (await client.receive())["code"] == "bad_frame"
    assert await sync_to_async(Conversation.objects.filter(branched_from__isnull=False).count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_the_branch_frame_is_rate_limited(connect, user, companion, rate_limits):
    _, rows = await sync_to_async(story)(companion)
    client = await connect(companion.pk, user=user)
    allowed = int(rate_limits["settings_change"].split("/")[0])
    for _ in range(allowed):
        await client.send({"type": "conversation.branch", "message_id": rows["said"].pk})
        assert (await client.receive())["type"] == "conversation.branched"
    await client.send({"type": "conversation.branch", "message_id": rows["said"].pk})
    refused = await client.receive()
    assert (refused["type"], refused["code"]) == ("error", "rate_limited") and refused["retry_after"] > 0


@pytest.mark.django_db(transaction=True)
async def test_both_chats_go_on_independently(worker, use_fake_llm, connect_conversation, user, companion):
    original, rows = await sync_to_async(story)(companion)
    tab = await connect_conversation(original.pk, user=user)
    await tab.send({"type": "conversation.branch", "message_id": rows["reply"].pk})
    branch_id = (await tab.receive())["conversation_id"]
    branch_tab = await connect_conversation(branch_id, user=user)

    def sent_history() -> list[str]:
        streamed = [r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream")][-1]
        return [m["content"] for m in streamed["messages"] if m["role"] != "system"]

    use_fake_llm.set_reply("Somewhere else, then.")
    await branch_tab.send({"type": "message.send", "content": "Actually, the mountains?"})
    branch_accepted = await branch_tab.receive_until("message.accepted")
    await branch_tab.receive_until("turn.done")
    assert sent_history() == [
        "Hey you!",
        "Shall we go to the beach?",
        "Yes! *grabs a towel*",
        "Actually, the mountains?",
    ]
    use_fake_llm.set_reply("Splash!")
    await tab.send({"type": "message.send", "content": "I won!"})
    await tab.receive_until("turn.done")
    assert sent_history()[-3:] == ["Race you to the water!", "You're on!", "I won!"]
    assert "Actually, the mountains?" not in sent_history()
    # Each tab heard only its own chat.
    assert branch_accepted["run_id"] not in {e.get("run_id") for e in tab.events}

    @sync_to_async
    def contents(conversation_id):
        return list(Message.objects.filter(conversation_id=conversation_id).values_list("content", flat=True))

    assert (await contents(branch_id))[-2:] == ["Actually, the mountains?", "Somewhere else, then."]
    assert (await contents(original.pk))[-4:] == ["Race you to the water!", "You're on!", "I won!", "Splash!"]


# --- the page without JavaScript ------------------------------------------------------------


@pytest.mark.django_db
def test_the_branch_button_opens_the_new_chat(client, user, companion):
    original, rows = story(companion)
    client.force_login(user)
    response = client.post(reverse("chat:branch", args=[original.pk, rows["reply"].pk]))
    branch = Conversation.objects.exclude(pk=original.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[branch.pk])
    page = client.get(response["Location"]).content.decode()
    assert "data-branched-from" in page
    assert f"{reverse('chat:conversation', args=[original.pk])}#message-{rows['reply'].pk}" in page


@pytest.mark.django_db
def test_the_branch_page_is_the_owners_for_a_message_here(client, user, other_user, companion):
    original, rows = story(companion)
    elsewhere = add_reply(make_chat(companion), companion, "Elsewhere")
    url = reverse("chat:branch", args=[original.pk, rows["reply"].pk])
    client.force_login(user)
    page = client.get(url)  # without JavaScript: the message and its Branch here button; nothing made
    assert page.status_code == 200 and b"Branch here</button>" in page.content
    assert client.get(reverse("chat:branch", args=[original.pk, elsewhere.pk])).status_code == 404
    assert client.post(reverse("chat:branch", args=[original.pk, elsewhere.pk])).status_code == 404
    client.force_login(other_user)
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert not Conversation.objects.filter(branched_from__isnull=False).exists()


@pytest.mark.django_db
def test_the_branch_button_is_rate_limited(client, user, companion, rate_limits):
    original, rows = story(companion)
    client.force_login(user)
    url = reverse("chat:branch", args=[original.pk, rows["reply"].pk])
    allowed = int(rate_limits["settings_change"].split("/")[0])
    for _ in range(allowed):
        assert client.post(url).status_code == 302
    response = client.post(url)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
