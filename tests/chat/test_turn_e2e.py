"""One chat turn end to end: websocket -> service -> Celery chain on a real worker -> events.

The LLM and the picture service are local fake servers speaking the real wire
formats, so the real clients run. Works on the in-memory layer and broker, and
on Redis under CI.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from chat import steps
from chat.models import Message, PipelineRun
from companions.models import Companion
from companions.services import companion_import_card

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "Hi! *waves* Let's go to the beach. I'll wear my red sundress."
ANALYSIS = (
    '{"outfit": "red sundress", "location": "at the beach", "action": "walking on the sand", '
    '"wants_image": false}'
)


@sync_to_async
def rows(companion_id):
    companion = Companion.objects.get(pk=companion_id)
    # The companion's chat opens with its greeting; the turn's messages follow it.
    messages = list(
        Message.objects.filter(conversation__participants__companion_id=companion_id).order_by(
            "created_at", "pk"
        )
    )[1:]
    runs = list(PipelineRun.objects.filter(companion_id=companion_id).order_by("created_at"))
    return companion, messages, runs


async def test_a_turn_streams_the_reply_updates_state_and_paints(
    worker, use_fake_llm, use_fake_sd, connect, companion, user, media_root
):
    use_fake_llm.set_reply(REPLY)
    use_fake_llm.completion_text = f"Sure, here you go:\n```json\n{ANALYSIS}\n```"
    client = await connect(companion.pk, user=user)
    await client.send(
        {"type": "message.send", "content": "Shall we go to the beach?", "image": True, "client_id": "c1"}
    )

    accepted = await client.receive_until("message.accepted")
    assert accepted["client_id"] == "c1"
    done = await client.receive_until("done")

    run_id = accepted["run_id"]
    tokens = [e for e in client.of_type("token") if e["run_id"] == run_id]
    streamed = "".join(e["text"] for e in tokens)
    assert streamed == REPLY
    offsets = [e["offset"] for e in tokens]
    assert offsets == sorted(offsets) and offsets[0] == 0
    progress = [e["progress"] for e in client.of_type("progress")]
    assert progress == sorted(progress) and progress[-1] == 100
    bands = {**{step.name: step.band for step in steps.STEPS}, steps.DONE: (100, 100)}
    for event in client.of_type("progress"):  # each step reports inside its band (chat.steps)
        low, high = bands[event["step"]]
        assert low <= event["progress"] <= high, event
    [state] = client.of_type("state")
    assert (state["outfit"], state["location"]) == ("red sundress", "at the beach")
    [image] = client.of_type("image")
    assert image["message_id"] == done["message_id"]
    assert done["usage"]["completion_tokens"] > 0

    companion_row, messages, runs = await rows(companion.pk)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Shall we go to the beach?"),
        ("assistant", REPLY),
    ]
    assert messages[1].is_complete and messages[1].image_id
    assert companion_row.current_location == "at the beach"
    assert companion_row.tokens_burned > 0
    [run] = runs
    assert run.status == "completed" and run.progress == 100
    assert set(run.step_durations) >= {"analyze_context", "generate_reply", "update_state", "generate_image"}
    stored = await sync_to_async(lambda: messages[1].image)()
    with Image.open(media_root / stored.file.name) as picture:
        assert picture.format == "JPEG"
    assert image["url"] == stored.url
    # The picture request carried the scene, with underwear filtered out.
    body = use_fake_sd.requests[-1]["json"]
    assert "red sundress" in body["prompt"] and "at the beach" in body["prompt"]
    # The LLM saw the companion's persona and the user's message, and was asked for usage.
    streamed_request = next(r["json"] for r in use_fake_llm.requests if r["json"].get("stream"))
    assert "You are Mika" in streamed_request["messages"][0]["content"]
    assert streamed_request["messages"][-2:] == [
        {"role": "assistant", "content": "Hey you!"},  # the greeting is part of the chat
        {"role": "user", "content": "Shall we go to the beach?"},
    ]
    assert streamed_request["stream_options"] == {"include_usage": True}


async def test_without_a_picture_the_image_step_is_skipped(
    worker, use_fake_llm, use_fake_sd, connect, companion, user
):
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello", "image": False, "client_id": "c2"})
    await client.receive_until("done")
    assert client.of_type("image") == []
    assert use_fake_sd.requests == []


async def test_usage_is_estimated_when_the_server_sends_none(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.send_usage = False
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hello", "client_id": "x"})
    done = await client.receive_until("done")
    assert done["usage"]["estimated"] is True
    assert done["usage"]["completion_tokens"] > 0


async def test_a_reconnecting_client_gets_the_reply_so_far(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.set_reply(" ".join(f"word{i}" for i in range(60)))
    use_fake_llm.token_delay = 0.03
    first = await connect(companion.pk, user=user)
    await first.send({"type": "message.send", "content": "Tell me a story", "client_id": "s"})
    accepted = await first.receive_until("message.accepted")
    # Wait for some tokens, then a second client (a reload) joins mid-reply.
    while len(first.of_type("token")) < 3:
        await first.receive()
    second = await connect(companion.pk, user=user)
    snapshot = second.events[0]
    assert snapshot["run"]["id"] == accepted["run_id"]
    assert snapshot["run"]["status"] == "running"
    so_far = snapshot["run"]["content"]
    assert so_far and "word0" in so_far
    await second.receive_until("done")
    # Snapshot + later tokens (dropping the overlap by offset) rebuild the whole reply.
    text = so_far
    for event in second.of_type("token"):
        end = event["offset"] + len(event["text"])
        if end > len(text):
            text = text[: event["offset"]] + event["text"]
    _, messages, _ = await rows(companion.pk)
    assert text == messages[-1].content


async def test_cancel_stops_the_stream(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(400)))
    use_fake_llm.token_delay = 0.02
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Talk a lot", "client_id": "c"})
    accepted = await client.receive_until("message.accepted")
    await client.receive_until("token")
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    await client.receive_until("error")  # the cancelled run reports itself
    _, messages, runs = await rows(companion.pk)
    assert runs[0].status == "cancelled"
    assert messages[0].content == "Talk a lot"  # the user's words are kept
    partial = messages[1].content if len(messages) > 1 else ""
    assert len(partial.split()) < 400
    assert client.of_type("done") == []


async def test_an_imported_card_shapes_what_the_llm_is_sent(worker, use_fake_llm, connect, user):
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Keeper",
            "description": "{{char}} tends a lighthouse.",
            "personality": "stern",
            "scenario": "{{user}} is shipwrecked.",
            "first_mes": "*{{char}} hands {{user}} a blanket.*",
            "mes_example": "<START>\n{{char}}: Storm's coming.",
            "post_history_instructions": "Never speak for {{user}}.",
            "character_book": {"entries": [{"keys": ["lamp"], "content": "The lamp is old."}]},
        },
    }
    upload = SimpleUploadedFile("keeper.json", json.dumps(card).encode())
    companion, _ = await sync_to_async(companion_import_card)(user=user, upload=upload)

    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Where am I?", "client_id": "k1"})
    await client.receive_until("done")

    sent = next(r["json"] for r in use_fake_llm.requests if r["json"].get("stream"))["messages"]
    system = sent[0]["content"]
    assert "Keeper tends a lighthouse." in system
    assert "Personality: stern" in system
    assert "Scenario: Alice is shipwrecked." in system
    assert "Keeper: Storm's coming." in system
    assert sent[-2] == {"role": "user", "content": "Where am I?"}
    assert sent[-1] == {"role": "system", "content": "Never speak for Alice."}
    assert "The lamp is old." not in system  # no key mentioned yet: the lorebook entry stays out

    await client.send({"type": "message.send", "content": "Is the LAMP lit?", "client_id": "k2"})
    await client.receive_until("done")
    *_, sent = (r["json"]["messages"] for r in use_fake_llm.requests if r["json"].get("stream"))
    assert sent[-2] == {"role": "user", "content": "Is the LAMP lit?"}
    assert "[World info: background facts, use them when relevant]\nThe lamp is old.\n" in sent[0]["content"]
