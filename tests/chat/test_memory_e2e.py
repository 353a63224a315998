"""The memory work after a turn, end to end: websocket -> chain -> finish -> the memory queue.

Real worker, real broker (Redis under CI), the fake LLM. The memories app's functions are
replaced at their boundary (``chat.memory_steps``), as that piece lands separately."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from celery.signals import task_prerun

from accounts.models import UsageTransaction
from chat import memory_steps, pipeline
from chat.memory_prompts import MEMORY_MARKER
from chat.models import Message, PipelineRun

pytestmark = pytest.mark.django_db(transaction=True)

FACTS = '{"facts": [{"text": "Alice\'s sister is called Mara.", "replaces": null}]}'


@pytest.fixture
def recorded(monkeypatch):
    """When finish returned, which queue each task came from, and what was remembered."""
    seen = {"finished_at": [], "queues": {}, "remembered": []}
    real_finish = pipeline.finish

    def finish(run_id):
        real_finish(run_id)
        seen["finished_at"].append(time.perf_counter())

    def prerun(sender=None, task=None, **kwargs):
        seen["queues"][task.name] = (task.request.delivery_info or {}).get("routing_key")

    monkeypatch.setattr(pipeline, "finish", finish)
    monkeypatch.setattr(memory_steps, "memories_similar", lambda **kwargs: [])
    monkeypatch.setattr(memory_steps, "memories_remember", lambda **kw: seen["remembered"].append(kw) or [])
    task_prerun.connect(prerun, weak=False)
    yield seen
    task_prerun.disconnect(prerun)


async def wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def read_until(read, expected, seconds=15.0):
    """A database read, repeated until it returns ``expected`` or the deadline passes; its last value."""
    deadline = time.monotonic() + seconds
    while (value := await sync_to_async(read)()) != expected:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return value


async def test_the_memory_work_runs_on_its_queue_after_done(
    worker, use_fake_llm, memory_work, connect, companion, user, recorded
):
    use_fake_llm.answer_when(MEMORY_MARKER, FACTS)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "My sister is called Mara.", "client_id": "m1"})
    done = await client.receive_until("done")
    await wait_for(lambda: recorded["remembered"])
    [remembered] = recorded["remembered"]
    assert remembered["facts"][0].text == "Alice's sister is called Mara."
    assert recorded["queues"]["chat.remember"] == "memory"
    assert recorded["queues"]["chat.summarize"] == "memory"
    memory_call = next(r for r in use_fake_llm.requests if MEMORY_MARKER in str(r["json"]))
    assert memory_call["at"] > recorded["finished_at"][0]  # done was out before any memory work
    run = await sync_to_async(PipelineRun.objects.get)(reply_id=done["message_id"])
    assert run.status == "completed"
    # the memory call is charged when its block ends, just after remembering
    charges = await read_until(
        lambda: sorted(UsageTransaction.objects.values_list("run_status", flat=True)), ["completed", "memory"]
    )
    assert charges == ["completed", "memory"]


async def test_a_failing_memory_call_leaves_the_reply_and_the_run_intact(
    worker, use_fake_llm, memory_work, connect, companion, user, recorded
):
    use_fake_llm.answer_when(MEMORY_MARKER, status=500)
    use_fake_llm.set_reply("Mara is a lovely name.")
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "My sister is called Mara.", "client_id": "m2"})
    done = await client.receive_until("done")
    await wait_for(lambda: "chat.remember" in recorded["queues"])
    await wait_for(lambda: any(MEMORY_MARKER in str(r["json"]) for r in use_fake_llm.requests))
    await asyncio.sleep(0.5)
    reply = await sync_to_async(Message.objects.get)(pk=done["message_id"])
    run = await sync_to_async(PipelineRun.objects.get)(reply_id=done["message_id"])
    assert reply.content == "Mara is a lovely name." and reply.is_complete
    assert run.status == "completed" and run.error_code == ""
    assert recorded["remembered"] == []
    while not await client.nothing_more():  # whatever else the turn sends ...
        await client.receive()
    assert client.of_type("error") == []  # ... the user hears of no error


async def test_a_slow_memory_call_does_not_hold_up_the_reply(
    worker, use_fake_llm, memory_work, connect, companion, user, recorded
):
    use_fake_llm.answer_when(MEMORY_MARKER, FACTS, delay=2.0)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "My sister is called Mara.", "client_id": "m3"})
    await client.receive_until("done")
    assert recorded["remembered"] == []  # still thinking: the reply did not wait for it
    await wait_for(lambda: recorded["remembered"])


async def test_a_cancelled_run_does_no_memory_work(
    worker, use_fake_llm, memory_work, connect, companion, user, recorded
):
    use_fake_llm.set_reply(" ".join(f"w{i}" for i in range(200)))
    use_fake_llm.token_delay = 0.02
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "My sister is called Mara.", "client_id": "m4"})
    accepted = await client.receive_until("message.accepted")
    await client.receive_until("token")
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    await client.receive_until("error")
    await asyncio.sleep(1.0)
    assert "chat.remember" not in recorded["queues"] and "chat.summarize" not in recorded["queues"]
