"""``GET /metrics``: Prometheus text exposition (format 0.0.4), written by hand.

Where each series comes from (docs/metrics.md lists them all):

* **from the database, at scrape time**: runs by status (a gauge: wiping a
  chat deletes its runs), and tokens and pictures from the usage ledger
  (``UsageTransaction``: one row per finished run, never changed, kept when
  chats are wiped; so these are counters that survive restarts).
* **counted in the cache where the event happens**, with ``INCR`` so every
  web and worker process adds to the same number (Redis; the locmem cache
  of the embedded default is the one process's): step durations (a
  histogram, recorded when each pipeline step ends), rate-limit refusals
  per scope, page cache hits and misses. They start again from zero when the
  cache is flushed, which Prometheus treats as a counter reset.
* **websocket connections open now**: each process keeps its own count in
  memory and publishes it under a key of its own with a short TTL, renewed by
  a heartbeat while it has sockets; the gauge is the sum of the keys that
  are still alive. A process that dies without closing its sockets stops
  renewing its key, and its sockets leave the sum within ``WS_KEY_TTL``.
* **circuit breakers**: their state, read from the cache they live in.

This module imports no app: the apps register what only they can read (the
runs and the breakers from chat/apps.py, the usage totals from
accounts/apps.py). A family whose source is not registered has no samples.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple, Protocol

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from companionhub import pagecache

log = structlog.get_logger(__name__)

PREFIX = "metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The step-duration histogram's upper bounds, in seconds.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# The pipeline's steps, named by the app that declares them (chat, when it is ready): this
# module imports no app. Each has its histogram, with zeros before its first observation.
_step_names: tuple[str, ...] = ()


def register_steps(names: Iterable[str]) -> None:
    global _step_names
    _step_names = tuple(names)


def step_names() -> tuple[str, ...]:
    return _step_names


# --- counters in the cache -------------------------------------------------------------


def incr(key: str, amount: int = 1) -> None:
    """Add to a counter shared by every process; never raises (metrics must not break work)."""
    incr_many({key: amount})


def incr_many(amounts: dict[str, int]) -> None:
    """Add to several counters at once; never raises.

    On Redis it is one pipelined round trip of ``INCRBY`` (which creates a
    missing key), instead of Django's add-then-incr of three round trips per
    key: every pipeline step records three counters. Django's Redis cache
    stores integers as plain numbers, so ``cache.get`` reads them back.
    """
    try:
        client = _redis_client()
        if client is None:
            for key, amount in amounts.items():
                _incr_in_cache(key, amount)
            return
        with client.pipeline(transaction=False) as pipe:
            for key, amount in amounts.items():
                pipe.incrby(cache.make_and_validate_key(key), amount)
            pipe.execute()
    except Exception as exc:
        log.debug("metrics_incr_failed", keys=sorted(amounts)[:3], error=type(exc).__name__)


def _redis_client():
    """The raw client of the default cache when it is Django's Redis cache, else None."""
    backend = caches["default"]
    return backend._cache.get_client(write=True) if isinstance(backend, RedisCache) else None


def _incr_in_cache(key: str, amount: int) -> None:
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key, amount)
    except ValueError:  # evicted between add and incr
        cache.set(key, amount, timeout=None)


def count_rate_limit_hit(scope: str) -> None:
    incr(f"{PREFIX}:ratelimit:{scope}")


RELAY_RESYNCS = f"{PREFIX}:relay:resyncs"


def count_relay_resync() -> None:
    """A socket missed events the relay's log no longer held and was sent a fresh snapshot."""
    incr(RELAY_RESYNCS)


def observe_step_duration(step: str, milliseconds: float) -> None:
    """One observation of the step-duration histogram (bucket, count and sum)."""
    seconds = milliseconds / 1000
    index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
    incr_many(
        {
            f"{PREFIX}:step:{step}:bucket:{index}": 1,
            f"{PREFIX}:step:{step}:count": 1,
            f"{PREFIX}:step:{step}:sum_ms": max(round(milliseconds), 0),
        }
    )


# --- websocket connections, per process ----------------------------------------------

WS_KEY_TTL = 90  # seconds a process's count survives without a heartbeat
WS_HEARTBEAT = 30
WS_DIRECTORY = f"{PREFIX}:ws:processes"
PROCESS_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

_ws_lock = threading.Lock()
_ws_open = 0
_heartbeats: dict[int, asyncio.Task] = {}  # one per event loop


def _ws_key(process_id: str) -> str:
    return f"{PREFIX}:ws:process:{process_id}"


def _publish_ws_count(count: int) -> None:
    """Write this process's count, and list the process in the directory (pruning the dead)."""
    now = time.time()
    cache.set(_ws_key(PROCESS_ID), count, timeout=WS_KEY_TTL)
    directory = cache.get(WS_DIRECTORY) or {}
    # Two processes writing at once may drop one entry; its next heartbeat puts it back.
    directory = {pid: seen for pid, seen in directory.items() if now - seen < WS_KEY_TTL}
    directory[PROCESS_ID] = now
    cache.set(WS_DIRECTORY, directory, timeout=None)


async def _publish(count: int) -> None:
    try:
        await sync_to_async(_publish_ws_count, thread_sensitive=False)(count)
    except Exception as exc:
        log.warning("metrics_ws_publish_failed", error=type(exc).__name__)


async def _heartbeat() -> None:
    while True:
        await asyncio.sleep(WS_HEARTBEAT)
        with _ws_lock:
            count = _ws_open
        await _publish(count)
        if count == 0:
            return


def _ensure_heartbeat() -> None:
    loop = asyncio.get_running_loop()
    task = _heartbeats.get(id(loop))
    if task is None or task.done():
        _heartbeats[id(loop)] = loop.create_task(_heartbeat())


async def websocket_opened() -> None:
    global _ws_open
    with _ws_lock:
        _ws_open += 1
        count = _ws_open
    await _publish(count)
    _ensure_heartbeat()


async def websocket_closed() -> None:
    global _ws_open
    with _ws_lock:
        _ws_open = max(_ws_open - 1, 0)
        count = _ws_open
    await _publish(count)
    if count == 0:  # nothing left to keep alive on this loop
        task = _heartbeats.pop(id(asyncio.get_running_loop()), None)
        if task is not None:
            task.cancel()


def websocket_connections() -> int:
    """Sockets open now across every process whose key is still alive."""
    directory = cache.get(WS_DIRECTORY) or {}
    if not directory:
        return 0
    counts = cache.get_many([_ws_key(pid) for pid in directory])
    return sum(int(value) for value in counts.values())


# --- what only the apps can read: they register it (chat/apps.py, accounts/apps.py) ---


class UsageTotals(NamedTuple):
    """The usage ledger summed over every run ever charged."""

    prompt_tokens: int
    completion_tokens: int
    images: int


class BreakerReading(Protocol):
    """A circuit breaker's state as it is exposed."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...  # closed | open | half_open
    @property
    def failures(self) -> int: ...


class Breaker(Protocol):
    def status(self) -> BreakerReading: ...


RunCounts = Callable[[], Mapping[str, int]]  # every run status -> runs in it now, zero included
UsageSource = Callable[[], UsageTotals]
Breakers = Callable[[], Iterable[Breaker]]  # one per back-end connection and the demo back ends'
_run_counts: RunCounts | None = None
_usage_totals: UsageSource | None = None
_breakers_source: Breakers | None = None


def register_run_counts(source: RunCounts) -> None:
    global _run_counts
    _run_counts = source


def register_usage_totals(source: UsageSource) -> None:
    global _usage_totals
    _usage_totals = source


def register_breakers(source: Breakers) -> None:
    global _breakers_source
    _breakers_source = source


# --- exposition ----------------------------------------------------------------------


def escape_label(value: str) -> str:
    """Label values: backslash, double quote and line feed are escaped (format 0.0.4)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isnan(value):
            return "NaN"
        return repr(value)
    return str(value)


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        if labels:
            inner = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _runs(out: Exposition) -> None:
    counts = _run_counts() if _run_counts else {}
    out.family("companionhub_pipeline_runs", "gauge", "Pipeline runs in the database, by status.")
    for status, count in counts.items():
        out.sample("companionhub_pipeline_runs", count, {"status": status})


def _usage(out: Exposition) -> None:
    totals = _usage_totals() if _usage_totals else None
    out.family("companionhub_tokens_total", "counter", "LLM tokens charged for finished runs, by kind.")
    if totals is not None:
        out.sample("companionhub_tokens_total", totals.prompt_tokens, {"kind": "prompt"})
        out.sample("companionhub_tokens_total", totals.completion_tokens, {"kind": "completion"})
    out.family("companionhub_images_generated_total", "counter", "Pictures painted for chat replies.")
    if totals is not None:
        out.sample("companionhub_images_generated_total", totals.images)


def _steps(out: Exposition) -> None:
    keys = [
        f"{PREFIX}:step:{step}:{part}"
        for step in step_names()
        for part in [*(f"bucket:{i}" for i in range(len(BUCKETS) + 1)), "count", "sum_ms"]
    ]
    values = cache.get_many(keys)
    name = "companionhub_step_duration_seconds"
    out.family(name, "histogram", "Time each pipeline step took, recorded when the step ends.")
    for step in step_names():
        cumulative = 0
        for i, bound in enumerate([*BUCKETS, math.inf]):
            cumulative += int(values.get(f"{PREFIX}:step:{step}:bucket:{i}") or 0)
            le = "+Inf" if math.isinf(bound) else _number(bound)
            out.sample(f"{name}_bucket", cumulative, {"step": step, "le": le})
        out.sample(f"{name}_sum", int(values.get(f"{PREFIX}:step:{step}:sum_ms") or 0) / 1000, {"step": step})
        out.sample(f"{name}_count", int(values.get(f"{PREFIX}:step:{step}:count") or 0), {"step": step})


def _rate_limits(out: Exposition, scopes: Iterable[str]) -> None:
    scopes = sorted(scopes)
    values = cache.get_many([f"{PREFIX}:ratelimit:{scope}" for scope in scopes])
    out.family("companionhub_rate_limit_hits_total", "counter", "Requests refused by a rate limit, by scope.")
    for scope in scopes:
        out.sample(
            "companionhub_rate_limit_hits_total",
            int(values.get(f"{PREFIX}:ratelimit:{scope}") or 0),
            {"scope": scope},
        )


def _websockets(out: Exposition) -> None:
    out.family("companionhub_websocket_connections", "gauge", "Chat websockets open now, in every process.")
    out.sample("companionhub_websocket_connections", websocket_connections())
    name = "companionhub_relay_resyncs_total"
    out.family(
        name,
        "counter",
        "Sockets sent a fresh snapshot because the relay's log no longer held what they missed.",
    )
    out.sample(name, int(cache.get(RELAY_RESYNCS) or 0))


def _breakers(out: Exposition) -> None:
    # One breaker per connection ("llm:<id>", "image:<id>") and the demo back ends' ("llm", "images").
    states = [breaker.status() for breaker in _breakers_source()] if _breakers_source else []
    out.family(
        "companionhub_circuit_breaker_state", "gauge", "1 for the state each back end's breaker is in."
    )
    for state in states:
        for name in ("closed", "open", "half_open"):
            out.sample(
                "companionhub_circuit_breaker_state",
                int(state.state == name),
                {"backend": state.name, "state": name},
            )
    out.family("companionhub_circuit_breaker_failures", "gauge", "Straight failures counted by each breaker.")
    for state in states:
        out.sample("companionhub_circuit_breaker_failures", int(state.failures), {"backend": state.name})


def _page_cache(out: Exposition) -> None:
    pages = pagecache.stats()["pages"]
    name = "companionhub_page_cache_requests_total"
    out.family(name, "counter", "Page cache lookups, by page and result.")
    for page, row in pages.items():
        out.sample(name, row["hits"], {"page": page, "result": "hit"})
        out.sample(name, row["misses"], {"page": page, "result": "miss"})


def render() -> str:
    """The whole exposition, every family once."""
    out = Exposition()
    _runs(out)
    _usage(out)
    _steps(out)
    _rate_limits(out, settings.RATE_LIMITS)
    _websockets(out)
    _breakers(out)
    _page_cache(out)
    return out.text()
