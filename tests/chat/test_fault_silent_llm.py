"""Fault drill: an LLM that accepts the connection and then never sends a byte.

The reply must fail at the configured read timeout (``LLM_READ_TIMEOUT``,
lowered here), after the usual retries, with a clear error to the client and
the run marked failed -- never a turn that waits forever.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.backends import reset_backends
from chat.models import Message, PipelineRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]


@pytest.fixture
def silent_llm(use_fake_llm, settings):
    settings.LLM_READ_TIMEOUT = 0.5
    settings.LLM_CONNECT_TIMEOUT = 2
    reset_backends()  # the client keeps its timeouts from when it was built
    # Every streamed attempt hangs; the analysis (not streamed) answers normally.
    use_fake_llm.fail_next(kind="silent", times=10, seconds=30, only_stream=True)
    return use_fake_llm


async def test_a_silent_llm_fails_the_run_at_the_read_timeout(worker, silent_llm, connect, companion, user):
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Are you there?", "client_id": "c"})
    accepted = await client.receive_until("message.accepted")

    error = await client.receive_until("error", "done", timeout=30)

    assert error["type"] == "error", error
    assert error["run_id"] == accepted["run_id"]
    assert error["code"] == "timeout" and "took too long" in error["message"], error
    run = await sync_to_async(PipelineRun.objects.get)(pk=accepted["run_id"])
    assert run.status == "failed" and run.error_code == "timeout" and run.error_text
    assert silent_llm.silent_requests == run.attempts >= 1  # each attempt timed out, none was answered
    stored = await sync_to_async(list)(
        Message.objects.filter(conversation__participants__companion=companion).order_by("pk")
    )
    greeting, said, *_ = stored
    assert (greeting.role, greeting.content) == ("assistant", "Hey you!")
    assert (said.role, said.content) == ("user", "Are you there?")
    assert not any(m.role == "assistant" and m.is_complete for m in stored[2:])  # no finished reply
