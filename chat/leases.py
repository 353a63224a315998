"""A run's lease: held by the worker whose step is running it, so a dead worker is noticed in seconds.

While a step runs, its run's ``lease_expires_at`` lies ``CHAT_RUN_LEASE_SECONDS``
ahead; one thread per worker process renews the leases of every run the
process holds, in one UPDATE every third of that time. A worker killed
mid-step (``kill -9``, the machine gone) stops renewing: the lost-run sweep
(``chat.pipeline.reconcile_lost_runs``, every few seconds from beat, and once
when a worker starts) fails the run, keeps the text its socket had already
shown (the live reply of the relay), and the user gets an error with *Retry*
-- not a chat that says "writing…" until an hour-long redelivery.

A step's claim takes the lease and the step's end gives it back, in the
UPDATEs the run state machine makes anyway (``chat.runs.run_claim_step``,
``run_step_ended``); the run then waits in the queue, which no lease times (the
stuck-run sweep covers a run that waits too long), and the next step takes a
new one. ``finish`` claims nothing, so it takes its lease itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from chat.models import PipelineRun

log = structlog.get_logger(__name__)


def lease_seconds() -> float:
    return float(settings.CHAT_RUN_LEASE_SECONDS)


class _Keeper:
    """The process's renewing thread and the runs it renews."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, int] = {}  # run id -> steps of this process holding it
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def hold(self, run_id: str) -> None:
        with self.lock:
            self.held[run_id] = self.held.get(run_id, 0) + 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="run-leases", daemon=True)
                self.thread.start()

    def release(self, run_id: str) -> None:
        with self.lock:
            count = self.held.get(run_id, 0) - 1
            if count > 0:
                self.held[run_id] = count
            else:
                self.held.pop(run_id, None)

    def _run(self) -> None:
        while True:
            self.wake.wait(lease_seconds() / 3)
            self.wake.clear()
            with self.lock:
                run_ids = list(self.held)
            if not run_ids:
                continue
            try:
                renew(run_ids)
            except Exception as exc:  # the database restarting: the next round tries again
                log.warning("run_lease_renew_failed", runs=len(run_ids), error=type(exc).__name__)
                close_old_connections()


_keeper = _Keeper()


def renew(run_ids: list[str]) -> int:
    """Push the leases of ``run_ids`` (those still running) ahead; how many were."""
    # A lease given back (the step ended) stays given back: the keeper may still list the run.
    return PipelineRun.objects.filter(
        pk__in=run_ids, status=PipelineRun.Status.RUNNING, lease_expires_at__isnull=False
    ).update(lease_expires_at=lease_until())


def lease_until() -> datetime:
    """When a lease taken now runs out."""
    return timezone.now() + timedelta(seconds=lease_seconds())


@contextmanager
def held(run_id: str, *, take: bool = False) -> Iterator[None]:
    """Keep ``run_id``'s lease renewed while the block (a step) runs.

    A step's claim takes the lease and its end gives it back, in the UPDATEs it makes anyway
    (``chat.pipeline``). ``take`` takes it here, for a step that claims nothing (``finish``,
    which ends the run), and gives it back if that step raises: a step that will be retried
    leaves no lease to run out while it waits.
    """
    if take:
        live = PipelineRun.objects.filter(pk=run_id, status__in=PipelineRun.LIVE)
        live.update(lease_expires_at=lease_until())
    _keeper.hold(str(run_id))
    try:
        yield
    except BaseException:
        if take:  # renewals skip a lease given back, so the keeper cannot take it again
            with contextlib.suppress(Exception):  # the step's own error is the one to report
                PipelineRun.objects.filter(pk=run_id).update(lease_expires_at=None)
        raise
    finally:
        _keeper.release(str(run_id))


def lost_runs() -> list[str]:
    """Runs a step was running whose lease ran out: their worker is gone."""
    return [
        str(run_id)
        for run_id in PipelineRun.objects.filter(
            status=PipelineRun.Status.RUNNING, lease_expires_at__lt=timezone.now()
        ).values_list("pk", flat=True)
    ]


def claim_lost(run_id: str) -> bool:
    """Take a lost run for this sweep: its lease is pushed ahead, so a sweep running at the same
    time (beat's and a starting worker's) leaves it alone, and one that dies while ending it
    leaves it to the next sweep once that lease runs out. False when another sweep has it."""
    now = timezone.now()
    return bool(
        PipelineRun.objects.filter(
            pk=run_id, status=PipelineRun.Status.RUNNING, lease_expires_at__lt=now
        ).update(lease_expires_at=now + timedelta(seconds=lease_seconds()))
    )
