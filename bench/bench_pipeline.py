"""What the chat pipeline adds on top of the LLM, seen from a websocket client.

The site runs as in production (Daphne, Celery), pointed at the local fake
LLM, which streams a fixed reply at a fixed token rate. Clients are real
websocket clients (the ``websockets`` library) using API tokens. Two figures:

- first-token latency: the client receiving the first ``token`` event minus
  the fake server writing the first token (same process, same clock);
- turn overhead: from sending ``message.send`` to ``done``, minus the time the
  fake needs to emit the reply ((tokens - 1) x token delay). It holds both
  scene analyses, queueing, state, database writes and every hop.

Modes: ``embedded`` (SQLite, in-memory broker and layer, worker inside the
web process) and ``redis`` (PostgreSQL + Redis + a separate ``celery worker``
started as the Procfile does), each with 1 and with 20 concurrent chats.
The redis mode needs PostgreSQL and Redis on the default local ports (or
``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL``) and is skipped without them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import psycopg
import redis
import websockets

from bench.stats import percentile, table
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import run_site, site_env

TOKENS = 40
TOKEN_DELAY = 0.02  # 50 tokens/s, a typical hosted 70B model
CONCURRENCY = (1, 20)
TURNS_PER_CLIENT = {1: 15, 20: 3}
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/companionhub_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
# As the Procfile runs them: a threads worker for replies, one process for pictures.
WORKER_ARGS = ["--queues=chat,images", "--pool=threads", "--concurrency=20", "--loglevel=WARNING"]

SETUP = """
import json
from accounts.models import User
from accounts.tokens import token_create
from companions.models import Companion
from tests.companions.factories import VALID
out = []
for n in range({count}):
    email = f"bench{{n}}@example.com"
    user, _ = User.objects.get_or_create(username=f"bench{{n}}", defaults={{"email": email}})
    Companion.objects.filter(owner=user).delete()
    companion = Companion.objects.create(owner=user, **VALID)
    out.append({{"companion": companion.pk, "token": token_create(user=user, name="bench")[1]}})
print(json.dumps(out))
"""


async def one_client(ws_url: str, account: dict, turns: int, results: list, llm: FakeLLMServer, tag: str):
    headers = {"Authorization": f"Bearer {account['token']}", "Origin": "http://127.0.0.1"}
    async with websockets.connect(
        f"{ws_url}/ws/chat/{account['companion']}/", additional_headers=headers
    ) as ws:
        json.loads(await ws.recv())  # snapshot
        for turn in range(turns):
            text = f"{tag} {account['companion']} turn {turn}"
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "message.send", "content": text}))
            first_token = None
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
                if event["type"] == "token" and first_token is None:
                    first_token = time.perf_counter()
                elif event["type"] == "error":
                    raise RuntimeError(f"turn failed: {event}")
                elif event["type"] == "done":
                    break
            finished = time.perf_counter()
            stream = next(s for s in reversed(llm.streams) if s.get("last_user") == text)
            results.append(
                {
                    "first_token": first_token - stream["first_token_at"],
                    "overhead": (finished - sent) - (TOKENS - 1) * TOKEN_DELAY,
                }
            )


async def run_load(ws_url: str, accounts: list[dict], concurrency: int, llm: FakeLLMServer) -> list[dict]:
    results: list[dict] = []
    tag = f"c{concurrency}-{time.monotonic_ns()}"
    await asyncio.gather(
        *(
            one_client(ws_url, a, TURNS_PER_CLIENT[concurrency], results, llm, tag)
            for a in accounts[:concurrency]
        )
    )
    return results


def measure(
    mode: str, env: dict, var: Path, llm: FakeLLMServer, worker_args: list[str] | None
) -> list[tuple]:
    rows = []
    try:
        with run_site(env, var_dir=var, worker_args=worker_args) as site:
            _measure_site(site, mode, llm, rows)
    except Exception:
        for log in sorted(var.glob("*.log")):
            print(f"--- last lines of {log.name} ---\n{log.read_text()[-2000:]}")
        raise
    return rows


def _measure_site(site, mode: str, llm: FakeLLMServer, rows: list) -> None:
    accounts = json.loads(
        site.manage("shell", "-c", SETUP.format(count=max(CONCURRENCY))).strip().splitlines()[-1]
    )
    asyncio.run(run_load(site.ws_url, accounts, 1, llm))  # warm up: imports, connections, caches
    for concurrency in CONCURRENCY:
        results = asyncio.run(run_load(site.ws_url, accounts, concurrency, llm))
        first = [r["first_token"] * 1000 for r in results]
        over = [r["overhead"] * 1000 for r in results]
        rows.append(
            (
                mode,
                concurrency,
                len(results),
                f"{statistics.median(first):.1f}",
                f"{percentile(first, 99):.1f}",
                f"{statistics.median(over):.0f}",
                f"{percentile(over, 99):.0f}",
            )
        )


def services_available() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        return f"Redis: {exc}"
    admin_url = PG_URL.rsplit("/", 1)[0] + "/postgres"
    name = PG_URL.rsplit("/", 1)[1]
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        return f"PostgreSQL: {exc}"
    return None


def run() -> list[tuple]:
    rows = []
    # Logs of the site's processes stay in var/bench/ for a look after the run.
    tmp = Path(os.environ.get("BENCH_DIR", Path(__file__).resolve().parents[1] / "var" / "bench"))
    shutil.rmtree(tmp, ignore_errors=True)
    with FakeLLMServer() as llm:
        llm.reply_tokens = [f"word{i} " for i in range(TOKENS)]
        llm.token_delay = TOKEN_DELAY
        base = {"LLM_BASE_URL": llm.base_url, "LLM_MODEL": "fake-model"}
        embedded = site_env(base, var_dir=Path(tmp) / "embedded")
        rows += measure("embedded", embedded, Path(tmp) / "embedded", llm, worker_args=None)
        problem = services_available()
        if problem:
            print(f"redis mode skipped ({problem})")
        else:
            redis.Redis.from_url(REDIS_URL).flushdb()
            with_services = site_env(
                {**base, "DATABASE_URL": PG_URL, "REDIS_URL": REDIS_URL}, var_dir=Path(tmp) / "redis"
            )
            rows += measure(
                "redis + worker", with_services, Path(tmp) / "redis", llm, worker_args=WORKER_ARGS
            )
    print(f"Fake LLM: {TOKENS} tokens at {1 / TOKEN_DELAY:.0f} tokens/s; times in ms")
    print(
        table(
            rows,
            ("mode", "chats", "turns", "first token p50", "p99", "turn overhead p50", "p99"),
        )
    )
    return rows


if __name__ == "__main__":
    run()
