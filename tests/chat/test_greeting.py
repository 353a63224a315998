"""A new chat opens with the companion's greeting: macros filled, the card's alternates as versions."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.conversations import conversation_start
from chat.models import Message
from tests.companions.factories import make_companion

CARD = {
    "card": {
        # Blank and non-text entries (an imported card can hold anything) are left out.
        "alternate_greetings": ["Hello {{user}}! *waves*", "  ", 5, "<USER>? It's me, <BOT>."],
    }
}
SHOWN = "Hi {{user}}, I am {{char}}."


@pytest.fixture
def card_companion(user):
    return make_companion(user, greeting=SHOWN, config=CARD)


def greetings(conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("pk"))


@pytest.mark.django_db
def test_a_new_chat_opens_with_the_greeting_and_its_alternates_as_versions(card_companion, user):
    conversation = conversation_start(user=user, companion=card_companion)
    [greeting] = greetings(conversation)
    assert (greeting.role, greeting.sender_id) == ("assistant", card_companion.pk)
    assert greeting.content == "Hi Alice, I am Mika."
    assert greeting.alternatives == ["Hello Alice! *waves*", "Alice? It's me, Mika."]
    assert greeting.versions == 3
    assert (greeting.is_complete, greeting.edited_at) == (True, None)
    # The names go in when the chat starts; the companion keeps its placeholders for other users.
    card_companion.refresh_from_db()
    assert card_companion.greeting == SHOWN
    assert card_companion.config["card"]["alternate_greetings"][0] == "Hello {{user}}! *waves*"


@pytest.mark.django_db
def test_the_user_is_named_by_username_without_a_display_name(make_user):
    bob = make_user(username="bob", display_name="")
    conversation = conversation_start(user=bob, companion=make_companion(bob, greeting="Hey {{user}}!"))
    assert [m.content for m in greetings(conversation)] == ["Hey bob!"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("greeting", "config", "expected"),
    [
        ("", {}, []),
        ("   ", {"card": {"alternate_greetings": []}}, []),
        (
            "",
            {"card": {"alternate_greetings": ["Only {{char}}'s alternate"]}},
            [("Only Mika's alternate", [])],
        ),
        ("Hey you!", {"card": {"alternate_greetings": "not a list"}}, [("Hey you!", [])]),
        ("Hey you!", {"card": "not an object"}, [("Hey you!", [])]),
    ],
)
def test_without_a_greeting_a_chat_starts_empty(user, greeting, config, expected):
    companion = make_companion(user, greeting=greeting, config=config)
    conversation = conversation_start(user=user, companion=companion)
    assert [(m.content, m.alternatives) for m in greetings(conversation)] == expected


@pytest.mark.django_db
def test_every_new_chat_gets_its_own_greeting(card_companion, user):
    first = conversation_start(user=user, companion=card_companion)
    second = conversation_start(user=user, companion=card_companion)
    assert first.pk != second.pk
    assert [m.content for m in greetings(first)] == [m.content for m in greetings(second)]
    assert greetings(first)[0].pk != greetings(second)[0].pk


@pytest.mark.django_db(transaction=True)
async def test_the_greeting_flips_versions_before_the_user_has_spoken(connect, card_companion, user):
    tab, other_tab = await connect(card_companion.pk, user=user), await connect(card_companion.pk, user=user)
    greeting = await sync_to_async(Message.objects.get)(sender=card_companion)
    shown = []
    for _ in range(3):
        await tab.send({"type": "message.alternative", "message_id": greeting.pk})
        updated = await tab.receive()
        assert updated == await other_tab.receive()  # every open tab hears it
        assert (updated["type"], updated["message_id"], updated["versions"]) == (
            "message.updated",
            greeting.pk,
            3,
        )
        assert "edited" not in updated  # a version shown, not a correction
        shown.append(updated["content"])
    # The versions rotate and none is lost: the third flip is back at the first greeting.
    assert shown == ["Hello Alice! *waves*", "Alice? It's me, Mika.", "Hi Alice, I am Mika."]
    await greeting.arefresh_from_db()
    assert greeting.content == "Hi Alice, I am Mika."
    assert sorted(greeting.alternatives) == ["Alice? It's me, Mika.", "Hello Alice! *waves*"]


@pytest.mark.django_db(transaction=True)
async def test_a_single_greeting_has_no_other_version(connect, companion, user):
    client = await connect(companion.pk, user=user)
    greeting = await sync_to_async(Message.objects.get)(sender=companion)
    await client.send({"type": "message.alternative", "message_id": greeting.pk})
    assert (await client.receive())["code"] == "no_alternatives"


@pytest.mark.django_db(transaction=True)
async def test_the_llm_hears_the_greeting_version_the_user_chose(
    worker, use_fake_llm, connect, card_companion, user
):
    client = await connect(card_companion.pk, user=user)
    greeting = await sync_to_async(Message.objects.get)(sender=card_companion)
    await client.send({"type": "message.alternative", "message_id": greeting.pk})
    await client.receive_until("message.updated")
    use_fake_llm.set_reply("Hello again.")
    await client.send({"type": "message.send", "content": "Hi!"})
    await client.receive_until("turn.done")
    streamed = next(r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream"))
    assert [m for m in streamed["messages"] if m["role"] != "system"] == [
        {"role": "assistant", "content": "Hello Alice! *waves*"},
        {"role": "user", "content": "Hi!"},
    ]
    # Once the user has spoken, the greeting still flips: it is a message with versions like any other.
    await client.send({"type": "message.alternative", "message_id": greeting.pk})
    assert (await client.receive_until("message.updated"))["content"] == "Alice? It's me, Mika."
