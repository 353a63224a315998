"""A group turn end to end: websocket -> service -> the chat's Celery chain, once per companion.

The LLM is the local fake server; every companion's reply goes through the
same pipeline steps as a one-to-one chat, one after another. A companion
answers one reply at a time, wherever it is: a reply asked of it while it is
busy elsewhere waits (status "waiting") and starts when it is free.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message, PipelineRun
from companions.models import Companion
from lorebooks.models import Lorebook, LoreEntry
from tests.chat.factories import make_group

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "Oh hello! *waves* The beach sounds lovely."


@sync_to_async
def turn_rows(group_id):
    messages = list(Message.objects.filter(conversation_id=group_id).select_related("sender").order_by("pk"))
    runs = list(
        PipelineRun.objects.filter(conversation_id=group_id)
        .select_related("companion")
        .order_by("created_at")
    )
    return messages, runs


async def outcomes(group_id) -> list[tuple[str, str]]:
    """(companion, run status) of the group's runs, oldest first."""
    _, runs = await turn_rows(group_id)
    return [(r.companion.name, r.status) for r in runs]


ALL_COMPLETED = [("Mika", "completed"), ("Rin", "completed"), ("Aya", "completed")]


@sync_to_async
def companions_of(group):
    return {c.name: c for c in Companion.objects.filter(conversations=group)}


def streamed_requests(llm) -> list[list[dict]]:
    return [r["json"]["messages"] for r in llm.requests if (r["json"] or {}).get("stream")]


async def send(client, text="Hello everyone", **extra):
    await client.send({"type": "message.send", "content": text, "client_id": "g1", **extra})
    return await client.receive_until("message.accepted")


async def test_each_companion_replies_in_turn_streamed_and_named(
    worker, use_fake_llm, connect_group, group, user
):
    use_fake_llm.set_reply(REPLY)
    client = await connect_group(group.pk, user=user)
    accepted = await send(client)
    turn_done = await client.receive_until("turn.done")
    assert turn_done["message_id"] == accepted["message_id"]

    names = await companions_of(group)
    speakers = client.of_type("turn.speaker")
    assert [s["sender"] for s in speakers] == ["Mika", "Rin", "Aya"]  # the first turn starts with the first
    assert speakers[0]["run_id"] == accepted["run_id"]
    for speaker in speakers:
        run_id, companion_id = speaker["run_id"], speaker["companion_id"]
        assert companion_id == names[speaker["sender"]].pk
        tokens = [e for e in client.of_type("token") if e["run_id"] == run_id]
        assert "".join(e["text"] for e in tokens) == REPLY
        assert {(e["companion_id"], e["sender"]) for e in tokens} == {(companion_id, speaker["sender"])}
        [done] = [e for e in client.of_type("done") if e["run_id"] == run_id]
        assert done["sender"] == speaker["sender"]
        [state] = [e for e in client.of_type("state") if e["run_id"] == run_id]
        assert state["companion_id"] == companion_id and state["location"] == "beach"
    # One after another, never in parallel: a reply is done before the next speaker is named.
    order = [(e["type"], e.get("sender")) for e in client.events if e["type"] in ("turn.speaker", "done")]
    assert order == [(kind, name) for name in ("Mika", "Rin", "Aya") for kind in ("turn.speaker", "done")]

    messages, runs = await turn_rows(group.pk)
    assert [(m.sender.name if m.sender else None, m.role, m.content) for m in messages] == [
        (None, "user", "Hello everyone"),
        ("Mika", "assistant", REPLY),
        ("Rin", "assistant", REPLY),
        ("Aya", "assistant", REPLY),
    ]
    assert all(m.is_complete for m in messages)
    assert [r.status for r in runs] == ["completed"] * 3
    assert [r.reply_id for r in runs] == [m.pk for m in messages[1:]]
    # Each companion's own state moved with the conversation, and its tokens were counted.
    for companion in (await companions_of(group)).values():
        assert companion.current_location == "beach" and companion.current_outfit == "red sundress"
        assert companion.tokens_burned > 0


async def test_a_later_speaker_hears_the_earlier_replies_of_the_turn(
    worker, use_fake_llm, connect_group, group, user
):
    use_fake_llm.set_reply(REPLY)
    client = await connect_group(group.pk, user=user)
    await send(client, "Who wants ice cream?")
    await client.receive_until("turn.done")

    first, second, third = streamed_requests(use_fake_llm)
    system = first[0]["content"]
    assert "You are Mika" in system and "group conversation" in system
    assert "Rin" in system and "Aya" in system and "Alice" in system
    assert first[1:] == [{"role": "user", "content": "Alice: Who wants ice cream?"}]
    assert "You are Rin" in second[0]["content"]
    assert second[1:] == [
        {"role": "user", "content": "Alice: Who wants ice cream?"},
        {"role": "user", "content": f"Mika: {REPLY}"},
    ]
    assert third[-2:] == [
        {"role": "user", "content": f"Mika: {REPLY}"},
        {"role": "user", "content": f"Rin: {REPLY}"},
    ]


@sync_to_async
def give_lorebook(companion, content):
    """A lorebook of the companion's own with one entry keyed on "ice cream"."""
    book = Lorebook.objects.create(owner_id=companion.owner_id, name=f"{companion.name}'s book")
    LoreEntry.objects.create(lorebook=book, uid=0, keys=["ice cream"], content=content)
    companion.lorebooks.add(book)


async def test_each_speaker_gets_its_own_lorebook_entries(worker, use_fake_llm, connect_group, group, user):
    use_fake_llm.set_reply(REPLY)
    names = await companions_of(group)
    await give_lorebook(names["Mika"], "{{char}} is allergic to milk.")
    await give_lorebook(names["Rin"], "{{char}} runs the ice cream stand.")
    client = await connect_group(group.pk, user=user)
    await send(client, "Who wants ice cream?")
    await client.receive_until("turn.done")

    mika, rin, aya = (messages[0]["content"] for messages in streamed_requests(use_fake_llm))
    assert "You are Mika" in mika and "Mika is allergic to milk." in mika and "stand" not in mika
    assert "You are Rin" in rin and "Rin runs the ice cream stand." in rin and "allergic" not in rin
    assert "You are Aya" in aya and "World info" not in aya


async def test_turns_rotate_and_a_named_companion_goes_first(worker, use_fake_llm, connect_group, user):
    group = await sync_to_async(make_group)(user, "Mika", "Rin", "Aya", title="Pairs", replies_per_turn=2)
    client = await connect_group(group.pk, user=user)
    for text in ("Morning!", "Lunch?", "Aya, what do you say?"):
        await send(client, text)
        await client.receive_until("turn.done")
    messages, _ = await turn_rows(group.pk)
    replies = [[m.sender.name for m in messages[i + 1 : i + 3]] for i in range(0, 9, 3)]
    assert replies == [["Mika", "Rin"], ["Rin", "Aya"], ["Aya", "Mika"]]  # turn 3 would start with Aya anyway
    await send(client, "And you, rin?")
    await client.receive_until("turn.done")
    messages, _ = await turn_rows(group.pk)
    assert [m.sender.name for m in messages[-2:]] == ["Rin", "Mika"]  # named first, then the rotation


async def test_cancel_mid_turn_stops_the_rest(worker, use_fake_llm, connect_group, group, user):
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(300)))
    use_fake_llm.token_delay = 0.02
    client = await connect_group(group.pk, user=user)
    accepted = await send(client, "Talk a lot, all of you")
    await client.receive_until("token")
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    error = await client.receive_until("error")
    assert error["code"] == "cancelled" and error["sender"] == "Mika"
    await client.receive_until("turn.done")
    while not await client.nothing_more():  # the last token batch may trail the cancel
        await client.receive()

    messages, runs = await turn_rows(group.pk)
    assert [r.status for r in runs] == ["cancelled"]  # Rin and Aya never started
    assert len(messages) <= 2 and not any(m.is_complete for m in messages if m.sender_id)
    assert len(messages[-1].content.split()) < 300
    assert [s["sender"] for s in client.of_type("turn.speaker")] == ["Mika"]
    # The group takes a new message at once.
    use_fake_llm.set_reply("Fine.")
    use_fake_llm.token_delay = 0
    await send(client, "Sorry, short answers please")
    await client.receive_until("turn.done")


async def test_one_companions_failure_does_not_block_the_others(
    worker, use_fake_llm, connect_group, group, user
):
    use_fake_llm.set_reply(REPLY)
    use_fake_llm.fail_next(status=401, only_stream=True)  # never retried: Mika's reply fails for good
    client = await connect_group(group.pk, user=user)
    await send(client)
    error = await client.receive_until("error")
    assert error["code"] == "auth" and error["sender"] == "Mika"
    await client.receive_until("turn.done")
    assert await outcomes(group.pk) == [("Mika", "failed"), *ALL_COMPLETED[1:]]
    messages, _ = await turn_rows(group.pk)
    assert [m.content for m in messages if m.sender_id and m.is_complete] == [REPLY, REPLY]
    assert [d["sender"] for d in client.of_type("done")] == ["Rin", "Aya"]


async def test_a_reconnecting_client_sees_who_is_speaking_and_the_reply_so_far(
    worker, use_fake_llm, connect_group, group, user
):
    use_fake_llm.set_reply(" ".join(f"word{i}" for i in range(60)))
    use_fake_llm.token_delay = 0.03
    first = await connect_group(group.pk, user=user)
    accepted = await send(first, "Tell us a story")
    while len(first.of_type("token")) < 3:
        await first.receive()
    second = await connect_group(group.pk, user=user)
    snapshot = second.events[0]
    assert snapshot["type"] == "group.snapshot"
    assert [c["name"] for c in snapshot["group"]["companions"]] == ["Mika", "Rin", "Aya"]
    assert snapshot["speaking"]["sender"] == "Mika"
    assert snapshot["run"]["id"] == accepted["run_id"] and snapshot["run"]["sender"] == "Mika"
    assert "word0" in snapshot["run"]["content"]
    await second.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    assert (await second.receive_until("error"))["code"] == "cancelled"
    await second.receive_until("turn.done")


async def test_a_second_message_waits_for_the_turn(worker, use_fake_llm, connect_group, group, user):
    use_fake_llm.token_delay = 0.02
    client = await connect_group(group.pk, user=user)
    await send(client, "First")
    await client.send({"type": "message.send", "content": "Second"})
    error = await client.receive_until("error")
    assert error["code"] == "busy" and "run_id" not in error
    await client.receive_until("turn.done")
    messages, _ = await turn_rows(group.pk)
    assert "Second" not in [m.content for m in messages]


async def test_the_companions_own_chat_page_does_not_show_the_group_reply(
    worker, use_fake_llm, connect_group, connect, group, user
):
    use_fake_llm.set_reply(" ".join(f"word{i}" for i in range(60)))
    use_fake_llm.token_delay = 0.03
    client = await connect_group(group.pk, user=user)
    accepted = await send(client, "Story time")
    await client.receive_until("token")
    mika = (await companions_of(group))["Mika"]
    direct = await connect(mika.pk, user=user)
    assert direct.events[0]["run"] is None
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    assert (await client.receive_until("error"))["code"] == "cancelled"
    await client.receive_until("turn.done")


async def test_a_picture_asked_for_in_words_is_painted_once_per_turn(
    worker, use_fake_llm, use_fake_sd, connect_group, user
):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    use_fake_llm.completion_text = (
        '{"outfit": "swimsuit", "location": "beach", "action": "posing", "wants_image": true}'
    )
    client = await connect_group(group.pk, user=user)
    await send(client, "Send us a selfie from the beach!")
    await client.receive_until("turn.done")
    [image] = client.of_type("image")
    assert image["sender"] == "Mika"
    messages, _ = await turn_rows(group.pk)
    assert [bool(m.image_id) for m in messages] == [False, True, False]
    assert len(use_fake_sd.requests) == 1


async def busy_in_a_one_to_one_reply(connect, llm, companion, user, *, words: int):
    """Start a slow one-to-one reply of ``companion``; return its client and run id once it streams."""
    llm.set_reply(" ".join(f"w{i}" for i in range(words)))
    llm.token_delay = 0.02
    direct = await connect(companion.pk, user=user)
    await direct.send({"type": "message.send", "content": "Tell me a story", "client_id": "d1"})
    run_id = (await direct.receive_until("message.accepted"))["run_id"]
    await direct.receive_until("token")
    return direct, run_id


async def test_a_companion_busy_in_a_one_to_one_reply_answers_the_group_after_it(
    worker, use_fake_llm, connect, connect_group, group, user
):
    """Never two replies of one companion at once: the group reply waits for the one-to-one to end."""
    names = await companions_of(group)
    direct, _ = await busy_in_a_one_to_one_reply(connect, use_fake_llm, names["Mika"], user, words=40)

    client = await connect_group(group.pk, user=user)
    accepted = await send(client, "Mika, are you there?")
    speaker = await client.receive_until("turn.speaker")
    assert speaker["sender"] == "Mika" and speaker["run_id"] == accepted["run_id"]
    waiting = await sync_to_async(PipelineRun.objects.get)(pk=accepted["run_id"])
    assert (waiting.status, waiting.started_at) == ("waiting", None)  # named, but not started

    await direct.receive_until("done")
    await client.receive_until("turn.done")
    assert await outcomes(group.pk) == ALL_COMPLETED
    # Her group reply streamed only after her one-to-one reply had streamed its last token.
    one_to_one, mika_in_group = use_fake_llm.streams[:2]
    assert mika_in_group["first_token_at"] > max(one_to_one["token_times"])


async def test_a_waiting_group_reply_starts_when_the_one_to_one_reply_is_cancelled(
    worker, use_fake_llm, connect, connect_group, group, user
):
    names = await companions_of(group)
    direct, direct_run = await busy_in_a_one_to_one_reply(
        connect, use_fake_llm, names["Mika"], user, words=400
    )

    client = await connect_group(group.pk, user=user)
    await send(client, "Mika?")
    await client.receive_until("turn.speaker")
    use_fake_llm.set_reply(REPLY)
    use_fake_llm.token_delay = 0
    await direct.send({"type": "run.cancel", "run_id": direct_run})
    await client.receive_until("turn.done")
    assert await outcomes(group.pk) == ALL_COMPLETED


async def test_a_companion_busy_in_a_group_makes_its_one_to_one_reply_wait(
    worker, use_fake_llm, connect, connect_group, group, user
):
    """The same rule the other way round: the one-to-one reply is accepted, waits, then runs."""
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(40)))
    use_fake_llm.token_delay = 0.02
    client = await connect_group(group.pk, user=user)
    await send(client, "Mika, tell us a story")
    await client.receive_until("token")
    mika = (await companions_of(group))["Mika"]
    direct = await connect(mika.pk, user=user)
    await direct.send({"type": "message.send", "content": "Are you there?", "client_id": "d1"})
    accepted = await direct.receive_until("message.accepted")
    speaker = await direct.receive_until("turn.speaker")  # announced at once, started later
    assert (speaker["run_id"], speaker["sender"]) == (accepted["run_id"], "Mika")
    waiting = await sync_to_async(PipelineRun.objects.get)(pk=accepted["run_id"])
    assert (waiting.status, waiting.started_at) == ("waiting", None)

    done = await direct.receive_until("done")
    assert done["run_id"] == accepted["run_id"] and done["sender"] == "Mika"
    await direct.receive_until("turn.done")
    await client.receive_until("turn.done")
    assert await outcomes(group.pk) == ALL_COMPLETED
    run = await sync_to_async(PipelineRun.objects.get)(pk=accepted["run_id"])
    assert run.status == "completed"
    # Her one-to-one reply streamed only after her group reply had streamed its last token.
    in_group = next(s for s in use_fake_llm.streams if s["last_user"] == "Alice: Mika, tell us a story")
    one_to_one = next(s for s in use_fake_llm.streams if s["last_user"] == "Are you there?")
    assert one_to_one["first_token_at"] > max(in_group["token_times"])


# --- a group open in two tabs ---------------------------------------------------------------


async def until_turn_done(client) -> list[dict]:
    seen = []
    while True:
        event = await client.receive()
        seen.append(event)
        if event["type"] == "turn.done":
            return seen


async def test_the_other_tab_hears_each_turn_start_before_its_speakers(
    worker, use_fake_llm, connect_group, user
):
    group = await sync_to_async(make_group)(user, "Mika", "Rin")
    tab, other = await connect_group(group.pk, user=user), await connect_group(group.pk, user=user)
    use_fake_llm.set_reply("Hi from us.")
    await tab.send({"type": "message.send", "content": "Hello both", "client_id": "g1"})
    accepted = await tab.receive_until("message.accepted")
    seen = await until_turn_done(other)

    kinds = [e["type"] for e in seen]
    assert kinds.count("turn.started") == 1  # once per turn, however many answer
    assert kinds.index("turn.started") < kinds.index("turn.speaker")
    started = seen[kinds.index("turn.started")]
    assert started["run_id"] == accepted["run_id"]  # the first speaker's run
    assert (started["kind"], started["reply_id"]) == ("send", None)
    assert started["user_message"]["id"] == accepted["message_id"]
    assert started["user_message"]["content"] == "Hello both"
    assert kinds.count("turn.speaker") == 2

    last = await sync_to_async(lambda: Message.objects.filter(conversation=group).order_by("-pk").first())()
    use_fake_llm.set_reply("Written again.")
    await tab.send({"type": "message.regenerate", "message_id": last.pk})
    await tab.receive_until("message.accepted")
    seen = await until_turn_done(other)
    kinds = [e["type"] for e in seen]
    assert kinds.index("turn.started") < kinds.index("turn.speaker")
    started = seen[kinds.index("turn.started")]
    assert (started["kind"], started["reply_id"]) == ("regenerate", last.pk)
    assert started["user_message"]["id"] == accepted["message_id"]
