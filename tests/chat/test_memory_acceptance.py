"""Memory and the context budget as a user meets them: real worker, real broker and database,
the fake LLM (its ``/tokenize`` and ``/v1/embeddings`` included), nothing replaced.

* a fact said in one chat is used in a new chat with the same companion, found among many
  other memories, and once deleted never reaches a prompt again;
* a chat far longer than the context is summarised on the memory queue, the summary goes into
  later prompts, and no prompt is over the context;
* a summary the user edited and a memory they pinned survive the passes after them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.backends import connections_changed, sync_environment
from chat.conversations import conversation_for_companion, conversation_start
from chat.memory_prompts import MEMORY_MARKER, SUMMARY_MARKER
from chat.models import Connection, Conversation, Message, PipelineRun
from chat.summaries import conversation_set_summary
from memories import vectors
from memories.models import Memory
from memories.services import memory_add, memory_delete
from tests.fakes.llm_server import fake_embedding, split_tokens

pytestmark = pytest.mark.django_db(transaction=True)

MARA = '{"facts": [{"text": "Alice\'s sister is called Mara.", "replaces": null}]}'
NO_FACTS = '{"facts": []}'


async def wait_for(read, seconds: float = 20.0):
    """Poll ``read`` (a sync function) until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = await sync_to_async(read)()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.1)


async def say(client, text: str, client_id: str) -> dict:
    await client.send({"type": "message.send", "content": text, "client_id": client_id})
    return await client.receive_until("done")


def reply_prompt(fake) -> str:
    """Everything the last streamed (reply) request sent the model, as one text."""
    body = next(r["json"] for r in reversed(fake.requests) if r["json"].get("stream"))
    return "\n".join(str(m.get("content") or "") for m in body["messages"])


def reply_request(fake) -> dict:
    return next(r["json"] for r in reversed(fake.requests) if r["json"].get("stream"))


def seed_memories(user, companion, model: str, count: int) -> None:
    """Weeks of other facts, each with a vector of the same model as the one under test."""
    now = timezone.now()
    rows = []
    for n in range(count):
        text = f"Alice once visited harbour town number {n} on a rainy weekend."
        rows.append(
            Memory(
                owner=user,
                companion=companion,
                text=text,
                embedding=vectors.pack(fake_embedding(text)),
                embedding_model=model,
            )
        )
    Memory.objects.bulk_create(rows)
    Memory.objects.filter(companion=companion).exclude(text__contains="Mara").update(
        created_at=now - timedelta(days=21), updated_at=now - timedelta(days=21)
    )


@pytest.fixture
def small_context(use_fake_llm):
    """The fake LLM's connection row says its model holds 2,048 tokens."""
    sync_environment()
    Connection.objects.filter(kind="llm").update(context_length=2048)
    connections_changed()
    return 2048


def add_history(conversation: Conversation, companion, count: int, word: str) -> None:
    rows = []
    for n in range(count):
        rows.append(
            Message(conversation=conversation, role="user", content=f"{word} {n}: " + "tell me more " * 20)
        )
        rows.append(
            Message(
                conversation=conversation,
                role="assistant",
                sender=companion,
                content=f"{word} reply {n}: " + "here is more " * 20,
            )
        )
    Message.objects.bulk_create(rows)


async def test_a_fact_from_one_chat_is_used_in_a_new_chat_until_it_is_deleted(
    worker, use_fake_llm, memory_work, connect, companion, user
):
    use_fake_llm.answer_when(MEMORY_MARKER, MARA)
    first = await connect(companion.pk, user=user)
    await say(first, "My sister is called Mara.", "m1")
    mara = await wait_for(lambda: Memory.objects.filter(companion=companion, text__contains="Mara").first())
    assert mara.owner_id == user.pk and mara.embedding and mara.embedding_model
    use_fake_llm.answer_when(MEMORY_MARKER, NO_FACTS)
    await sync_to_async(seed_memories)(user, companion, mara.embedding_model, 500)

    new_chat = await sync_to_async(conversation_start)(user=user, companion=companion)
    second = await connect(None, user=user, path=f"/ws/conversation/{new_chat.pk}/")
    done = await say(second, "How is my sister doing these days?", "m2")
    assert "Mara" in reply_prompt(use_fake_llm)
    run = await sync_to_async(PipelineRun.objects.only("prompt_record").get)(reply_id=done["message_id"])
    assert mara.pk in [m["id"] for m in run.prompt_record["memories"]]

    await sync_to_async(memory_delete)(owner=user, memory=mara)
    await say(second, "And how is my sister now?", "m3")
    assert "Mara" not in reply_prompt(use_fake_llm)
    assert not await sync_to_async(Memory.objects.filter(text__contains="Mara").exists)()


async def test_a_chat_longer_than_the_context_is_summarised_and_never_overflows(
    worker, use_fake_llm, memory_work, connect, companion, user, small_context
):
    use_fake_llm.answer_when(MEMORY_MARKER, NO_FACTS)
    use_fake_llm.answer_when(SUMMARY_MARKER, "SUMMARY-ONE: Alice and Mika talked about a trip to Lisbon.")
    conversation = await sync_to_async(conversation_for_companion)(user=user, companion=companion)
    await sync_to_async(add_history)(conversation, companion, 150, "early")
    client = await connect(companion.pk, user=user)

    done = await say(client, "Let us go on.", "m1")
    request = reply_request(use_fake_llm)
    sent_tokens = sum(len(split_tokens(str(m["content"]))) for m in request["messages"])
    assert sent_tokens + request["max_tokens"] <= 2048  # the fake's own tokenizer counts what was sent
    run = await sync_to_async(PipelineRun.objects.only("prompt_record").get)(reply_id=done["message_id"])
    record = run.prompt_record
    assert record["counter"] == "tokenizer" and record["dropped_upto_id"]
    assert record["total"] <= record["context_length"] - record["reserve"]

    summarised = await wait_for(
        lambda: Conversation.objects.filter(pk=conversation.pk, summary__startswith="SUMMARY-ONE").first()
    )
    # A pass reads a bounded number of chunks: it covers the oldest stretch now, the rest later.
    assert summarised.summary_upto_id is not None

    await say(client, "What did we talk about?", "m2")
    assert "SUMMARY-ONE" in reply_prompt(use_fake_llm)
    request = reply_request(use_fake_llm)
    assert (
        sum(len(split_tokens(str(m["content"]))) for m in request["messages"]) + request["max_tokens"] <= 2048
    )


async def test_an_edited_summary_and_a_pinned_memory_survive_later_passes(
    worker, use_fake_llm, memory_work, connect, companion, user, small_context
):
    conversation = await sync_to_async(conversation_for_companion)(user=user, companion=companion)
    await sync_to_async(add_history)(conversation, companion, 150, "early")
    pinned = await sync_to_async(memory_add)(
        owner=user, companion=companion, text="Alice is allergic to cats.", pinned=True
    )
    use_fake_llm.answer_when(SUMMARY_MARKER, "SUMMARY-ONE: the early days.")
    use_fake_llm.answer_when(
        MEMORY_MARKER, f'{{"facts": [{{"text": "Alice loves cats now.", "replaces": {pinned.pk}}}]}}'
    )
    client = await connect(companion.pk, user=user)
    await say(client, "Good morning.", "m1")
    assert "allergic to cats" in reply_prompt(use_fake_llm)
    await wait_for(
        lambda: Conversation.objects.filter(pk=conversation.pk, summary__startswith="SUMMARY").exists()
    )

    mine = "MY OWN NOTES: we met in Lisbon and promised to go back."
    await sync_to_async(conversation_set_summary)(user=user, conversation=conversation, text=mine)
    await sync_to_async(add_history)(conversation, companion, 150, "later")
    use_fake_llm.answer_when(SUMMARY_MARKER, "SUMMARY-TWO: the later days.")
    await say(client, "Anything new?", "m2")
    assert mine in reply_prompt(use_fake_llm) and "allergic to cats" in reply_prompt(use_fake_llm)
    summary = await wait_for(
        lambda: (
            Conversation.objects.filter(pk=conversation.pk, summary__contains="SUMMARY-TWO")
            .values_list("summary", flat=True)
            .first()
        )
    )
    assert summary.startswith(mine)

    pinned_now = await sync_to_async(Memory.objects.get)(pk=pinned.pk)
    assert pinned_now.text == "Alice is allergic to cats." and pinned_now.pinned
    await say(client, "Tell me about my pets.", "m3")
    assert "allergic to cats" in reply_prompt(use_fake_llm)
