"""Fault soak: many turns with bursts, reconnects mid-reply, a Daphne restart and a worker restart.

The real site (tests/fakes/site.py, with beat) on a private Redis and an
SQLite file, against the fake LLM. Every client owns a chat and sends its next
message as soon as its last turn ended, so the sends of a round come in
bursts; on every third turn one of its sockets drops after a few tokens and
resumes with ``?after=<seq>``. Half-way through the turns, with replies
streaming, the first Daphne process is restarted and then the first worker (a
deploy's warm shutdown); sockets that lose their server resume the same way.
A send whose socket closed before its answer may have been stored or not: the
client asks the database rather than sending it twice. At the end, at every
socket that stayed or came back, every run ended exactly once (``done`` or an
error) and every ``done`` left exactly the stored reply text.

``SOAK_TURNS`` sets the number of turns (a short soak by default, for
``make test``; the issue's 2,000 with ``SOAK_TURNS=2000``), ``SOAK_CLIENTS``
the number of chats. The second variant runs two Daphne and two worker
processes, with each chat followed by one socket on each Daphne and a reply's
steps taken by whichever worker is free. Worker and web RSS after warm-up and
after the soak are printed (``-s``); a process the restarts started is marked.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import websockets

from tests.fakes.chat_socket import ChatSocket, Refused, Unanswered, make_account, sent_run, stored_runs
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import drill_env, run_site

pytestmark = pytest.mark.fault

TURNS = int(os.environ.get("SOAK_TURNS", "32"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))


def worker_args(n: int) -> list[str]:
    return ["--queues=chat,images,memory", "--pool=threads", "--concurrency=50", "--without-mingle",
            "--without-gossip", "--loglevel=WARNING", "-n", f"soak{n}@%h"]  # fmt: skip


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Chat:
    """One client: a chat and its sockets (one per Daphne), taking turns."""

    def __init__(self, site, companion_id: int, sockets: list[ChatSocket]) -> None:
        self.site = site
        self.companion_id = companion_id
        self.sockets = sockets
        self.runs: list[str] = []
        self.streaming = False
        self.unanswered = 0  # sends whose socket closed before the answer

    async def ensure_open(self, socket: ChatSocket) -> None:
        if socket.closed.is_set():
            await socket.reconnect(within=60)

    async def send(self, n: int) -> str:
        """Send turn ``n``'s message until the server takes it; its run id.

        A send whose socket closes before the answer (a Daphne restart) may have
        been stored or not: the database says which, so it is never sent twice.
        """
        sender = self.sockets[n % len(self.sockets)]
        content = f"turn {n}"
        while True:
            for socket in self.sockets:
                await self.ensure_open(socket)
            since = len(sender.frames)
            try:
                await sender.send_message(content, f"t{n}")
                return await sender.wait_accepted(len(sender.accepted) + 1, since=since, timeout=60)
            except Refused as refused:
                assert refused.frame.get("code") == "busy", refused.frame  # the last turn's steps
                await asyncio.sleep(0.3)
            except (Unanswered, websockets.ConnectionClosed):
                self.unanswered += 1
                await sender.reconnect(within=60)
                if run_id := await asyncio.to_thread(sent_run, self.site, self.companion_id, content):
                    return run_id

    async def turn(self, n: int, *, drop: bool) -> None:
        run_id = await self.send(n)
        self.runs.append(run_id)
        self.streaming = True
        try:
            if drop:
                mover = self.sockets[-1]
                await mover.wait_for(
                    lambda: mover.run(run_id).tokens >= 3 or mover.run(run_id).ended or mover.closed.is_set(),
                    timeout=90,
                )
                await mover.reconnect(within=60)
            for socket in self.sockets:
                while True:
                    await socket.wait_for(
                        lambda s=socket: s.run(run_id).ended or s.closed.is_set(), timeout=90
                    )
                    if socket.run(run_id).ended:
                        break
                    await socket.reconnect(within=60)
        finally:
            self.streaming = False


async def soak(site, llm, *, daphnes: int) -> None:
    urls = [site.base_url] + [await asyncio.to_thread(site.start_extra_server) for _ in range(daphnes - 1)]
    secret, companions = await asyncio.to_thread(make_account, site, "soak", CLIENTS)
    chats = [
        Chat(
            site,
            cid,
            [ChatSocket("ws" + url.removeprefix("http"), url, secret, f"/ws/chat/{cid}/") for url in urls],
        )
        for cid in companions
    ]
    for chat in chats:
        for socket in chat.sockets:
            await socket.connect()

    def rss() -> dict[str, str]:
        """RSS of every server process, by name; a restarted one is a fresh process (``*``)."""
        processes = {"web0": site.server, **{f"web{i + 1}": p for i, (_, p) in enumerate(site.extra_servers)},
                     **{f"worker{i}": p for i, p in enumerate(site.workers)}}  # fmt: skip
        return {
            name: f"{rss_mib(p.pid):.0f}{'*' if p.pid not in first_pids else ''}"
            for name, p in processes.items()
        }

    turns_each = max(1, TURNS // CLIENTS)

    async def client(chat: Chat, index: int) -> None:
        # Every client sends as soon as its last turn ended: the sends of a round come in bursts.
        for n in range(turns_each):
            await chat.turn(n, drop=(n + index) % 3 == 0)

    await asyncio.gather(*(chat.turn(-1, drop=False) for chat in chats))
    first_pids = {site.server.pid, *(p.pid for _, p in site.extra_servers), *(p.pid for p in site.workers)}
    rss_warm = rss()

    restarts_done = asyncio.Event()

    async def faults() -> None:
        # Half-way, with replies streaming: restart the first Daphne, then the first worker.
        async with asyncio.timeout(120 + 2 * TURNS):
            while (  # noqa: ASYNC110
                sum(len(chat.runs) for chat in chats) < len(chats) * (1 + turns_each // 2)
                or sum(chat.streaming for chat in chats) < max(1, len(chats) // 2)
            ):
                await asyncio.sleep(0.05)
        await asyncio.to_thread(site.stop_server)
        await asyncio.to_thread(site.start_server)
        await asyncio.sleep(1)
        await asyncio.to_thread(site.restart_worker, 0)
        restarts_done.set()

    await asyncio.gather(faults(), *(client(chat, i) for i, chat in enumerate(chats)))
    assert restarts_done.is_set()
    rss_after = rss()

    run_ids = [run_id for chat in chats for run_id in chat.runs]
    stored = await asyncio.to_thread(stored_runs, site, run_ids)
    problems = []
    for chat in chats:
        for run_id in chat.runs:
            status, _, text, message_id = stored[run_id]
            for socket in chat.sockets:
                view = socket.run(run_id)
                if len(view.ends) != 1:
                    problems.append(f"{run_id} at {socket.ws_url}: ends {view.ends}")
                elif view.ends == ["done"] and (view.text, view.message_id) != (text, message_id):
                    problems.append(f"{run_id} at {socket.ws_url}: text differs from the stored reply")
                elif view.ends != ["done"] and status != "failed":
                    problems.append(f"{run_id}: error {view.ends} but the run is {status}")
    assert not problems, problems[:10]
    ended = {stored[r][0] for r in run_ids}
    assert ended <= {"completed", "failed"}, ended
    failed = sum(stored[r][0] == "failed" for r in run_ids)
    unanswered = sum(chat.unanswered for chat in chats)
    print(f"\nsoak: {len(run_ids)} turns over {len(chats)} chats x {daphnes} Daphne; failed runs {failed}; "
          f"sends whose socket closed before the answer {unanswered}; RSS MiB after warm-up {rss_warm}, "
          f"after the soak {rss_after} (* a process started by the restarts)")  # fmt: skip
    for chat in chats:
        for socket in chat.sockets:
            await socket.drop()


@pytest.mark.parametrize("processes", [1, 2], ids=["one-web-one-worker", "two-web-two-workers"])
async def test_a_soak_with_bursts_reconnects_and_restarts_ends_every_run_once_with_the_stored_text(
    redis_server, tmp_path, processes
):
    with FakeLLMServer() as llm:
        llm.set_reply(" ".join(f"word{i}" for i in range(60)))
        llm.token_delay = 0.01
        env = drill_env(
            redis_server.url,
            llm.base_url,
            var_dir=tmp_path,
            WS_MAX_SOCKETS_PER_USER="1000",
            CHAT_RUN_LEASE_SECONDS="5",
        )
        with run_site(
            env, var_dir=tmp_path, workers=[worker_args(n) for n in range(processes)], beat=True
        ) as site:
            async with asyncio.timeout(float(os.environ.get("SOAK_SECONDS", 300 + 3 * TURNS))):
                await soak(site, llm, daphnes=processes)
