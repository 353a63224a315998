"""Every socket on a chat hears each run start (``turn.started``) before the run's own events.

Two tabs, a phone and a program on an API token all watch the same chat:
whichever starts a run, the others learn what it is (a new message, an edit,
a rewrite, a continuation, a retry) and where its tokens go.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from accounts.tokens import token_create
from chat.models import Message
from tests.chat.factories import chat_of
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db(transaction=True)

RUN_EVENTS = ("progress", "token", "state", "image", "done")


async def watch(client, run_id: str) -> list[dict]:
    """The events of ``run_id`` this socket got, up to and including its ``done``."""
    seen = []
    while True:
        event = await client.receive()
        if event.get("run_id") == run_id:
            seen.append(event)
            if event["type"] == "done":
                return seen


def started_first(seen: list[dict]) -> dict:
    """``turn.started`` is the first event of the run, then ``turn.speaker``, each once; every
    later event of the run names the speaker too (one-to-one chats as well as groups)."""
    kinds = [e["type"] for e in seen]
    assert kinds[:2] == ["turn.started", "turn.speaker"], kinds
    assert kinds.count("turn.started") == kinds.count("turn.speaker") == 1
    assert set(kinds[2:]) <= set(RUN_EVENTS)
    speaker = seen[1]
    assert {(e["companion_id"], e["sender"]) for e in seen[1:]} == {(speaker["companion_id"], "Mika")}
    return seen[0]


@pytest.fixture
async def tabs(connect, companion, user):
    """The chat open in a browser tab and in a program on an API token."""
    _, secret = await sync_to_async(token_create)(user=user, name="second device")
    return await connect(companion.pk, user=user), await connect(companion.pk, token=secret)


async def test_a_new_message_reaches_every_socket_before_its_reply(worker, use_fake_llm, tabs):
    tab, program = tabs
    use_fake_llm.set_reply("Hello to you both.")
    await tab.send({"type": "message.send", "content": "*waves* Hi", "client_id": "c1"})
    accepted = await tab.receive_until("message.accepted")
    run_id = accepted["run_id"]

    elsewhere = started_first(await watch(program, run_id))
    assert elsewhere["kind"] == "send"
    assert elsewhere["reply_id"] is None
    message = await sync_to_async(Message.objects.get)(pk=accepted["message_id"])
    assert elsewhere["user_message"] == {
        "id": message.pk,
        "content": "*waves* Hi",
        "created_at": message.created_at.isoformat(),
    }
    # The sender knew the run from its own answer, which came first.
    here = await watch(tab, run_id)
    assert started_first(here) == elsewhere
    assert "".join(e["text"] for e in here if e["type"] == "token") == "Hello to you both."


async def test_edits_name_what_they_change(worker, use_fake_llm, tabs):
    tab, program = tabs
    use_fake_llm.set_reply("First.")
    await tab.send({"type": "message.send", "content": "Helo"})
    sent = await tab.receive_until("message.accepted")
    first = (await watch(program, sent["run_id"]))[-1]

    use_fake_llm.set_reply("Second.")
    await tab.send({"type": "message.regenerate"})
    run_id = (await tab.receive_until("message.accepted"))["run_id"]
    regenerate = started_first(await watch(program, run_id))
    assert (regenerate["kind"], regenerate["reply_id"]) == ("regenerate", first["message_id"])
    assert regenerate["versions"] == 2  # "First." kept, "Second." being written
    assert regenerate["user_message"]["content"] == "Helo"

    use_fake_llm.set_reply("Answer to the fix.")
    await tab.send({"type": "message.edit", "content": "Hello"})
    run_id = (await tab.receive_until("message.accepted"))["run_id"]
    edit = started_first(await watch(program, run_id))
    assert (edit["kind"], edit["reply_id"]) == ("edit", None)
    assert edit["user_message"]["id"] == sent["message_id"]
    assert edit["user_message"]["content"] == "Hello"  # the new text
    assert "versions" not in edit


async def test_a_continuation_names_the_reply_it_carries_on(worker, use_fake_llm, connect, user):
    companion = await sync_to_async(make_companion)(user, config={"max_reply_tokens": 32})
    tab, program = await connect(companion.pk, user=user), await connect(companion.pk, user=user)
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(60)))
    await tab.send({"type": "message.send", "content": "Talk"})
    cut = (await watch(program, (await tab.receive_until("message.accepted"))["run_id"]))[-1]
    assert cut["finish_reason"] == "length"

    use_fake_llm.set_reply(" and the end.")
    await tab.send({"type": "message.continue"})
    run_id = (await tab.receive_until("message.accepted"))["run_id"]
    seen = await watch(program, run_id)
    assert (started_first(seen)["kind"], seen[0]["reply_id"]) == ("continue", cut["message_id"])
    reply = await sync_to_async(Message.objects.get)(pk=cut["message_id"])
    first_token = next(e for e in seen if e["type"] == "token")
    assert first_token["offset"] == len(reply.content) - len(" and the end.")


async def test_a_retry_is_announced(worker, use_fake_llm, tabs):
    tab, program = tabs
    use_fake_llm.fail_next(status=400, times=1, only_stream=True)
    await tab.send({"type": "message.send", "content": "Try me"})
    failed = await tab.receive_until("message.accepted")
    assert (await program.receive_until("error"))["run_id"] == failed["run_id"]
    await tab.receive_until("error")

    await tab.send({"type": "run.retry", "run_id": failed["run_id"]})
    run_id = (await tab.receive_until("message.accepted"))["run_id"]
    retry = started_first(await watch(program, run_id))
    assert retry["kind"] == "retry"
    assert retry["user_message"]["id"] == failed["message_id"]


async def test_a_message_sent_with_the_plain_form_shows_in_open_tabs(
    worker, use_fake_llm, connect, companion, user
):
    tab = await connect(companion.pk, user=user)
    use_fake_llm.set_reply("Got your note.")

    def post() -> None:
        browser = Client()
        browser.force_login(user)
        url = reverse("chat:send", args=[chat_of(companion).pk])  # the chat the tab has open
        response = browser.post(url, {"content": "From the form"})
        assert response.status_code == 302

    await sync_to_async(post)()
    started = await tab.receive_until("turn.started")
    assert (started["kind"], started["user_message"]["content"]) == ("send", "From the form")
    assert (await watch(tab, started["run_id"]))[-1]["type"] == "done"


async def test_a_refused_start_announces_nothing(worker, use_fake_llm, tabs):
    tab, program = tabs
    await tab.send({"type": "message.regenerate"})  # nothing to write again yet
    assert (await tab.receive_until("error"))["code"] == "nothing_to_regenerate"
    await tab.send({"type": "message.send", "content": "   "})
    assert (await tab.receive_until("error"))["code"] == "empty"
    # The next accepted message is the first thing the other socket hears of at all.
    await tab.send({"type": "message.send", "content": "Now for real"})
    accepted = await tab.receive_until("message.accepted")
    first = await program.receive()
    assert (first["type"], first["run_id"]) == ("turn.started", accepted["run_id"])
    await tab.receive_until("done")  # the test's database is emptied only once the worker is done
