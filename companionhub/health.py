"""``GET /healthz``: is every part the site needs reachable, and how fast?

Each check returns ``{"ok": bool, "latency_ms": float, ...}``. The response
is 200 when every *critical* check passes and 503 otherwise; the LLM and
image back ends are reported but not critical (the site still serves pages
and history when they are down). ``connections`` reports a real probe of
every enabled back-end connection (registered by the chat app); a failing
one makes the status ``degraded``, still 200. ``page_cache`` reports the page cache's
hits, misses and hit ratio since its counters started (all processes).

Only staff (or the ``METRICS_TOKEN`` scraper) get that report. Anyone else
gets healthy-or-not from ``cached_health``: the checks run at most once per
``HEALTHZ_CACHE_SECONDS`` in a process, however often ``/healthz`` is asked,
because they cost tens of milliseconds and a broker connection each time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from kombu import Connection

from companionhub import backends_info, pagecache
from companionhub.channel_layer import channel_layer

CheckResult = dict[str, Any]


def check_database() -> CheckResult:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_cache() -> CheckResult:
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    value = cache.get(key)
    cache.delete(key)
    if value != "1":
        raise RuntimeError("cache did not return the value just written")
    return {}


def check_channel_layer() -> CheckResult:
    layer = channel_layer()

    async def round_trip() -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "healthz"})
        message = await layer.receive(channel)
        if message.get("type") != "healthz":
            raise RuntimeError("channel layer returned a different message")

    async_to_sync(round_trip)()
    return {"backend": type(layer).__name__}


def check_broker() -> CheckResult:
    url = settings.CELERY_BROKER_URL
    with Connection(url, connect_timeout=2, transport_options={"socket_timeout": 2}) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    return {"transport": url.split("://", 1)[0]}


def check_storage() -> CheckResult:
    root = settings.MEDIA_ROOT
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".healthz-{uuid.uuid4().hex}"
    probe.write_bytes(b"ok")
    probe.unlink()
    return {}


# --- back ends: the chat app registers how to read them (chat/apps.py) -------------
#
# This module imports no app. ``register_backend_state`` gives it a function
# ``kind -> report`` for the default connection of a kind (raising when its
# breaker is open); ``register_probe`` adds a function that probes every
# enabled connection for real and returns ``{connection name: result}``. A
# probe caches its own results (``HEALTHZ_PROBE_SECONDS``): /healthz never
# sends a request to a back end on every hit.

BackendState = Callable[[str], CheckResult]
Probe = Callable[[], dict[str, CheckResult]]
_backend_state: BackendState | None = None
_probes: list[Probe] = []


def register_backend_state(function: BackendState) -> None:
    global _backend_state
    _backend_state = function


def register_probe(probe: Probe) -> None:
    if probe not in _probes:
        _probes.append(probe)


def check_llm() -> CheckResult:
    if _backend_state is not None:
        return _backend_state("llm")
    return {"backend": backends_info.llm_backend_name()}


def check_images() -> CheckResult:
    if _backend_state is not None:
        return _backend_state("image")
    return {"backend": backends_info.image_backend_name()}


def run_probes() -> dict[str, CheckResult]:
    """Every registered probe's results; a probe that breaks is one failed entry, never a 500."""
    results: dict[str, CheckResult] = {}
    for probe in _probes:
        try:
            results.update(probe())
        except Exception as exc:  # the report must still answer
            results[getattr(probe, "__name__", "probe")] = {"ok": False, "error": type(exc).__name__}
    return results


# name -> (check, critical)
CHECKS: dict[str, tuple[Callable[[], CheckResult], bool]] = {
    "database": (check_database, True),
    "cache": (check_cache, True),
    "channel_layer": (check_channel_layer, True),
    "broker": (check_broker, True),
    "storage": (check_storage, True),
    "llm": (check_llm, False),
    "images": (check_images, False),
}


def run_check(check: Callable[[], CheckResult], critical: bool) -> CheckResult:
    started = time.perf_counter()
    try:
        result = {"ok": True, **check()}
    except Exception as exc:  # any failure is a failed check, never a 500
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    result["critical"] = critical
    return result


def run_checks() -> tuple[bool, dict[str, CheckResult]]:
    """Run every check; return (healthy, results by name)."""
    checks = {name: run_check(check, critical) for name, (check, critical) in CHECKS.items()}
    return all(r["ok"] for r in checks.values() if r["critical"]), checks


def overall_status(healthy: bool, connections: dict[str, CheckResult]) -> str:
    """``unhealthy`` (503) when a critical check fails; ``degraded`` (still 200: pages and history
    work) when a back-end connection's probe fails; else ``ok``."""
    if not healthy:
        return "unhealthy"
    if any(not result.get("ok") for result in connections.values()):
        return "degraded"
    return "ok"


def health_report() -> tuple[bool, dict[str, Any]]:
    """Run every check; return (healthy, report)."""
    healthy, checks = run_checks()
    connections = run_probes()
    report: dict[str, Any] = {
        "status": overall_status(healthy, connections),
        "checks": checks,
        "connections": connections,
    }
    try:
        report["page_cache"] = pagecache.stats()
    except Exception as exc:  # the cache check above already says why
        report["page_cache"] = {"error": type(exc).__name__}
    return healthy, report


# (monotonic time of the run, healthy, status): the last run of the checks in this process.
_last_run: tuple[float, bool, str] | None = None
# One run at a time: requests arriving meanwhile wait for it rather than start their own.
_run_lock = threading.Lock()


def cached_status() -> tuple[bool, str]:
    """(healthy, status) from a run of the checks at most ``HEALTHZ_CACHE_SECONDS`` old."""
    global _last_run
    with _run_lock:
        if _last_run is None or time.monotonic() - _last_run[0] >= settings.HEALTHZ_CACHE_SECONDS:
            healthy, _ = run_checks()
            _last_run = (time.monotonic(), healthy, overall_status(healthy, run_probes()))
        return _last_run[1], _last_run[2]


def cached_health() -> bool:
    """Healthy or not, from a run of the checks at most ``HEALTHZ_CACHE_SECONDS`` old."""
    return cached_status()[0]


def forget_cached_health() -> None:
    """The next ``cached_health`` runs the checks (tests)."""
    global _last_run
    with _run_lock:
        _last_run = None
