"""A burst of sends does not hold another socket's tokens (measured as event order).

The real site (Daphne and a Celery worker, tests/fakes/site.py) on a private
Redis, against the fake LLM. Socket A is streaming a slow reply; then 50 other
sockets, each on a chat of its own, send ``message.send`` at once. Every frame
of every socket lands in one shared timeline in arrival order. A's tokens must
keep arriving while Daphne answers the burst -- interleaved with the burst's
``message.accepted`` answers -- not all after the last one (which is what a
single database thread shared by every socket did: each send's transaction
queued behind the others, and A's events behind them).
"""

from __future__ import annotations

import asyncio

from tests.fakes.chat_socket import ChatSocket, make_account
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import drill_env, run_site

BURST = 50
WORKER = ["--queues=chat,images,memory", "--pool=threads", "--concurrency=60", "--without-mingle",
          "--without-gossip", "--loglevel=WARNING", "-n", "burst@%h"]  # fmt: skip


async def test_a_burst_of_sends_does_not_hold_another_sockets_tokens(redis_server, tmp_path):
    with FakeLLMServer() as llm:
        llm.set_reply(" ".join(f"word{i}" for i in range(400)))
        llm.token_delay = 0.02  # A streams for about 8 s: long past the burst
        env = drill_env(redis_server.url, llm.base_url, var_dir=tmp_path, WS_MAX_SOCKETS_PER_USER="1000")
        with run_site(env, var_dir=tmp_path, workers=[WORKER]) as site:
            secret, companions = await asyncio.to_thread(make_account, site, "burst", BURST + 1)
            timeline: list[tuple[str, dict]] = []
            sockets = [
                ChatSocket(
                    site.ws_url, site.base_url, secret, f"/ws/chat/{cid}/", timeline=timeline, name=str(i)
                )
                for i, cid in enumerate(companions)
            ]
            a, burst = sockets[0], sockets[1:]
            try:
                await asyncio.gather(*(socket.connect(timeout=30) for socket in sockets))
                await a.send_message("tell me a long story", "a")
                run_a = await a.wait_accepted(1, timeout=30)
                await a.wait_for(lambda: a.run(run_a).tokens >= 3, timeout=60)

                start = len(timeline)
                await asyncio.gather(
                    *(socket.send_message("hello", f"b{i}") for i, socket in enumerate(burst))
                )
                burst_runs = await asyncio.gather(*(socket.wait_accepted(1, timeout=120) for socket in burst))
                view = await a.wait_end(run_a, timeout=120)
            finally:
                await asyncio.gather(*(socket.drop() for socket in sockets))

    assert view.ends == ["done"] and view.text == llm.reply_text
    assert len(set(burst_runs)) == BURST
    names = {socket.name for socket in burst}
    during = timeline[start:]
    accepted = [
        i for i, (name, event) in enumerate(during) if name in names and event["type"] == "message.accepted"
    ]
    first, last = accepted[0], accepted[-1]
    a_tokens = [i for i, (name, event) in enumerate(during) if name == a.name and event["type"] == "token"]
    interleaved = [i for i in a_tokens if first < i < last]
    before, after = sum(i < first for i in a_tokens), sum(i > last for i in a_tokens)
    print(f"\nburst: {len(accepted)} message.accepted over {last - first + 1} events; A's tokens: "
          f"{len(interleaved)} between the first and last answer, {before} before, {after} after")  # fmt: skip  # noqa: E501
    assert interleaved, "every token of A waited for the last answer to the burst"
