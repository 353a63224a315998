"""The deployed site under other loads: fan-out, memory, page throughput, replies beside a long picture.

PostgreSQL + Redis + Daphne + the Procfile's two workers (skipped without
the services):

- fan-out: 200 websocket clients on one companion while one reply streams at
  250 tokens/s: tokens delivered per second in total, and tokens per event;
- memory: resident size of the idle web process and the idle chat worker,
  then again after 1,000 turns (growth in %);
- page throughput: requests/s for the companion list and the chat page from
  8 client threads over loopback, and per core;
- a reply's first-token latency while a 30 s picture is being painted on the
  image worker, next to the same figure with no picture running.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import threading
import time

import requests
import websockets

from bench import services
from bench.bench_pipeline import make_accounts, one_client
from bench.stats import percentile, table
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.sd_server import FakeSDServer
from tests.fakes.site import run_site, site_env

FANOUT_CLIENTS = 200
MEMORY_TURNS = 1_000
MEMORY_ROUNDS = 4
THROUGHPUT_SECONDS = 5
THROUGHPUT_THREADS = 8


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid]
    for child in os.listdir("/proc"):
        if child.isdigit():
            try:
                with open(f"/proc/{child}/stat") as f:
                    if int(f.read().split(")")[1].split()[1]) == pid:
                        pids.append(int(child))
            except (OSError, ValueError, IndexError):
                continue
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            continue
    return total / 1024


async def fanout(ws_url: str, account: dict, llm: FakeLLMServer) -> dict:
    headers = services.socket_headers(ws_url, account["token"])
    url = f"{ws_url}/ws/chat/{account['companion']}/"
    sockets = []
    for _ in range(FANOUT_CLIENTS):
        ws = await websockets.connect(url, additional_headers=headers)
        await ws.recv()  # snapshot
        sockets.append(ws)
    received = [0] * len(sockets)
    events = [0] * len(sockets)

    async def listen(n, ws):
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
            if event["type"] == "token":
                received[n] += len(event["text"].split())
                events[n] += 1
            elif event["type"] in ("done", "error"):
                return

    started = time.perf_counter()
    listeners = [asyncio.create_task(listen(n, ws)) for n, ws in enumerate(sockets)]
    await sockets[0].send(json.dumps({"type": "message.send", "content": "fan out"}))
    await asyncio.gather(*listeners)
    elapsed = time.perf_counter() - started
    for ws in sockets:
        await ws.close()
    stream = llm.streams[-1]
    stream_seconds = stream["token_times"][-1] - stream["token_times"][0]
    return {
        "clients": FANOUT_CLIENTS,
        "tokens_delivered_per_s": round(sum(received) / stream_seconds),
        "all_tokens_reached_all": all(r == len(llm.reply_tokens) for r in received),
        "tokens_per_event": round(sum(received) / max(1, sum(events)), 1),
        "turn_seconds": round(elapsed, 2),
    }


def throughput(base_url: str, path: str, cookie: dict) -> float:
    count = 0
    lock = threading.Lock()
    deadline = time.monotonic() + THROUGHPUT_SECONDS

    def hammer():
        nonlocal count
        session = requests.Session()
        session.cookies.update(cookie)
        mine = 0
        while time.monotonic() < deadline:
            response = session.get(base_url + path, timeout=10)
            response.raise_for_status()
            mine += 1
        with lock:
            count += mine

    threads = [threading.Thread(target=hammer) for _ in range(THROUGHPUT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count / THROUGHPUT_SECONDS


def login_cookie(site) -> tuple[dict, int]:
    out = site.manage(
        "shell",
        "-c",
        "from accounts.models import User; from companions.models import Companion; "
        "from tests.companions.factories import VALID; from chat.models import Message; "
        "from chat.conversations import conversation_start; "
        "from django.contrib.sessions.backends.db import SessionStore; "
        "u, _ = User.objects.get_or_create(username='benchpages', defaults={'email': 'bp@example.com'}); "
        "c = Companion.objects.create(owner=u, **VALID); "
        "chat = conversation_start(user=u, companion=c); "
        "Message.objects.bulk_create("
        "Message(conversation=chat, role='user', content='hello ' * 20) for _ in range(60)); "
        "s = SessionStore(); s['_auth_user_id'] = str(u.pk); "
        "s['_auth_user_backend'] = 'accounts.backends.UsernameOrEmailBackend'; "
        "s['_auth_user_hash'] = u.get_session_auth_hash(); s.create(); print(s.session_key, c.pk)",
    )
    key, companion_id = out.split()[-2:]
    return {"sessionid": key}, int(companion_id)


async def first_tokens(ws_url, account, llm, turns: int) -> list[float]:
    results: list[dict] = []
    await one_client(ws_url, account, turns, results, llm, f"side-{time.monotonic_ns()}")
    return [r["first_token"] * 1000 for r in results if "error" not in r]


def run() -> dict:
    problem = services.prepare()
    if problem:
        print(f"skipped ({problem})")
        return {"skipped": problem}
    var = services.bench_dir("site")
    with FakeLLMServer() as llm, FakeSDServer() as sd:
        llm.reply_tokens = [f"word{i} " for i in range(40)]
        env = site_env(
            {
                **services.service_env(),
                "LLM_BASE_URL": llm.base_url,
                "LLM_MODEL": "fake-model",
                "SD_API_URL": sd.base_url,
                "RATELIMIT_ENABLE": "False",
                "WS_MAX_SOCKETS_PER_USER": str(FANOUT_CLIENTS + 10),
            },
            var_dir=var,
        )
        with services.logged_site(run_site, env, var, workers=services.PROCFILE_WORKERS) as site:
            accounts = make_accounts(site, 21)
            web_pid, chat_pid = site.server.pid, site.workers[0].pid
            time.sleep(2)
            idle = {"web_mb": round(rss_mb(web_pid), 1), "worker_mb": round(rss_mb(chat_pid), 1)}

            llm.token_delay = 0.001
            per_client = MEMORY_TURNS // 20 // MEMORY_ROUNDS

            async def memory_load():
                results: list[dict] = []
                await asyncio.gather(
                    *(one_client(site.ws_url, a, per_client, results, llm, "mem") for a in accounts[:20])
                )
                return results

            # Sampled after each quarter: growth that levels off is warm-up, growth that keeps on is a leak.
            curve, turns = [], 0
            for _ in range(MEMORY_ROUNDS):
                turns += len([r for r in asyncio.run(memory_load()) if "error" not in r])
                curve.append((turns, round(rss_mb(web_pid), 1), round(rss_mb(chat_pid), 1)))
            after = {"web_mb": curve[-1][1], "worker_mb": curve[-1][2]}
            memory = {
                "idle": idle,
                "after_turns": turns,
                "after": after,
                "curve_turns_web_worker_mb": curve,
                "web_growth_pct": round((after["web_mb"] / idle["web_mb"] - 1) * 100, 1),
                "worker_growth_pct": round((after["worker_mb"] / idle["worker_mb"] - 1) * 100, 1),
                "worker_growth_last_half_pct": round(
                    (curve[-1][2] / curve[len(curve) // 2 - 1][2] - 1) * 100, 1
                ),
                "web_growth_last_half_pct": round(
                    (curve[-1][1] / curve[len(curve) // 2 - 1][1] - 1) * 100, 1
                ),
            }

            # After the memory turns, so the 200 sockets' buffers are not counted as turn growth.
            llm.token_delay = 1 / 250
            fan = asyncio.run(fanout(site.ws_url, accounts[20], llm))

            cookie, companion_id = login_cookie(site)
            pages = {
                "companion_list_rps": round(throughput(site.base_url, "/companions/", cookie), 1),
                "chat_page_rps": round(throughput(site.base_url, f"/chat/{companion_id}/", cookie), 1),
                "cores": os.cpu_count(),
            }

            llm.token_delay = 1 / 50
            quiet = asyncio.run(first_tokens(site.ws_url, accounts[0], llm, 10))
            sd.delay = 30
            picture = accounts[1]

            async def with_picture():
                headers = services.socket_headers(site.ws_url, picture["token"])
                async with websockets.connect(
                    f"{site.ws_url}/ws/chat/{picture['companion']}/", additional_headers=headers
                ) as ws:
                    await ws.recv()
                    await ws.send(json.dumps({"type": "message.send", "content": "paint", "image": True}))
                    while json.loads(await ws.recv())["type"] != "progress":
                        pass
                    await asyncio.sleep(3)  # the picture step is under way on the image worker
                    return await first_tokens(site.ws_url, accounts[0], llm, 10)

            busy = asyncio.run(with_picture())
            sd.delay = 0
            beside_image = {
                "first_token_p99_ms_quiet": round(percentile(quiet, 99), 1),
                "first_token_p99_ms_during_30s_picture": round(percentile(busy, 99), 1),
                "first_token_p50_ms_quiet": round(statistics.median(quiet), 1),
                "first_token_p50_ms_during_30s_picture": round(statistics.median(busy), 1),
            }
    print(table([tuple(fan.values())], tuple(fan.keys())))
    print(f"Memory (MB): idle {idle}; after {memory['after_turns']} turns {after}")
    print(f"  (turns, web MB, worker MB) after each quarter: {memory['curve_turns_web_worker_mb']}")
    print(f"Pages (req/s, {THROUGHPUT_THREADS} threads): {pages}")
    print(f"Reply first token beside a 30 s picture: {beside_image}")
    return {"fanout": fan, "memory": memory, "pages": pages, "beside_image": beside_image}


if __name__ == "__main__":
    run()
