"""What the chat pipeline adds on top of the LLM, seen from real websocket clients.

The site runs as deployed (Daphne, Celery) against the local fake LLM, which
streams a fixed reply at a fixed token rate and records when it wrote each
token. Clients are real websocket clients (``websockets``) using API tokens.

- first token: the client receiving the first ``token`` event minus the fake
  writing the first token (same process, same clock);
- added delay: for every token event, its arrival minus the moment the fake
  wrote the last token it carries; p99 over all events (what batching and
  every hop add between tokens);
- burst ratio: client gap between token events (p50) over the upstream gap
  between tokens, with the batching factor (tokens per event);
- turn overhead: ``message.send`` to ``done`` minus the time the fake needs to
  emit the reply; it holds both scene analyses, five task hops, database
  writes and every network hop.
- "own row": one chat at 50 tok/s again, with every companion pinned to a
  connection row, model and sampler preset of its own instead of the default
  connection, beside the default's figure from the same run.

Modes: ``embedded`` (SQLite, in-memory broker and layer, worker in the web
process) and ``redis`` (PostgreSQL + Redis + separate ``celery worker``
processes as the Procfile runs them).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import statistics
import time
from pathlib import Path

import websockets

from bench import services
from bench.stats import percentile, table
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import run_site, site_env

TOKENS = 40
RATES = (50, 250)  # tokens per second written by the fake LLM
CONCURRENCY = (1, 20, 100)
TURNS_PER_CLIENT = {1: 15, 20: 3, 100: 1}
EMBEDDED_CONCURRENCY = (1, 20)
LOST_AFTER = 30  # seconds without an event during a turn: count it as lost, go on

SETUP = """
import json
from accounts.models import ApiToken, User
from accounts.tokens import token_create
from companions.models import Companion
from tests.companions.factories import VALID
out = []
for n in range({count}):
    email = f"bench{{n}}@example.com"
    user, _ = User.objects.get_or_create(username=f"bench{{n}}", defaults={{"email": email}})
    Companion.objects.filter(owner=user).delete()
    ApiToken.objects.filter(user=user, name="bench").delete()  # every run makes its own; keep under the cap
    companion = Companion.objects.create(owner=user, **VALID)
    out.append({{"companion": companion.pk, "token": token_create(user=user, name="bench")[1]}})
print(json.dumps(out))
"""


def make_accounts(site, count: int) -> list[dict]:
    return json.loads(site.manage("shell", "-c", SETUP.format(count=count)).strip().splitlines()[-1])


async def one_client(ws_url, account, turns, results, llm, tag):
    headers = services.socket_headers(ws_url, account["token"])
    ends = [0]
    for token in llm.reply_tokens:
        ends.append(ends[-1] + len(token))
    async with websockets.connect(
        f"{ws_url}/ws/chat/{account['companion']}/", additional_headers=headers
    ) as ws:
        json.loads(await ws.recv())  # snapshot
        for turn in range(turns):
            text = f"{tag} {account['companion']} turn {turn}"
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "message.send", "content": text}))
            arrivals = []  # (arrival, end offset, tokens in event)
            error = None
            run_id = None
            while True:
                try:
                    event = json.loads(await asyncio.wait_for(ws.recv(), timeout=LOST_AFTER))
                except TimeoutError:
                    error = "lost_event"  # the run ended but its last event never reached us
                    break
                now = time.perf_counter()
                if event["type"] == "message.accepted":
                    run_id = event["run_id"]
                elif event["type"] == "token":
                    end = event["offset"] + len(event["text"])
                    arrivals.append((now, end, len(event["text"].split())))
                elif event["type"] == "error":
                    error = event["code"]
                    break
                elif event["type"] == "done":
                    break
            if error or not arrivals:
                results.append(
                    {"error": error or "no_tokens", "run_id": run_id, "tokens_seen": len(arrivals)}
                )
                continue
            finished = time.perf_counter()
            stream = next(s for s in reversed(llm.streams) if s.get("last_user") == text)
            times = stream["token_times"]
            added = []
            for arrival, end, _ in arrivals:
                index = max(0, min(len(times) - 1, bisect.bisect_right(ends, end) - 2))
                added.append(arrival - times[index])
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
            results.append(
                {
                    "first_token": arrivals[0][0] - stream["first_token_at"],
                    "overhead": (finished - sent) - (times[-1] - times[0]),
                    "added": added,
                    "gaps": gaps,
                    "per_event": [n for *_, n in arrivals],
                    "finished": finished,
                }
            )


async def run_load(ws_url, accounts, concurrency, llm) -> tuple[list[dict], float]:
    results: list[dict] = []
    tag = f"c{concurrency}-{time.monotonic_ns()}"
    started = time.perf_counter()
    await asyncio.gather(
        *(
            one_client(ws_url, a, TURNS_PER_CLIENT[concurrency], results, llm, tag)
            for a in accounts[:concurrency]
        ),
        return_exceptions=False,
    )
    return results, time.perf_counter() - started


def summarize(mode: str, rate: int, concurrency: int, results: list[dict], elapsed: float) -> dict:
    ok = [r for r in results if "error" not in r]
    errors = len(results) - len(ok)
    ms = lambda values: [v * 1000 for v in values]  # noqa: E731
    first = ms(r["first_token"] for r in ok)
    over = ms(r["overhead"] for r in ok)
    added = ms(a for r in ok for a in r["added"])
    gaps = [g for r in ok for g in r["gaps"]]
    per_event = [n for r in ok for n in r["per_event"]]
    upstream_gap = 1 / rate
    return {
        "mode": mode,
        "tokens_per_s": rate,
        "chats": concurrency,
        "turns": len(ok),
        "errors": errors,
        "lost": sum(1 for r in results if r.get("error") == "lost_event"),
        "turns_per_min": round(len(ok) / elapsed * 60, 1),
        "first_token_p50_ms": round(statistics.median(first), 1),
        "first_token_p99_ms": round(percentile(first, 99), 1),
        "added_delay_p99_ms": round(percentile(added, 99), 1),
        "burst_ratio": round(statistics.median(gaps) / upstream_gap, 2) if gaps else None,
        "tokens_per_event": round(statistics.mean(per_event), 1),
        "turn_overhead_p50_ms": round(statistics.median(over)),
        "turn_overhead_p99_ms": round(percentile(over, 99)),
    }


# Every bench companion pinned to a connection row of its own (not the default), with a
# model and a sampler preset: what a companion switched in its model page looks like.
PIN = """
from chat.backend_models import Connection, SamplerPreset
from chat.connections import companion_backend_set
connection, _ = Connection.objects.update_or_create(
    name="Bench pinned",
    defaults={{"kind": "llm", "provider": "openai-compatible", "base_url": {base_url!r},
              "default_model": "fake-pinned", "is_default": False, "enabled": True}},
)
preset, _ = SamplerPreset.objects.update_or_create(
    name="Bench preset", owner=None, defaults={{"temperature": 0.7, "top_p": 0.9, "min_p": 0.05}}
)
for companion_id in {ids!r}:
    companion_backend_set(companion_id=companion_id, llm_connection=connection, model="fake-pinned",
                          preset=preset, image_connection=None)
"""


def measure(mode: str, env: dict, var: Path, llm: FakeLLMServer, workers: list[list[str]]) -> list[dict]:
    rows = []
    concurrency = EMBEDDED_CONCURRENCY if mode == "embedded" else CONCURRENCY
    with services.logged_site(run_site, env, var, workers=workers) as site:
        accounts = make_accounts(site, max(concurrency))
        llm.token_delay = 1 / RATES[0]
        asyncio.run(run_load(site.ws_url, accounts, 1, llm))  # warm up: imports, connections, caches
        for rate in RATES:
            llm.token_delay = 1 / rate
            for chats in concurrency:
                results, elapsed = asyncio.run(run_load(site.ws_url, accounts, chats, llm))
                rows.append(summarize(mode, rate, chats, results, elapsed))
                explain_failures(site, results)
        # The same first-token scenario with each companion on a connection row of its own:
        # the lookup of its connection, model and preset must not show in the figure.
        site.manage("shell", "-c", PIN.format(base_url=llm.base_url, ids=[a["companion"] for a in accounts]))
        llm.token_delay = 1 / RATES[0]
        asyncio.run(run_load(site.ws_url, accounts, 1, llm))  # warm the pinned client
        results, elapsed = asyncio.run(run_load(site.ws_url, accounts, 1, llm))
        rows.append(summarize(f"{mode}, own row", RATES[0], 1, results, elapsed))
        explain_failures(site, results)
    return rows


RUN_STATES = """
from chat.models import PipelineRun
for run in PipelineRun.objects.filter(pk__in={run_ids!r}):
    print("RUN", run.pk, run.status, run.step or "-", run.progress, run.error_code or "-", run.step_durations)
"""


def explain_failures(site, results: list[dict]) -> None:
    """Print what the database says of each turn the client saw fail or lose, so a miss has a cause."""
    failed = [r for r in results if "error" in r]
    run_ids = [r["run_id"] for r in failed if r.get("run_id")]
    for r in failed:
        print(f"  turn failed at the client: {r['error']} after {r.get('tokens_seen', 0)} token events")
    if run_ids:
        for line in site.manage("shell", "-c", RUN_STATES.format(run_ids=run_ids)).splitlines():
            if line.startswith("RUN "):
                print(f"  its run in the database: {line.removeprefix('RUN ')}")


COLUMNS = (
    ("mode", "mode"),
    ("tok/s", "tokens_per_s"),
    ("chats", "chats"),
    ("turns", "turns"),
    ("errors", "errors"),
    ("lost", "lost"),
    ("turns/min", "turns_per_min"),
    ("first p50", "first_token_p50_ms"),
    ("first p99", "first_token_p99_ms"),
    ("added p99", "added_delay_p99_ms"),
    ("burst", "burst_ratio"),
    ("tok/event", "tokens_per_event"),
    ("overhead p50", "turn_overhead_p50_ms"),
    ("overhead p99", "turn_overhead_p99_ms"),
)


def run() -> dict:
    var = services.bench_dir("pipeline")
    rows: list[dict] = []
    with FakeLLMServer() as llm:
        llm.reply_tokens = [f"word{i} " for i in range(TOKENS)]
        base = {"LLM_BASE_URL": llm.base_url, "LLM_MODEL": "fake-model", "RATELIMIT_ENABLE": "False"}
        rows += measure(
            "embedded", site_env(base, var_dir=var / "embedded"), var / "embedded", llm, workers=[]
        )
        problem = services.prepare()
        if problem:
            print(f"redis mode skipped ({problem})")
        else:
            env = site_env({**base, **services.service_env()}, var_dir=var / "redis")
            rows += measure("redis", env, var / "redis", llm, workers=services.PROCFILE_WORKERS)
    print(f"Fake LLM: {TOKENS}-token replies; times in ms")
    print(table([tuple(r[key] for _, key in COLUMNS) for r in rows], tuple(h for h, _ in COLUMNS)))
    return {"rows": rows}


if __name__ == "__main__":
    run()
