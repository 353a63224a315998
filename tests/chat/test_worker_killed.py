"""kill -9 of the worker in the middle of a reply: the message is kept, the failure is visible, a retry works.

A separate ``celery worker`` process on Redis streams a slow reply and is
killed with SIGKILL. With the Redis broker an unacknowledged task comes back
only after the visibility timeout (an hour, above any task's time limit), so
the periodic sweep is what ends the run: it fails it, the user is told, and
Retry writes the reply once, with no duplicate message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from chat import pipeline
from chat.models import Message, PipelineRun
from chat.publish import live_reply
from companionhub.celery import app
from tests.conftest import require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]
ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database, for the worker process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def queue(settings):
    if not settings.REDIS_URL:
        require_service("Redis", "a separate worker process needs the Redis broker and layer")
    name = f"fault-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_default_queue
    # The chat steps' router (chat.steps) sends them to the default queue: this one.
    app.conf.task_default_queue = name
    _rebuild_router()
    yield name
    app.conf.task_default_queue = previous
    _rebuild_router()


def _rebuild_router() -> None:
    """Celery caches the router (and its route table) at the first send: build them again."""
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)


def start_worker(queue: str, llm_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "companionhub.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_CHAT_QUEUE": queue,
        "LLM_BASE_URL": llm_url,
        "LLM_MODEL": "fake-model",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "companionhub", "worker", "--pool=threads", "--concurrency=2",
         f"--queues={queue}", f"--hostname={queue}-{time.monotonic_ns()}@localhost", "--without-mingle",
         "--without-gossip", "--loglevel=WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


@sync_to_async
def run_row(run_id):
    return PipelineRun.objects.get(pk=run_id)


@sync_to_async
def assistant_messages(companion_id):
    """The companion's replies in its chat, after its greeting."""
    replies = list(
        Message.objects.filter(
            conversation__participants__companion_id=companion_id, role="assistant"
        ).order_by("created_at", "pk")
    )
    assert replies[0].content == "Hey you!"  # the greeting the chat opened with
    return replies[1:]


async def test_a_killed_worker_ends_in_a_visible_failure_and_a_clean_retry(
    queue, fake_llm, connect, companion, user
):
    fake_llm.set_reply(" ".join(f"word{i}" for i in range(120)))
    fake_llm.token_delay = 0.03
    worker = start_worker(queue, fake_llm.base_url)
    try:
        client = await connect(companion.pk, user=user)
        await client.send({"type": "message.send", "content": "Tell me a long story"})
        accepted = await client.receive_until("message.accepted")
        # Wait until the reply is well under way (its live text, what the sockets were shown),
        # then kill the worker. The worker process may take a while to start on a busy machine:
        # poll (a socket read that times out would end the test client's connection).
        deadline = time.monotonic() + 60
        while True:
            if "word10" in (await sync_to_async(live_reply)(accepted["run_id"]) or ""):
                break
            assert time.monotonic() < deadline, "the reply never started"
            await asyncio.sleep(0.2)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

        # The sweep (Celery beat every minute) finds the run stuck and fails it visibly.
        assert await sync_to_async(pipeline.reconcile_stuck_runs)(older_than_seconds=0) == 1
        error = await client.receive_until("error")
        assert error["run_id"] == accepted["run_id"] and error["code"] == "timed_out"
        run = await run_row(accepted["run_id"])
        assert run.status == "failed"
        [partial] = await assistant_messages(companion.pk)
        assert not partial.is_complete and partial.content.startswith("word0")
        user_message = await sync_to_async(Message.objects.get)(role="user")
        assert user_message.content == "Tell me a long story"

        # Retry on a fresh worker: one complete reply, no duplicate.
        fake_llm.token_delay = 0
        worker = start_worker(queue, fake_llm.base_url)
        await client.send({"type": "run.retry", "run_id": accepted["run_id"]})
        await client.receive_until("message.accepted")
        await client.receive_until("done", timeout=60)
        [reply] = await assistant_messages(companion.pk)
        assert reply.is_complete and reply.content == fake_llm.reply_text
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=20)
