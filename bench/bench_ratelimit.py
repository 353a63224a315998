"""The cost of one rate-limit check (count + verdict) on the configured cache (Redis under make bench)."""

from __future__ import annotations

import statistics
import time
import uuid

from django.conf import settings

from bench.stats import percentile
from companionhub import ratelimits

CALLS = 2_000


def run() -> dict:
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    key = f"bench-{uuid.uuid4().hex}"
    ratelimits.hit("chat_message", key)  # connect
    times = []
    for n in range(CALLS):
        started = time.perf_counter()
        ratelimits.hit("chat_message", f"{key}-{n}")  # under the limit: the everyday path
        times.append((time.perf_counter() - started) * 1000)
    result = {
        "cache": backend,
        "calls": CALLS,
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(percentile(times, 99), 3),
    }
    print(
        f"Rate-limit check on {backend}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms ({CALLS} calls)"
    )
    return result


if __name__ == "__main__":
    run()
