"""Celery dispatch: enqueue to task start, and the cost of one hop in a chain.

A separate ``celery worker`` process (threads, as the Procfile runs the chat
worker) on the configured broker runs ``companionhub.clock``, which returns
the time it started. Needs Redis (the in-memory broker cannot reach another
process); skipped without it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid

from celery import chain
from django.conf import settings

from bench import services
from bench.stats import percentile
from companionhub.tasks import clock

SINGLE = 200
CHAINS = 30
HOPS = 9


def run() -> dict:
    if not settings.REDIS_URL:
        print("skipped: needs the Redis broker")
        return {"skipped": "no Redis"}
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    var = services.bench_dir("dispatch")
    log = (var / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "companionhub", "worker", "--pool=threads", "--concurrency=4",
         f"--queues={queue}", "--loglevel=WARNING", "-n", f"{queue}@%h"],
        cwd=services.ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        clock.apply_async(queue=queue).get(timeout=60)  # the worker is up
        starts = []
        for _ in range(SINGLE):
            sent = time.time()
            started = clock.apply_async(queue=queue).get(timeout=30)
            starts.append((started - sent) * 1000)
        hops = []
        for _ in range(CHAINS):
            sent = time.time()
            signatures = [clock.s().set(queue=queue) for _ in range(HOPS)]
            last = chain(*signatures).apply_async().get(timeout=60)
            hops.append((last - sent) * 1000 / HOPS)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    result = {
        "enqueue_to_start_p50_ms": round(statistics.median(starts), 2),
        "enqueue_to_start_p99_ms": round(percentile(starts, 99), 2),
        "chain_hop_p50_ms": round(statistics.median(hops), 2),
    }
    print(
        f"Enqueue to start: p50 {result['enqueue_to_start_p50_ms']} ms, "
        f"p99 {result['enqueue_to_start_p99_ms']} ms; one chain hop: p50 {result['chain_hop_p50_ms']} ms"
    )
    return result


if __name__ == "__main__":
    run()
