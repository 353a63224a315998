"""The garbage collector of a long-running server process (Daphne, a Celery worker).

Why: CPython's full collection walks every tracked object, and a process that has
imported Django, the apps, Celery and the admin holds a couple of hundred thousand
of them that live as long as it does. Each full collection then held the GIL for
60-150 ms; every reply a worker streamed, and every socket Daphne served, stalled
for that long at once, which was the whole first-token and per-token p99 at 100
streams in ``make bench``. ``gc.freeze()`` moves what start-up made to a permanent
generation the collector never walks again, so the collections that remain look
only at what the work itself made.

Call ``settle_heap`` once the process is ready to work (everything imported), and
never in a process that forks workers afterwards expecting to share the pages.
"""

from __future__ import annotations

import gc

import structlog

log = structlog.get_logger(__name__)


def settle_heap() -> int:
    """Collect what start-up left behind, then freeze the rest; returns how many were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("heap_settled", frozen_objects=frozen)
    return frozen
