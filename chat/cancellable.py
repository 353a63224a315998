"""A blocking call that a cancel abandons: the scene analyses' LLM request.

The reply stream notices a cancel at its next poll and closes its request. A
scene analysis is one request that is not streamed, and may take as long as
the model thinks; without this, a cancel that landed during the analysis
after the reply waited for it, and its answer was still applied.

``call_unless_cancelled(run_id, call)`` checks the run's cancel flag before
the call, then runs the call on a thread of its own and checks the flag every
``CANCEL_POLL_SECONDS`` while it waits. A cancel (or a failure from outside,
which sets the same flag) raises ``Cancelled`` at once; the abandoned request
finishes on its thread and its answer, and what it cost, are dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from chat import runs
from chat.runs import RunId
from companionhub import step_slots

CANCEL_POLL_SECONDS = 0.2


class Cancelled(Exception):
    """The run was cancelled (or failed elsewhere) before or during the call."""


def call_unless_cancelled[T](
    run_id: RunId, call: Callable[[], T], *, poll_seconds: float = CANCEL_POLL_SECONDS
) -> T:
    """``call()``'s result, or ``Cancelled`` as soon as the run is cancelled."""
    if runs.run_is_cancelled(run_id):
        raise Cancelled
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the waiting caller, which re-raises it
            future.set_exception(exc)

    threading.Thread(target=run, name=f"call-{run_id}", daemon=True).start()
    with step_slots.waiting():  # only waiting: other steps may compute meanwhile
        while True:
            try:
                return future.result(timeout=poll_seconds)
            except FutureTimeout:
                if runs.run_is_cancelled(run_id):
                    raise Cancelled from None
