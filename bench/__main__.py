"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench images pipeline ...``.

With PostgreSQL and Redis on their default local ports (or BENCH_DATABASE_URL
/ BENCH_REDIS_URL), every scenario runs against them: in-process benchmarks
use them through the settings, and the ones that start the site run Daphne
and the Procfile's workers on them. Results go to bench/results.json.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import django

BENCHES = (
    "images", "ratelimit", "history", "dispatch", "pipeline", "site", "transcripts", "search", "lorebook",
    "prompt", "memories", "memory_steps", "voice", "relay",
)  # fmt: skip
RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str]) -> int:
    from bench import services

    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    problem = services.prepare()
    if problem:
        print(f"PostgreSQL/Redis not available ({problem}): in-process benchmarks use the embedded default")
    else:
        env = services.service_env()
        # In-process benchmarks use the services; the debug settings stay (no collected static files here).
        os.environ.update({"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companionhub.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    started = time.perf_counter()
    for name in names:
        print(f"\n== {name}", flush=True)
        began = time.perf_counter()
        results[name] = importlib.import_module(f"bench.bench_{name}").run()
        print(f"({time.perf_counter() - began:.0f} s)", flush=True)
    results["seconds"] = round(time.perf_counter() - started)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nAll done in {results['seconds']} s; results in {RESULTS.relative_to(Path.cwd())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
