"""Regenerate, edit, continue, delete and flip versions over the websocket, on a real worker."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from tests.chat.factories import add_reply, chat_of, make_chat
from tests.chat.frames import unnumbered
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db(transaction=True)

GREETING = ("assistant", "Hey you!")  # every chat opened over /ws/chat/<id>/ starts with it


def _messages(companion_id):
    return Message.objects.filter(conversation__participants__companion_id=companion_id).order_by(
        "created_at", "pk"
    )


@sync_to_async
def contents(companion_id):
    return list(_messages(companion_id).values_list("role", "content"))


@sync_to_async
def reply_row(companion_id):
    return _messages(companion_id).filter(role="assistant").last()


async def turn(client, frame):
    await client.send(frame)
    await client.receive_until("message.accepted")
    return await client.receive_until("done")


async def test_regenerate_keeps_the_old_reply_as_a_version(worker, use_fake_llm, connect, companion, user):
    client = await connect(companion.pk, user=user)
    use_fake_llm.set_reply("First answer.")
    first = await turn(client, {"type": "message.send", "content": "Hi"})
    use_fake_llm.set_reply("Second answer.")
    second = await turn(client, {"type": "message.regenerate"})
    assert second["message_id"] == first["message_id"]  # the same reply, rewritten
    assert await contents(companion.pk) == [GREETING, ("user", "Hi"), ("assistant", "Second answer.")]
    reply = await reply_row(companion.pk)
    assert reply.alternatives == ["First answer."]
    # Flip back: every tab hears about it.
    await client.send({"type": "message.alternative", "message_id": reply.pk})
    updated = unnumbered(await client.receive_until("message.updated"))
    assert updated == {
        "type": "message.updated",
        "message_id": reply.pk,
        "content": "First answer.",
        "versions": 2,
    }
    reply = await reply_row(companion.pk)
    assert reply.content == "First answer." and reply.alternatives == ["Second answer."]


async def test_edit_replaces_the_last_message_and_its_answer(worker, use_fake_llm, connect, companion, user):
    client = await connect(companion.pk, user=user)
    use_fake_llm.set_reply("Answer to a typo.")
    await turn(client, {"type": "message.send", "content": "Helo"})
    use_fake_llm.set_reply("Answer to hello.")
    await turn(client, {"type": "message.edit", "content": "Hello"})
    assert await contents(companion.pk) == [GREETING, ("user", "Hello"), ("assistant", "Answer to hello.")]
    streamed = [r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream")]
    assert streamed[-1]["messages"][-1] == {"role": "user", "content": "Hello"}


async def test_a_resend_meant_for_an_older_message_is_refused(worker, use_fake_llm, connect, companion, user):
    """Another tab said something since this one began editing: a resend must not overwrite that."""
    client = await connect(companion.pk, user=user)
    use_fake_llm.set_reply("Answer.")
    await client.send({"type": "message.send", "content": "First"})
    first = await client.receive_until("message.accepted")
    await client.receive_until("done")
    await turn(client, {"type": "message.send", "content": "Second, from the other tab"})
    before = await contents(companion.pk)
    frame = {"type": "message.edit", "content": "First, fixed", "message_id": first["message_id"]}
    await client.send({**frame, "resend": True})
    assert (await client.receive_until("error"))["code"] == "not_latest"
    assert await contents(companion.pk) == before
    await client.send({"type": "message.edit", "content": "Hi", "message_id": "1"})
    assert (await client.receive_until("error"))["code"] == "bad_frame"
    # Naming the message that is still the last one resends it.
    second = await sync_to_async(Message.objects.get)(content="Second, from the other tab")
    await turn(client, {"type": "message.edit", "content": "Second, fixed", "message_id": second.pk})
    assert (await contents(companion.pk))[-2:] == [("user", "Second, fixed"), ("assistant", "Answer.")]


async def test_a_reply_cut_at_the_limit_can_be_continued(worker, use_fake_llm, connect, user):
    companion = await sync_to_async(make_companion)(user, config={"max_reply_tokens": 64})
    client = await connect(companion.pk, user=user)
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(100)))
    done = await turn(client, {"type": "message.send", "content": "Talk"})
    assert done["finish_reason"] == "length"
    cut = (await reply_row(companion.pk)).content
    use_fake_llm.set_reply(" and the rest.")
    tokens_before = len(client.of_type("token"))
    done = await turn(client, {"type": "message.continue"})
    assert done["finish_reason"] == "stop"
    reply = await reply_row(companion.pk)
    assert reply.content == cut + " and the rest."
    assert [role for role, _ in await contents(companion.pk)] == ["assistant", "user", "assistant"]
    new_tokens = client.of_type("token")[tokens_before:]
    assert new_tokens[0]["offset"] == len(cut)  # the stream carries on where the reply stopped
    sent = [r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream")][-1]["messages"]
    assert sent[-2] == {"role": "assistant", "content": cut}


async def test_only_a_cut_reply_can_be_continued(worker, use_fake_llm, connect, companion, user):
    client = await connect(companion.pk, user=user)
    await turn(client, {"type": "message.send", "content": "Hi"})
    await client.send({"type": "message.continue"})
    assert (await client.receive_until("error"))["code"] == "nothing_to_continue"


async def test_delete_a_message(worker, use_fake_llm, connect, companion, user):
    client = await connect(companion.pk, user=user)
    await turn(client, {"type": "message.send", "content": "Forget this"})
    user_message = await sync_to_async(Message.objects.get)(content="Forget this")
    await client.send({"type": "message.delete", "message_id": user_message.pk})
    event = await client.receive_until("message.deleted")
    assert event["message_id"] == user_message.pk
    assert [role for role, _ in await contents(companion.pk)] == ["assistant", "assistant"]  # greeting, reply


async def test_another_users_message_cannot_be_changed(connect, companion, user, other_user):
    @sync_to_async
    def their_message():
        theirs = make_companion(other_user)
        return add_reply(make_chat(theirs), theirs, "not yours", alternatives=["x"])

    message = await their_message()
    client = await connect(companion.pk, user=user)
    frames = [
        {"type": "message.delete"},
        {"type": "message.alternative"},
        {"type": "message.edit", "content": "mine now", "resend": False},
        {"type": "conversation.branch"},
    ]
    for frame in frames:
        await client.send({**frame, "message_id": message.pk})
        assert (await client.receive())["code"] == "not_found"
    await message.arefresh_from_db()
    assert (message.content, message.alternatives, message.edited_at) == ("not yours", ["x"], None)


async def test_a_message_of_my_other_chat_is_not_found_here(connect, companion, user):
    """The same owner's other chat with the same companion is another conversation all the same."""
    here = await sync_to_async(chat_of)(companion)
    elsewhere = await sync_to_async(lambda: add_reply(make_chat(companion), companion, "elsewhere"))()
    client = await connect(None, user=user, path=f"/ws/conversation/{here.pk}/")
    for kind in ("message.delete", "message.alternative", "conversation.branch"):
        await client.send({"type": kind, "message_id": elsewhere.pk})
        assert (await client.receive())["code"] == "not_found"
    await elsewhere.arefresh_from_db()
    assert elsewhere.content == "elsewhere"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "message.delete"}, "bad_frame"),
        ({"type": "message.delete", "message_id": "1"}, "bad_frame"),
        ({"type": "message.alternative", "message_id": True}, "bad_frame"),
        ({"type": "message.edit"}, "bad_frame"),
        ({"type": "message.edit", "content": "  "}, "empty"),
        ({"type": "message.edit", "content": "Hi", "resend": "x"}, "bad_frame"),
        ({"type": "message.edit", "content": "Hi", "message_id": 1.5}, "bad_frame"),
        ({"type": "message.edit", "content": "Hi", "client_id": 5}, "bad_frame"),
        ({"type": "message.regenerate", "client_id": 5}, "bad_frame"),
        ({"type": "message.continue", "client_id": ["x"]}, "bad_frame"),
        ({"type": "conversation.branch"}, "bad_frame"),
        ({"type": "conversation.branch", "message_id": "1"}, "bad_frame"),
        ({"type": "conversation.branch", "message_id": 1, "client_id": 5}, "bad_frame"),
    ],
)
async def test_bad_editing_frames(connect, companion, user, frame, code):
    client = await connect(companion.pk, user=user)
    await client.send(frame)
    error = await client.receive()
    assert (error["type"], error["code"]) == ("error", code), error


async def test_nothing_to_regenerate_yet(connect, companion, user):
    """The greeting is a companion's message, but no reply to anything: nothing to write again."""
    client = await connect(companion.pk, user=user)
    for kind in ("message.regenerate", "message.continue"):
        await client.send({"type": kind})
        assert (await client.receive())["code"] == "nothing_to_regenerate"


async def test_nothing_to_edit_before_the_user_has_spoken(connect, companion, user):
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.edit", "content": "Hi"})
    assert (await client.receive())["code"] == "nothing_to_edit"


@pytest.mark.parametrize("frame_type", ["message.regenerate", "message.continue"])
async def test_a_rewrite_meant_for_an_older_reply_is_refused(
    worker, use_fake_llm, connect, companion, user, frame_type
):
    client = await connect(companion.pk, user=user)
    use_fake_llm.set_reply("An answer.")
    older = await turn(client, {"type": "message.send", "content": "One"})
    await turn(client, {"type": "message.send", "content": "Two"})
    before = await contents(companion.pk)
    await client.send({"type": frame_type, "message_id": older["message_id"]})
    assert (await client.receive_until("error"))["code"] == "not_latest"
    await client.send({"type": frame_type, "message_id": "latest"})
    assert (await client.receive_until("error"))["code"] == "bad_frame"
    assert await contents(companion.pk) == before
    assert (await reply_row(companion.pk)).alternatives == []
