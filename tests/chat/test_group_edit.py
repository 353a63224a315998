"""Editing in a group (groups gained ``message.edit`` with the one core).

Your last message, edited, is answered afresh: its replies go and the turn
is planned again (a companion named in the new words answers first). Any
other message, a companion's reply included, is corrected in place: nothing
runs, every open tab hears ``message.updated`` with ``edited``.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from chat import editing
from chat.models import Message, PipelineRun
from companionhub.errors import AppError
from tests.chat.factories import make_group
from tests.chat.frames import unnumbered
from tests.chat.test_group_regenerate import OLD, finished_turn, nothing_changed

REPLY = "Oh hello! *waves* The beach sounds lovely."


@sync_to_async
def group_rows(group_id):
    messages = list(Message.objects.filter(conversation_id=group_id).select_related("sender").order_by("pk"))
    runs = list(
        PipelineRun.objects.filter(conversation_id=group_id)
        .select_related("companion")
        .order_by("created_at")
    )
    return messages, runs


# --- edit and resend, end to end --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_editing_your_last_message_replaces_its_replies_and_answers_it_again(
    worker, use_fake_llm, connect_group, group, user
):
    use_fake_llm.set_reply("An answer to a typo.")
    client = await connect_group(group.pk, user=user)
    await client.send({"type": "message.send", "content": "Helo everyone", "client_id": "g1"})
    said = await client.receive_until("message.accepted")
    await client.receive_until("turn.done")
    old_replies = [m.pk for m in (await group_rows(group.pk))[0][1:]]
    assert len(old_replies) == 3

    use_fake_llm.set_reply(REPLY)
    client.events.clear()
    await client.send({"type": "message.edit", "content": "Aya, what do you think?", "client_id": "e1"})
    accepted = await client.receive_until("message.accepted")
    assert (accepted["client_id"], accepted["message_id"]) == ("e1", said["message_id"])
    await client.receive_until("turn.done")

    [started] = client.of_type("turn.started")
    assert (started["kind"], started["run_id"]) == ("edit", accepted["run_id"])
    assert started["user_message"] == {**started["user_message"], "content": "Aya, what do you think?"}
    speakers = [s["sender"] for s in client.of_type("turn.speaker")]
    assert speakers == ["Aya", "Mika", "Rin"]  # named first, then the standing order

    messages, runs = await group_rows(group.pk)
    assert [(m.sender.name if m.sender else None, m.content) for m in messages] == [
        (None, "Aya, what do you think?"),
        ("Aya", REPLY),
        ("Mika", REPLY),
        ("Rin", REPLY),
    ]
    assert messages[0].pk == said["message_id"] and messages[0].edited_at is not None
    assert not set(old_replies) & {m.pk for m in messages}  # the replies to the old words went
    assert [(r.companion.name, r.status) for r in runs] == [
        ("Aya", "completed"),
        ("Mika", "completed"),
        ("Rin", "completed"),
    ]  # and the runs that wrote them
    aya_heard = [r["json"]["messages"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream")][-3]
    assert aya_heard[1:] == [{"role": "user", "content": "Alice: Aya, what do you think?"}]


@pytest.mark.django_db
def test_only_your_last_message_is_answered_again(user):
    group = make_group(user, "Mika", "Rin")
    first = finished_turn(group)
    rows = first + finished_turn(group)
    with pytest.raises(AppError) as refused:
        editing.message_edit(user=user, conversation=group, text="Hi", message_id=first[0].pk, resend=True)
    assert refused.value.code == "not_latest"
    assert nothing_changed(group, rows)


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["queued", "waiting", "running"])
def test_no_edit_while_the_group_is_answering(user, status):
    group = make_group(user, "Mika", "Rin")
    rows = finished_turn(group, status=status)
    for message_id, resend in ((None, None), (rows[1].pk, False)):
        with pytest.raises(AppError) as refused:
            editing.message_edit(
                user=user, conversation=group, text="x", message_id=message_id, resend=resend
            )
        assert refused.value.code == "busy"
    assert nothing_changed(group, rows)


# --- a companion's reply corrected in place ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_companions_reply_is_corrected_in_place_and_every_tab_hears(connect_group, user):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    said, mika_reply, rin_reply = await sync_to_async(finished_turn)(group)
    tab, other = await connect_group(group.pk, user=user), await connect_group(group.pk, user=user)
    await tab.send({"type": "message.edit", "message_id": mika_reply.pk, "content": "  Fixed, *smiles*  "})
    for client in (tab, other):
        assert unnumbered(await client.receive_until("message.updated")) == {
            "type": "message.updated",
            "message_id": mika_reply.pk,
            "content": "Fixed, *smiles*",
            "versions": 1,
            "edited": True,
        }
    assert await tab.nothing_more()  # no run, so no "message.accepted"
    messages, runs = await group_rows(group.pk)
    assert [(m.pk, m.content) for m in messages] == [
        (said.pk, "Hello"),
        (mika_reply.pk, "Fixed, *smiles*"),
        (rin_reply.pk, f"{OLD} (Rin)"),
    ]
    assert messages[1].edited_at is not None and messages[1].alternatives == []
    assert messages[1].sender.name == "Mika"  # still hers
    assert len(runs) == 2  # nothing ran again


@pytest.mark.django_db
def test_the_page_without_javascript_corrects_a_reply_in_place(client, user):
    group = make_group(user, "Mika", "Rin")
    said, _, rin_reply = finished_turn(group)
    client.force_login(user)
    url = reverse("chat:edit", args=[group.pk, rin_reply.pk])
    response = client.post(url, {"content": "Better words."})
    assert response.status_code == 302 and response.url == reverse("chat:conversation", args=[group.pk])
    rin_reply.refresh_from_db()
    assert (rin_reply.content, rin_reply.edited_at is not None) == ("Better words.", True)
    # Your own last message too is only corrected here: its replies stay, nothing runs.
    client.post(reverse("chat:edit", args=[group.pk, said.pk]), {"content": "Hello!"})
    assert Message.objects.filter(conversation=group).count() == 3
    assert PipelineRun.objects.filter(conversation=group).count() == 2
