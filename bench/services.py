"""PostgreSQL, Redis and process set-up shared by the benchmarks."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/companionhub_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
# As docs/operations.md advises running them: one chat worker process per core
# (10 threads each: one Python process cannot use more than one core, and 20
# threads in one were measured slower on 2 cores), one process for pictures.
CHAT_WORKERS = max(1, os.cpu_count() or 1)
PROCFILE_WORKERS = [
    ["--queues=chat", "--pool=threads", "--concurrency=10", "--loglevel=WARNING", "-n", f"chat{n}@%h"]
    for n in range(1, CHAT_WORKERS + 1)
] + [["--queues=images", "--concurrency=1", "--loglevel=WARNING", "-n", "images@%h"]]


def socket_headers(ws_url: str, token: str) -> dict[str, str]:
    """What a third-party client sends: its API token, and the site's own origin (scheme, host, port)."""
    return {"Authorization": f"Bearer {token}", "Origin": "http" + ws_url.removeprefix("ws")}


def bench_dir(name: str) -> Path:
    """Logs of the processes a benchmark starts stay in var/bench/<name>/ for a look afterwards."""
    path = Path(os.environ.get("BENCH_DIR", ROOT / "var" / "bench")) / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# Set in the benchmark's Redis database once it is ours: only such a database is ever emptied.
REDIS_MARK = "companionhub:bench:owned"


def prepare() -> str | None:
    """Create the benchmark database and empty the benchmark Redis; say what is missing, if anything.

    The Redis database is emptied only when it is empty already or carries the
    mark an earlier benchmark left: one a developer uses for something else is
    refused, never flushed.
    """
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
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
    if client.dbsize() and not client.exists(REDIS_MARK):
        return (
            f"Redis: {REDIS_URL} holds keys the benchmark did not write;"
            " set BENCH_REDIS_URL to an empty database"
        )
    client.flushdb()
    client.set(REDIS_MARK, "1")
    return None


def service_env() -> dict[str, str]:
    """PostgreSQL and Redis, with production settings (DEBUG off: Django's debug query log alone
    grows a worker by megabytes), minus the HTTPS redirect, since the benchmark speaks plain HTTP."""
    return {
        "DATABASE_URL": PG_URL,
        "REDIS_URL": REDIS_URL,
        "DEBUG": "False",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_FORMAT": "console",
    }


@contextlib.contextmanager
def logged_site(run_site, env: dict, var: Path, *, workers: list[list[str]]):
    """``run_site``, printing the processes' last log lines if the benchmark fails."""
    try:
        with run_site(env, var_dir=var, workers=workers) as site:
            yield site
    except Exception:
        for log in sorted(var.glob("*.log")):
            print(f"--- last lines of {log.name} ---\n{log.read_text()[-2000:]}")
        raise
