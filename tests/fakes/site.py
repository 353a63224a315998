"""Run the real site as child processes: Daphne, and optionally a Celery worker.

Used by the browser tests and the pipeline benchmark. ``run_site`` migrates a
database, starts Daphne on a free loopback port, waits for ``/healthz`` and
stops everything on exit. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
ASGI_APP = "companionhub.asgi:application"


class SiteFailed(RuntimeError):
    pass


@dataclass
class Site:
    base_url: str
    env: dict[str, str]
    log_dir: Path
    port: int = 0
    server: subprocess.Popen | None = None
    workers: list = field(default_factory=list)
    worker_commands: list = field(default_factory=list)
    beat: subprocess.Popen | None = None
    extra_servers: list = field(default_factory=list)  # (port, process) of more Daphne processes

    def kill_worker(self, n: int = 0) -> None:
        """``kill -9`` worker ``n``: no cleanup, no goodbye, tasks in hand stay unacked."""
        process = self.workers[n]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def restart_worker(self, n: int = 0) -> None:
        """Stop worker ``n`` as a deploy would (a warm shutdown) and start a fresh one."""
        stop_process(self.workers[n])
        self.workers[n] = _start(self.worker_commands[n], self.env, self.log_dir / f"worker{n or ''}.log")

    def start_beat(self) -> None:
        self.beat = _start(
            [sys.executable, "-m", "celery", "-A", "companionhub", "beat", "--loglevel=WARNING",
             "-s", str(self.log_dir / "beat-schedule")],
            self.env, self.log_dir / "beat.log",
        )  # fmt: skip

    def start_extra_server(self) -> str:
        """Another Daphne process on a port of its own (a site that outgrew one); its base URL."""
        port = free_port()
        process = _start(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
            self.env,
            self.log_dir / f"server-{port}.log",
        )
        self.extra_servers.append((port, process))
        _wait_url_healthy(f"http://127.0.0.1:{port}", process, self.log_dir / f"server-{port}.log")
        return f"http://127.0.0.1:{port}"

    def revive_workers(self) -> int:
        """Start again every worker that has exited, as a process supervisor would; return how many."""
        revived = 0
        for n, (process, args) in enumerate(zip(self.workers, self.worker_commands, strict=True)):
            if process.poll() is not None:
                self.workers[n] = _start(args, self.env, self.log_dir / f"worker{n or ''}.log")
                revived += 1
        return revived

    def start_server(self) -> None:
        self.server = _start(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), ASGI_APP],
            self.env,
            self.log_dir / "server.log",
        )
        _wait_healthy(self)

    def stop_server(self) -> None:
        """Stop Daphne; open websockets drop and nothing answers on the port until ``start_server``."""
        if self.server is not None:
            stop_process(self.server)
            self.server = None

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    def manage(self, *args: str, input_text: str | None = None) -> str:
        """Run ``manage.py`` with the site's environment; return stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SiteFailed(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_env(overrides: dict[str, str], *, var_dir: Path) -> dict[str, str]:
    """The parent's environment minus service URLs, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "EMBEDDED_WORKER")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "companionhub.settings",
            "DEBUG": "True",
            "VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(overrides)
    return env


def drill_env(redis_url: str, llm_url: str, *, var_dir: Path, **overrides: str) -> dict[str, str]:
    """``site_env`` for a fault drill: a Redis of its own, the fake LLM, no rate limits."""
    return site_env(
        {
            "REDIS_URL": redis_url,
            "LLM_BASE_URL": llm_url,
            "LLM_API_KEY": "test-key",
            "LLM_MODEL": "fake-model",
            "RATELIMIT_ENABLE": "False",
            **overrides,
        },
        var_dir=var_dir,
    )


def _wait_healthy(site: Site) -> None:
    _wait_url_healthy(site.base_url, site.server, site.log_dir / "server.log")


def _wait_url_healthy(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base_url}/healthz", timeout=1).status_code in (200, 503):
                return
        except (requests.ConnectionError, requests.Timeout):  # still starting, or busy starting
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SiteFailed(f"the server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def _start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = log_path.open("a")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a child process, and kill it if it has not gone within 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def run_site(
    env: dict[str, str],
    *,
    var_dir: Path,
    worker_args: list[str] | None = None,
    workers: list[list[str]] = (),
    beat: bool = False,
) -> Iterator[Site]:
    """Daphne, plus one ``celery worker`` per argument list in ``worker_args``/``workers`` (and
    ``celery beat`` with ``beat``), for the block."""
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = Site(base_url=f"http://127.0.0.1:{port}", env=env, log_dir=var_dir, port=port)
    site.manage("migrate", "--noinput", "-v0")
    if env.get("DEBUG") == "False":  # production serves collected, hashed static files
        site.manage("collectstatic", "--noinput", "-v0")
    all_workers = ([worker_args] if worker_args is not None else []) + list(workers)
    site.workers = []
    try:
        for n, args in enumerate(all_workers):
            command = [sys.executable, "-m", "celery", "-A", "companionhub", "worker", *args]
            site.worker_commands.append(command)
            site.workers.append(_start(command, env, var_dir / f"worker{n or ''}.log"))
        if beat:
            site.start_beat()
        site.start_server()
        yield site
    finally:
        extra = [process for _, process in site.extra_servers]
        for process in (site.server, *extra, site.beat, *site.workers):
            if process is not None:
                stop_process(process)
