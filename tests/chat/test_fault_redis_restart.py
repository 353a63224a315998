"""Fault drill: Redis restarts in the middle of a streamed reply.

The real site runs as child processes (two Daphne processes and a Celery
worker, from ``tests/fakes/site.py``) on a private Redis started for this
test -- the cache, the relay's log and the Celery broker all live there --
and an SQLite file. Two clients (the ``websockets`` library, as a third-party
program would use) follow one chat, one on each Daphne; a slow reply starts,
and Redis is killed (nothing saved) and started again on the same port. Then:

- the worker process stays up (no supervisor restarts it here) and the run
  completes, or fails with an error -- it never stays stuck;
- a socket that stayed open, and one that reconnects with ``?after=<seq>``
  (docs/websocket.md), each end the run with exactly one ``done`` or error and,
  on ``done``, exactly the stored reply text;
- the first reconnect to each Daphne works (no HTTP 500 from a stale connection);
- a new turn works end to end on the restarted Redis.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.chat_socket import ChatSocket, make_account, stored_runs
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import drill_env, run_site

pytestmark = pytest.mark.fault

WORKER = ["--queues=chat,images,memory", "--pool=threads", "--concurrency=8", "--without-mingle",
          "--without-gossip", "--loglevel=INFO", "-n", "fault@%h"]  # fmt: skip


async def assert_ends_with_the_stored_reply(site, client: ChatSocket, run_id: str) -> str:
    view = await client.wait_end(run_id, timeout=60)
    assert len(view.ends) == 1, view.ends
    status, _, stored, message_id = (await asyncio.to_thread(stored_runs, site, [run_id]))[run_id]
    if view.ends == ["done"]:
        assert status == "completed"
        assert (view.text, view.message_id) == (stored, message_id)
    else:
        assert status == "failed"
    return view.ends[0]


async def test_a_redis_restart_mid_reply_keeps_the_worker_up_and_every_socket_ends_with_the_stored_text(
    redis_server, tmp_path
):
    with FakeLLMServer() as llm:
        llm.set_reply(" ".join(f"word{i}" for i in range(250)))
        llm.token_delay = 0.03  # about seven seconds of streaming
        env = drill_env(redis_server.url, llm.base_url, var_dir=tmp_path, LLM_READ_TIMEOUT="10")
        with run_site(env, var_dir=tmp_path, worker_args=WORKER) as site:
            other_url = await asyncio.to_thread(site.start_extra_server)
            secret, (companion_id,) = make_account(site, "drill", 1)
            path = f"/ws/chat/{companion_id}/"
            stays = ChatSocket(site.ws_url, site.base_url, secret, path)
            returns = ChatSocket("ws" + other_url.removeprefix("http"), other_url, secret, path)
            await stays.connect()
            await returns.connect()
            try:
                await stays.send_message("Tell me a long story", "c")
                run_id = await stays.wait_accepted(1)
                await stays.wait_for(lambda: stays.run(run_id).tokens >= 15, timeout=30)
                await returns.drop()
                await asyncio.to_thread(redis_server.restart, 0.5)

                # The first reconnect to either Daphne works: no 500 from a stale connection.
                assert await returns.reconnect(within=0) == 1
                await asyncio.sleep(1)
                if stays.closed.is_set():  # the server may close a socket it cannot follow
                    assert await stays.reconnect(within=0) == 1

                ends = {await assert_ends_with_the_stored_reply(site, s, run_id) for s in (stays, returns)}
                assert len(ends) == 1, ends  # both saw the same end
                assert site.workers[0].poll() is None, "the worker exited"

                # And a new turn works end to end on the restarted Redis, at both sockets.
                llm.token_delay = 0
                await returns.send_message("Still there?", "d")
                second = await returns.wait_accepted(1)
                for client in (stays, returns):
                    assert await assert_ends_with_the_stored_reply(site, client, second) == "done"
                assert site.workers[0].poll() is None, "the worker exited"
            finally:
                await stays.drop()
                await returns.drop()
