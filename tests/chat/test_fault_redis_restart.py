"""Fault drill: Redis restarts in the middle of a streamed reply.

The real site runs as child processes (Daphne and a Celery worker, from
``tests/fakes/site.py``) on a private Redis started for this test -- the
cache, the channel layer and the Celery broker all live there -- and an
SQLite file. A websocket client (the ``websockets`` library, as a third-party
program would use) starts a slow reply; Redis is killed (nothing saved) and
started again on the same port. Then:

- the web process is still serving, and a new websocket connection works;
- its snapshot holds the reply state from the database;
- the interrupted run ends -- completed, or failed with a clear error --
  instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests
import websockets

from tests.conftest import require_service
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.services import ServiceUnavailable, private_redis
from tests.fakes.site import run_site, site_env

pytestmark = pytest.mark.fault

WORKER = ["--queues=chat,images", "--pool=threads", "--concurrency=4", "--without-mingle", "--without-gossip",
          "--loglevel=WARNING", "-n", "fault@%h"]  # fmt: skip
SETUP = """
from accounts.models import User
from accounts.tokens import token_create
from tests.companions.factories import make_companion
user = User.objects.create_user(username="drill", email="drill@example.com", password="x-drill-password-1")
companion = make_companion(user)
_, secret = token_create(user=user, name="drill")
print(companion.pk, secret)
"""
RUN_STATUS = "from chat.models import PipelineRun; print(PipelineRun.objects.get(pk='{run_id}').status)"


@pytest.fixture
def redis_server():
    try:
        with private_redis() as server:
            yield server
    except ServiceUnavailable as exc:
        require_service("Redis server", str(exc))


@pytest.fixture
def slow_llm():
    with FakeLLMServer() as llm:
        llm.set_reply(" ".join(f"word{i}" for i in range(150)))
        llm.token_delay = 0.04  # about six seconds of streaming
        yield llm


class Client:
    def __init__(self, site, companion_id: int, secret: str) -> None:
        self.url = f"{site.ws_url}/ws/chat/{companion_id}/"
        self.headers = {"Origin": site.base_url, "Authorization": f"Bearer {secret}"}
        self.ws = None

    async def __aenter__(self) -> Client:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers, open_timeout=10)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def receive_until(self, *types: str, timeout: float = 20) -> dict:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                event = json.loads(await self.ws.recv())
                if event["type"] in types:
                    return event


async def test_a_redis_restart_mid_reply_recovers_and_the_snapshot_has_the_reply(
    redis_server, slow_llm, tmp_path
):
    env = site_env(
        {
            "REDIS_URL": redis_server.url,
            "LLM_BASE_URL": slow_llm.base_url,
            "LLM_API_KEY": "test-key",
            "LLM_MODEL": "fake-model",
            "LLM_READ_TIMEOUT": "10",
        },
        var_dir=tmp_path,
    )
    with run_site(env, var_dir=tmp_path, worker_args=WORKER) as site:
        companion_id, secret = site.manage("shell", "-c", SETUP).split()[-2:]

        async with Client(site, companion_id, secret) as client:
            await client.receive_until("snapshot")
            await client.send({"type": "message.send", "content": "Tell me a long story", "client_id": "c"})
            accepted = await client.receive_until("message.accepted")
            # Well into the reply, past its first checkpoint to the database (about once a second).
            while (await client.receive_until("token", timeout=30))["offset"] < 300:
                pass
            await asyncio.to_thread(redis_server.restart, 0.5)

        # The web process survived, and a new connection gets the state from the database.
        health = await asyncio.to_thread(requests.get, f"{site.base_url}/healthz", timeout=10)
        assert health.status_code in (200, 503)
        assert site.server.poll() is None
        deadline = time.monotonic() + 60
        while True:
            try:
                async with Client(site, companion_id, secret) as client:
                    snapshot = await client.receive_until("snapshot", timeout=10)
                    break
            except (OSError, TimeoutError, websockets.WebSocketException):
                assert time.monotonic() < deadline, "no websocket connection worked after the restart"
                await asyncio.sleep(0.5)
        run = snapshot["run"]
        assert run is not None and run["id"] == accepted["run_id"], snapshot
        assert run["content"].startswith("word0"), run  # the reply so far, from the database

        # The interrupted run ends, one way or the other, rather than hanging. A
        # Celery worker whose broker connection drops with tasks in flight may exit
        # ("Unrecoverable error" from kombu while it restores unacked messages to
        # a Redis that is gone); docker-compose's ``restart: unless-stopped`` (or
        # any supervisor) starts it again, and the chain's next step, already in
        # the restarted Redis, is picked up.
        deadline = time.monotonic() + 60
        while (status := site.manage("shell", "-c", RUN_STATUS.format(run_id=run["id"])).split()[-1]) not in (
            "completed",
            "failed",
        ):
            assert time.monotonic() < deadline, f"the run is still {status!r}"
            site.revive_workers()
            await asyncio.sleep(0.5)
        if status == "failed":
            async with Client(site, companion_id, secret) as client:
                failed = (await client.receive_until("snapshot"))["run"]
            assert failed["error"], failed  # a clear error for the user, not a silent stop

        # And a new turn works end to end on the restarted Redis.
        async with Client(site, companion_id, secret) as client:
            await client.receive_until("snapshot")
            slow_llm.token_delay = 0
            await client.send({"type": "message.send", "content": "Still there?", "client_id": "d"})
            await client.receive_until("message.accepted")
            done = await client.receive_until("done", timeout=60)
            assert done["type"] == "done"
