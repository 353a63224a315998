"""Fault drill: the chat worker is killed (``kill -9``) in the middle of a streamed reply.

The real site runs as child processes (Daphne, a Celery worker, Celery beat)
on a private Redis and an SQLite file; the run's lease is 3 s so the drill is
short. A websocket client starts a slow reply from the fake LLM; after some
tokens the worker is killed and a fresh one started, as a supervisor would.
Then, within a bounded wait (the issue's 30 s):

- the client gets the run's ``error`` with code ``interrupted`` -- once;
- the run is ``failed`` and its reply row keeps at least the text the client
  had reassembled from its tokens;
- ``run.retry`` then streams a new reply to ``done``, with the stored text.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.chat_socket import ChatSocket, make_account, stored_runs
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import drill_env, run_site

pytestmark = pytest.mark.fault

WORKER = ["--queues=chat,images,memory", "--pool=threads", "--concurrency=8", "--without-mingle",
          "--without-gossip", "--loglevel=INFO", "-n", "killed@%h"]  # fmt: skip
NOTICED_WITHIN = 30  # seconds from the kill to the client's error: the bound


async def test_a_worker_killed_mid_reply_ends_the_run_with_interrupted_and_keeps_what_was_shown(
    redis_server, tmp_path
):
    with FakeLLMServer() as llm:
        llm.set_reply(" ".join(f"word{i}" for i in range(300)))
        llm.token_delay = 0.03  # about nine seconds of streaming
        env = drill_env(redis_server.url, llm.base_url, var_dir=tmp_path, CHAT_RUN_LEASE_SECONDS="3")
        with run_site(env, var_dir=tmp_path, worker_args=WORKER, beat=True) as site:
            secret, (companion_id,) = make_account(site, "killed", 1)
            client = ChatSocket(site.ws_url, site.base_url, secret, f"/ws/chat/{companion_id}/")
            await client.connect()
            try:
                await client.send_message("Tell me a long story", "k1")
                run_id = await client.wait_accepted(1)
                await client.wait_for(lambda: client.run(run_id).tokens >= 20, timeout=30)
                await asyncio.to_thread(site.kill_worker)
                shown = client.run(run_id).text
                assert shown.startswith("word0")
                await asyncio.to_thread(site.revive_workers)

                view = await client.wait_end(run_id, timeout=NOTICED_WITHIN)
                assert view.ends == ["interrupted"], view.ends
                status, code, stored, _ = (await asyncio.to_thread(stored_runs, site, [run_id]))[run_id]
                assert (status, code) == ("failed", "interrupted")
                assert stored is not None and stored.startswith(shown.rstrip()), (shown, stored)

                # Retry streams the reply again, to the end, on the fresh worker.
                llm.token_delay = 0
                await client.send({"type": "run.retry", "run_id": run_id})
                retried = await client.wait_accepted(2)
                view = await client.wait_end(retried, timeout=60)
                assert view.ends == ["done"], view.ends
                status, _, stored, message_id = (await asyncio.to_thread(stored_runs, site, [retried]))[
                    retried
                ]
                assert status == "completed"
                assert (view.text, view.message_id) == (stored, message_id)
                await asyncio.sleep(0.5)  # nothing more of either run comes after its end
                assert client.run(run_id).ends == ["interrupted"] and view.ends == ["done"]
            finally:
                await client.drop()
