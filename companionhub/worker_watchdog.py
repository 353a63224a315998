"""A worker that stops answering over its broker exits, so its supervisor starts a fresh one.

Celery and kombu have known ways to survive a broker restart as a process
that is alive but no longer consuming (a half-open connection, a frozen or
overloaded Redis, a reconnect that never completes). A supervisor only acts
on a process that exits, and docker compose does not restart a container its
healthcheck calls unhealthy. So every worker that talks to a real broker
pings itself through that broker (``app.control.ping``, the same round trip
the compose healthcheck makes) every ``WORKER_WATCHDOG_SECONDS``; after
``WORKER_WATCHDOG_FAILURES`` unanswered pings in a row it logs why and exits
with ``EXIT_CODE``. Tasks it held are not lost: they were never acked
(``acks_late``) and come back to another worker, and the reconciler ends any
run that still stalls.

Every worker needs a node name of its own (``-n``; the Procfile gives each
process one, and docker compose gives each container its own host name):
two workers sharing a name both answer the ping, so one could vouch for the
other. The watchdog warns (``worker_watchdog_duplicate_name``) when it sees
that.

The in-process worker of the embedded default has no broker to lose and no
watchdog.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

import structlog
from celery import Celery, bootsteps
from django.conf import settings

log = structlog.get_logger(__name__)

EXIT_CODE = 75  # EX_TEMPFAIL: try again


class Worker(Protocol):
    """What the watchdog uses of Celery's WorkController (whose stubs do not list its hostname)."""

    app: Celery
    hostname: str


class BrokerWatchdog(bootsteps.StartStopStep):
    """Worker bootstep: a daemon thread that pings this worker through the broker."""

    label = "Broker watchdog"

    def __init__(self, worker: Worker, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def include_if(self, worker: Worker) -> bool:
        return settings.WORKER_WATCHDOG_SECONDS > 0 and not worker.app.conf.broker_url.startswith("memory:")

    def start(self, worker: Worker) -> None:
        self.thread = threading.Thread(target=self.watch, args=(worker,), name="broker-watchdog", daemon=True)
        self.thread.start()

    def stop(self, worker: Worker) -> None:
        self.stopping.set()  # a worker shutting down is not a stuck worker

    def watch(self, worker: Worker) -> None:
        interval = settings.WORKER_WATCHDOG_SECONDS
        failures = 0
        while not self.stopping.wait(interval):
            if answers(worker, timeout=min(10.0, interval)):
                failures = 0
                continue
            failures += 1
            log.warning("worker_watchdog_no_answer", hostname=worker.hostname, failures=failures)
            if failures >= settings.WORKER_WATCHDOG_FAILURES and not self.stopping.is_set():
                log.error(
                    "worker_watchdog_exit",
                    hostname=worker.hostname,
                    failures=failures,
                    seconds=failures * interval,
                    exit_code=EXIT_CODE,
                )
                os._exit(EXIT_CODE)  # a stuck consumer does not shut down cleanly; the supervisor restarts us


def answers(worker: Worker, *, timeout: float) -> bool:
    """Whether this worker answers a ping sent through the broker within about ``timeout`` seconds.

    The ping runs in a thread of its own: ``timeout`` bounds only the wait for
    replies, and sending to a frozen broker blocks on its socket for ever. A
    ping still stuck at the deadline counts as no answer (its thread is left
    to finish, or to go with the process).
    """
    answer: list[bool] = []

    def ping() -> None:
        try:
            replies = worker.app.control.ping(destination=[worker.hostname], timeout=timeout) or []
        except Exception as exc:  # the broker is unreachable: no answer
            log.warning("worker_watchdog_ping_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            replies = []
        mine = [reply for reply in replies if worker.hostname in reply]
        if len(mine) > 1:  # another live worker has our name: its answer could hide that we are stuck
            log.warning("worker_watchdog_duplicate_name", hostname=worker.hostname, answers=len(mine))
        answer.append(bool(mine))

    thread = threading.Thread(target=ping, name="broker-watchdog-ping", daemon=True)
    thread.start()
    thread.join(timeout * 2 + 1)
    return bool(answer and answer[0])
