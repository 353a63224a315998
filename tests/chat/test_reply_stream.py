"""The reply step with what real servers send: reasoning, empty answers, every HTTP framing,
and a cancel that lands while the model is still thinking."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message, PipelineRun
from tests.fakes.llm_server import FRAMINGS

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def messages_of(companion_id):
    """The messages of the companion's chat after its greeting (the turns' own)."""
    stored = list(
        Message.objects.filter(conversation__participants__companion_id=companion_id).order_by(
            "created_at", "pk"
        )
    )
    assert stored[0].role == "assistant" and stored[0].content == "Hey you!"  # the greeting
    return stored[1:]


@sync_to_async
def run_row(run_id):
    return PipelineRun.objects.get(pk=run_id)


async def send(client, text="Hello there"):
    await client.send({"type": "message.send", "content": text, "client_id": "c"})
    return await client.receive_until("message.accepted")


def streamed(fake) -> list[dict]:
    return [r["json"] for r in fake.requests if (r["json"] or {}).get("stream")]


@pytest.mark.parametrize(("framing", "gzip"), [(f, g) for f in FRAMINGS for g in (False, True)])
async def test_a_reply_in_every_framing(worker, use_fake_llm, connect, companion, user, framing, gzip):
    use_fake_llm.framing, use_fake_llm.gzip = framing, gzip
    client = await connect(companion.pk, user=user)
    await send(client)
    done = await client.receive_until("done")
    reply = (await messages_of(companion.pk))[-1]
    assert (reply.pk, reply.content, reply.is_complete) == (done["message_id"], use_fake_llm.reply_text, True)


async def test_reasoning_is_stored_apart_and_never_sent_back(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.reasoning = True
    use_fake_llm.reasoning_text = "They said hello. "
    use_fake_llm.reply_tokens = ["<think>", "Be warm.", "</think>", "Hi", " there", "!"]
    client = await connect(companion.pk, user=user)
    await send(client)
    done = await client.receive_until("done")
    reply = (await messages_of(companion.pk))[-1]
    assert reply.content == "Hi there!"
    assert reply.reasoning == "They said hello. They said hello. Be warm."
    assert done["reasoning"] == reply.reasoning
    assert "Be warm" not in "".join(e["text"] for e in client.of_type("token"))
    # The next turn's history holds the reply, not what the model thought.
    await send(client, "And now?")
    await client.receive_until("done")
    history = streamed(use_fake_llm)[-1]["messages"]
    assert any(m["content"] == "Hi there!" for m in history)
    assert not any("Be warm" in m["content"] or "said hello" in m["content"] for m in history)


EMPTY_ANSWERS = {
    "nothing": {"reply_tokens": []},
    "template debris only": {"reply_tokens": ["<|im_end|>", "\n<|im_start|>user"]},
    "a role label only": {"reply_tokens": ["Assistant:", " "]},
    "reasoning only": {"reply_tokens": ["<think>", "Hmm."], "reasoning": True},
}


@pytest.mark.parametrize("answer", EMPTY_ANSWERS.values(), ids=EMPTY_ANSWERS.keys())
async def test_an_empty_reply_is_retried_once_then_fails(
    worker, use_fake_llm, connect, companion, user, answer
):
    for name, value in answer.items():
        setattr(use_fake_llm, name, value)
    client = await connect(companion.pk, user=user)
    accepted = await send(client)
    error = await client.receive_until("error", "done")
    assert (error["type"], error["code"], error["run_id"]) == ("error", "empty_reply", accepted["run_id"])
    assert error["message"]
    assert len(streamed(use_fake_llm)) == 2  # tried once more, then given up
    run = await run_row(accepted["run_id"])
    assert (run.status, run.error_code) == ("failed", "empty_reply")
    assert not any(m.role == "assistant" and m.is_complete for m in await messages_of(companion.pk))
    assert client.of_type("done") == []


async def test_an_empty_reply_then_a_real_one(worker, use_fake_llm, connect, companion, user):
    use_fake_llm.fail_next(kind="empty", only_stream=True)
    client = await connect(companion.pk, user=user)
    await send(client)
    done = await client.receive_until("done")
    reply = (await messages_of(companion.pk))[-1]
    assert (reply.pk, reply.content, reply.is_complete) == (done["message_id"], use_fake_llm.reply_text, True)
    assert len(streamed(use_fake_llm)) == 2


async def test_a_cancel_stops_a_model_that_is_only_thinking(worker, use_fake_llm, connect, companion, user):
    """Cancel is checked on a clock while reasoning streams, not only when visible text comes."""
    use_fake_llm.reasoning_chunks = 2000
    use_fake_llm.token_delay = 0.01
    client = await connect(companion.pk, user=user)
    accepted = await send(client)
    while (await client.receive_until("progress"))["step"] != "generate_reply":
        pass
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    error = await client.receive_until("error")
    assert error["code"] == "cancelled"
    record = await asyncio.to_thread(use_fake_llm.wait_for_stream_end, 20)
    assert record["client_disconnected"] and not record["completed"]
    assert record["tokens_sent"] == 0 and record["reasoning_sent"] < 2000
    assert (await run_row(accepted["run_id"])).status == "cancelled"
