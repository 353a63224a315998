"""Fault drill: a worker whose broker stops answering exits, so its supervisor starts a fresh one.

A real ``celery worker`` process on a private Redis. While Redis answers, the
worker stays up; when Redis freezes (SIGSTOP: every connection stays open but
nothing comes back, the "alive but not consuming" case a supervisor cannot
see), the watchdog gives up after its unanswered pings and the process exits
with the watchdog's code. A fresh worker on the thawed Redis works again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from companionhub.worker_watchdog import EXIT_CODE
from tests.conftest import require_service
from tests.fakes.services import ServiceUnavailable, private_redis
from tests.fakes.site import ROOT

pytestmark = pytest.mark.fault


def start_worker(redis_url: str, queue: str, log_path) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EMBEDDED_WORKER")},
        "DJANGO_SETTINGS_MODULE": "companionhub.settings",
        "REDIS_URL": redis_url,
        "WORKER_WATCHDOG_SECONDS": "1",
        "WORKER_WATCHDOG_FAILURES": "3",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "companionhub", "worker", "--pool=threads", "--concurrency=2",
         f"--queues={queue}", f"--hostname={queue}@localhost", "--without-mingle", "--without-gossip",
         "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def ping_through(redis_url: str, queue: str, timeout: float = 30) -> str:
    from celery import Celery

    client = Celery(broker=redis_url, backend=redis_url)
    try:
        return client.send_task("companionhub.ping", queue=queue).get(timeout=timeout)
    finally:
        client.close()


def test_a_worker_whose_broker_freezes_exits_and_a_fresh_one_works(tmp_path):
    try:
        server_context = private_redis()
        redis = server_context.__enter__()
    except ServiceUnavailable as exc:
        require_service("redis-server", str(exc))
    queue = f"watchdog-{uuid.uuid4().hex[:8]}"
    worker = start_worker(redis.url, queue, tmp_path / "worker.log")
    try:
        assert ping_through(redis.url, queue) == "pong"
        time.sleep(4)  # several watchdog rounds with a healthy broker
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]

        os.kill(redis.process.pid, signal.SIGSTOP)
        try:
            code = worker.wait(timeout=60)
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        log = (tmp_path / "worker.log").read_text()
        assert code == EXIT_CODE, log[-2000:]
        assert "worker_watchdog_exit" in log

        # What the supervisor does next: a fresh worker, and work goes on.
        worker = start_worker(redis.url, queue, tmp_path / "worker2.log")
        assert ping_through(redis.url, queue) == "pong"
    finally:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        server_context.__exit__(None, None, None)


class FakeControl:
    def __init__(self, replies=None, error=None):
        self.replies, self.error = replies or [], error

    def ping(self, destination, timeout):
        if self.error:
            raise self.error
        return self.replies


def fake_worker(control):
    from types import SimpleNamespace

    return SimpleNamespace(hostname="chat-1@box", app=SimpleNamespace(control=control))


def test_a_ping_answered_by_this_worker_counts():
    from companionhub.worker_watchdog import answers

    assert answers(fake_worker(FakeControl([{"chat-1@box": {"ok": "pong"}}])), timeout=0.1)


def test_no_answer_or_an_unreachable_broker_counts_as_no_answer():
    from companionhub.worker_watchdog import answers

    assert not answers(fake_worker(FakeControl([])), timeout=0.1)
    assert not answers(fake_worker(FakeControl([{"chat-2@box": {"ok": "pong"}}])), timeout=0.1)
    assert not answers(fake_worker(FakeControl(error=ConnectionError("refused"))), timeout=0.1)


def test_a_second_worker_with_the_same_name_is_reported():
    from structlog.testing import capture_logs

    from companionhub.worker_watchdog import answers

    twins = [{"chat-1@box": {"ok": "pong"}}, {"chat-1@box": {"ok": "pong"}}]
    with capture_logs() as logs:
        assert answers(fake_worker(FakeControl(twins)), timeout=0.1)
    assert [e["answers"] for e in logs if e["event"] == "worker_watchdog_duplicate_name"] == [2]


def test_every_worker_in_the_procfile_has_a_name_of_its_own():
    names = [line.split(" -n ")[1].split()[0] for line in (ROOT / "Procfile").read_text().splitlines()
             if " worker " in line]  # fmt: skip
    assert len(names) == 5 and len(set(names)) == 5  # chat, images, exports, memory, voice
