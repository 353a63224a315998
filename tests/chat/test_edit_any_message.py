"""Correcting any message in place: a companion's reply, an older message of the user, the greeting.

A correction starts no run: the text changes where it is, ``edited_at`` is
set and every open tab gets ``message.updated`` with ``edited: true``. Only
the user's last message is answered afresh, and only by default.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from chat.editing import message_edit
from chat.models import Message, PipelineRun
from companionhub.errors import AppError
from tests.chat.factories import add_exchange, add_reply, add_user_message, chat_of, make_chat, make_group
from tests.chat.frames import unnumbered
from tests.companions.factories import make_companion


def story(companion):
    """A chat with two exchanges; returns the chat and its messages, oldest first."""
    conversation = chat_of(companion)
    rows = [
        *add_exchange(conversation, companion, "Helo", "Hi! *smiles*", alternatives=["Hey."]),
        *add_exchange(conversation, companion, "Beach?", "Sure!"),
    ]
    return conversation, rows


def snapshot(conversation):
    """Every message as it is (text, versions, when corrected) and how many runs there are."""
    messages = Message.objects.filter(conversation=conversation).order_by("pk")
    rows = list(messages.values_list("pk", "content", "alternatives", "edited_at"))
    return rows, PipelineRun.objects.filter(conversation=conversation).count()


def corrected(before, after, message_id: int, text: str) -> bool:
    """``after`` is ``before`` with only ``message_id``'s text changed (and marked edited)."""
    (old_rows, old_runs), (new_rows, new_runs) = before, after
    if old_runs != new_runs or len(old_rows) != len(new_rows):
        return False
    for (pk, content, versions, edited), (pk2, content2, versions2, edited2) in zip(
        old_rows, new_rows, strict=True
    ):
        if pk != pk2 or versions != versions2:
            return False
        if pk == message_id:
            if content2 != text or edited2 is None:
                return False
        elif (content, edited) != (content2, edited2):
            return False
    return True


# --- the service ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("which", [1, 3, 0])  # a companion's reply, its latest reply, an older user message
def test_any_message_is_corrected_in_place(user, companion, which, django_capture_on_commit_callbacks):
    conversation, rows = story(companion)
    target = rows[which]
    before = snapshot(conversation)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = message_edit(user=user, conversation=conversation, text="  Fixed.  ", message_id=target.pk)
    assert isinstance(result, Message) and result.pk == target.pk
    assert (result.content, result.edited_at is not None) == ("Fixed.", True)
    assert corrected(before, snapshot(conversation), target.pk, "Fixed.")
    assert len(callbacks) == 1  # the event to the open tabs, and no run started


@pytest.mark.django_db
def test_the_greeting_can_be_corrected_before_the_user_has_spoken(user, companion):
    conversation = make_chat(companion, greeting="Hey you!")
    greeting = Message.objects.get(conversation=conversation)
    result = message_edit(user=user, conversation=conversation, text="Hey there!", message_id=greeting.pk)
    assert (result.content, result.versions) == ("Hey there!", 1)
    assert not PipelineRun.objects.exists()


@pytest.mark.django_db
def test_the_last_message_is_only_corrected_when_told_not_to_resend(user, companion):
    conversation, rows = story(companion)
    last = rows[2]
    before = snapshot(conversation)
    message_edit(user=user, conversation=conversation, text="Beach!", message_id=last.pk, resend=False)
    assert corrected(before, snapshot(conversation), last.pk, "Beach!")  # its reply stays


@pytest.mark.django_db
@pytest.mark.parametrize("which", [0, 1])
def test_only_the_last_message_can_be_resent(user, companion, which):
    conversation, rows = story(companion)
    before = snapshot(conversation)
    with pytest.raises(AppError) as refused:
        message_edit(
            user=user, conversation=conversation, text="Again", message_id=rows[which].pk, resend=True
        )
    assert refused.value.code == "not_latest"
    assert snapshot(conversation) == before


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["direct", "group"])
def test_no_correction_while_a_reply_is_being_written(user, companion, kind):
    if kind == "group":
        conversation = make_group(user, "Rin", "Aya")
        companion = conversation.companions.first()
        rows = list(add_exchange(conversation, companion, "Hi", "Hello"))
    else:
        conversation, rows = story(companion)
    said = add_user_message(conversation, "And now?")
    PipelineRun.objects.create(
        conversation=conversation, turn=said.turn, companion=companion, status="running"
    )
    before = snapshot(conversation)
    with pytest.raises(AppError) as refused:
        message_edit(user=user, conversation=conversation, text="Fixed.", message_id=rows[1].pk)
    assert refused.value.code == "busy"
    assert snapshot(conversation) == before


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["my_other_chat", "someone_else"])
def test_a_message_of_another_conversation_is_not_found(user, other_user, companion, where):
    conversation, _ = story(companion)
    if where == "my_other_chat":
        elsewhere = add_reply(make_chat(companion), companion, "Elsewhere")
    else:
        theirs = make_companion(other_user)
        elsewhere = add_reply(make_chat(theirs), theirs, "Elsewhere")
    with pytest.raises(AppError) as refused:
        message_edit(user=user, conversation=conversation, text="Mine now", message_id=elsewhere.pk)
    assert refused.value.code == "not_found"
    elsewhere.refresh_from_db()
    assert (elsewhere.content, elsewhere.edited_at) == ("Elsewhere", None)


@pytest.mark.django_db
def test_only_the_owner_corrects(user, other_user, companion):
    conversation, rows = story(companion)
    with pytest.raises(PermissionError):
        message_edit(user=other_user, conversation=conversation, text="Mine now", message_id=rows[1].pk)


# --- over the socket ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_correction_reaches_every_open_tab(connect, user, companion):
    conversation, rows = await sync_to_async(story)(companion)
    reply = rows[1]
    tab, other_tab = await connect(companion.pk, user=user), await connect(companion.pk, user=user)
    before = await sync_to_async(snapshot)(conversation)
    await tab.send(
        {"type": "message.edit", "message_id": reply.pk, "content": "Hi! *grins*", "client_id": "e1"}
    )
    expected = {
        "type": "message.updated",
        "message_id": reply.pk,
        "content": "Hi! *grins*",
        "versions": 2,  # its other version is kept
        "edited": True,
    }
    assert unnumbered(await tab.receive()) == expected  # no "message.accepted": nothing was started
    assert unnumbered(await other_tab.receive()) == expected
    assert await tab.nothing_more()
    assert corrected(before, await sync_to_async(snapshot)(conversation), reply.pk, "Hi! *grins*")


@pytest.mark.django_db(transaction=True)
async def test_resend_defaults_and_refusals_over_the_socket(connect, user, companion):
    conversation, rows = await sync_to_async(story)(companion)
    older, last = rows[0], rows[2]
    client = await connect(companion.pk, user=user)
    before = await sync_to_async(snapshot)(conversation)
    refusals = [
        ({"message_id": older.pk, "resend": True}, "not_latest"),
        ({"message_id": older.pk, "resend": "x"}, "bad_frame"),
        ({"message_id": older.pk, "resend": 1}, "bad_frame"),
        ({"message_id": 2**63}, "not_found"),
    ]
    for fields, code in refusals:
        await client.send({"type": "message.edit", "content": "Again", **fields})
        assert (await client.receive())["code"] == code, fields
    assert await sync_to_async(snapshot)(conversation) == before
    # An older message of the user is corrected in place by default; so is the last one when told.
    await client.send({"type": "message.edit", "content": "Hello", "message_id": older.pk})
    assert (await client.receive())["message_id"] == older.pk
    await client.send({"type": "message.edit", "content": "Beach!", "message_id": last.pk, "resend": False})
    updated = await client.receive()
    assert (updated["type"], updated["message_id"], updated["edited"]) == ("message.updated", last.pk, True)
    rows_now, runs = await sync_to_async(snapshot)(conversation)
    assert [content for _, content, _, _ in rows_now] == ["Hello", "Hi! *smiles*", "Beach!", "Sure!"]
    assert runs == 0


@pytest.mark.django_db(transaction=True)
async def test_no_correction_over_the_socket_while_answering(connect, user, companion):
    conversation, rows = await sync_to_async(story)(companion)

    @sync_to_async
    def answering():
        said = add_user_message(conversation, "And now?")
        PipelineRun.objects.create(
            conversation=conversation, turn=said.turn, companion=companion, status="queued"
        )

    await answering()
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.edit", "content": "Fixed.", "message_id": rows[1].pk})
    assert (await client.receive())["code"] == "busy"
    await rows[1].arefresh_from_db()
    assert (rows[1].content, rows[1].edited_at) == ("Hi! *smiles*", None)


@pytest.mark.django_db(transaction=True)
async def test_the_last_message_is_resent_by_default(worker, use_fake_llm, connect, user, companion):
    conversation, rows = await sync_to_async(story)(companion)
    client = await connect(companion.pk, user=user)
    use_fake_llm.set_reply("To the beach, then!")
    await client.send({"type": "message.edit", "content": "Beach now?", "message_id": rows[2].pk})
    accepted = await client.receive_until("message.accepted")
    assert accepted["message_id"] == rows[2].pk
    await client.receive_until("turn.done")
    rows_now, runs = await sync_to_async(snapshot)(conversation)
    assert [content for _, content, _, _ in rows_now] == [
        "Helo",
        "Hi! *smiles*",
        "Beach now?",
        "To the beach, then!",
    ]
    assert runs == 1


@pytest.mark.django_db(transaction=True)
async def test_the_llm_hears_the_corrected_text(worker, use_fake_llm, connect, user, companion):
    """A correction is the history from then on: the next reply is written from it."""
    _, rows = await sync_to_async(story)(companion)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.edit", "content": "Hi! *waves*", "message_id": rows[1].pk})
    await client.receive_until("message.updated")
    use_fake_llm.set_reply("Let's go.")
    await client.send({"type": "message.send", "content": "Now?"})
    await client.receive_until("turn.done")
    streamed = next(r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream"))
    assert [m["content"] for m in streamed["messages"] if m["role"] != "system"] == [
        "Helo",
        "Hi! *waves*",
        "Beach?",
        "Sure!",
        "Now?",
    ]


# --- the page without JavaScript ------------------------------------------------------------


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("which", [1, 2])  # a reply; the user's last message (corrected, not resent)
def test_the_edit_form_corrects_in_place(signed_in, companion, which):
    conversation, rows = story(companion)
    before = snapshot(conversation)
    response = signed_in.post(
        reverse("chat:edit", args=[conversation.pk, rows[which].pk]), {"content": "Fixed."}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[conversation.pk])
    assert corrected(before, snapshot(conversation), rows[which].pk, "Fixed.")
    page = signed_in.get(response["Location"]).content.decode()
    assert f'id="message-{rows[which].pk}"' in page and "data-edited" in page


@pytest.mark.django_db
def test_the_edit_form_explains_a_refusal(signed_in, companion):
    conversation, rows = story(companion)
    before = snapshot(conversation)
    response = signed_in.post(
        reverse("chat:edit", args=[conversation.pk, rows[1].pk]), {"content": "   "}, follow=True
    )
    assert "Type a message first." in response.content.decode()
    assert snapshot(conversation) == before


@pytest.mark.django_db
def test_the_edit_page_is_the_owners_for_a_message_here(client, signed_in, other_user, companion):
    conversation, rows = story(companion)
    elsewhere = add_reply(make_chat(companion), companion, "Elsewhere")
    before = snapshot(conversation)
    url = reverse("chat:edit", args=[conversation.pk, rows[1].pk])
    page = signed_in.get(url)  # without JavaScript: the form, holding the text as it is
    assert page.status_code == 200 and b"Save correction" in page.content
    assert signed_in.get(reverse("chat:edit", args=[conversation.pk, elsewhere.pk])).status_code == 404
    assert (
        signed_in.post(
            reverse("chat:edit", args=[conversation.pk, elsewhere.pk]), {"content": "x"}
        ).status_code
        == 404
    )
    client.force_login(other_user)
    assert client.get(url).status_code == 404
    assert client.post(url, {"content": "Mine now"}).status_code == 404
    assert snapshot(conversation) == before
    elsewhere.refresh_from_db()
    assert elsewhere.content == "Elsewhere"
