"""A worker's steps compute a few at a time and give their slot back while they wait.

Order is observed with events, never with durations: "not yet" is a short wait
that must not see the event, "now" a long one that must.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.db import connection, connections, transaction

from chat import stream_loop
from chat.cancellable import call_unless_cancelled
from chat.demo_llm import DemoLLM
from chat.embeddings import embed_texts
from companionhub import step_slots
from tests.companions.factories import make_companion

NOT_YET = 0.3  # seconds a blocked thread is given to (wrongly) get through
NOW = 10.0


@pytest.fixture
def slots(settings) -> Iterator[Callable[[int], None]]:
    def size(count: int) -> None:
        settings.WORKER_STEP_SLOTS = count
        step_slots.reset()

    yield size
    step_slots.reset()


def in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def hold_until(release: threading.Event, entered: threading.Event) -> Callable[[], None]:
    def step() -> None:
        with step_slots.held():
            entered.set()
            release.wait(NOW)

    return step


def test_no_more_steps_compute_at_once_than_there_are_slots(slots):
    slots(2)
    release = threading.Event()
    entered = [threading.Event() for _ in range(3)]
    threads = [in_thread(hold_until(release, entered[0])), in_thread(hold_until(release, entered[1]))]
    assert entered[0].wait(NOW) and entered[1].wait(NOW)
    threads.append(in_thread(hold_until(release, entered[2])))
    assert not entered[2].wait(NOT_YET)  # both slots are taken
    release.set()
    assert entered[2].wait(NOW)
    for thread in threads:
        thread.join(NOW)


def test_a_waiting_step_lets_another_compute_and_takes_a_slot_again_after(slots):
    slots(1)
    waiting, other_entered, other_release, back = (threading.Event() for _ in range(4))
    done_waiting = threading.Event()

    def waiter() -> None:
        with step_slots.held():
            with step_slots.waiting():
                waiting.set()
                done_waiting.wait(NOW)
            back.set()
            assert step_slots.holding()

    first = in_thread(waiter)
    assert waiting.wait(NOW)
    other = in_thread(hold_until(other_release, other_entered))
    assert other_entered.wait(NOW)  # the waiting step's slot was free
    done_waiting.set()
    assert not back.wait(NOT_YET)  # the slot is the other step's until it ends
    other_release.set()
    assert back.wait(NOW)
    first.join(NOW)
    other.join(NOW)


def test_steps_nest_on_their_thread_and_waiting_outside_a_step_does_nothing(slots):
    slots(1)
    with step_slots.waiting():
        assert not step_slots.holding()
    with step_slots.held():
        with step_slots.held():  # an eager chain: the step inside reuses the slot
            assert step_slots.holding()
        assert step_slots.holding()
    assert not step_slots.holding()


def waits_while_another_step_computes(slots, wait: Callable[[threading.Event], str]) -> None:
    """With one slot, a step that ``wait``s lets another step compute meanwhile: ``wait`` only
    returns once that other step ran, so it would never return if the slot were kept."""
    slots(1)
    holding, other_ran = threading.Event(), threading.Event()
    result: list[str] = []

    def waiting_step() -> None:
        try:
            with step_slots.held():
                holding.set()
                result.append(wait(other_ran))
        finally:
            connections.close_all()

    def other_step() -> None:
        with step_slots.held():
            other_ran.set()

    waiting = in_thread(waiting_step)
    assert holding.wait(NOW)  # the other step can only compute if the wait gives the slot back
    other = in_thread(other_step)
    waiting.join(NOW)
    other.join(NOW)
    assert result == ["done"]


def test_a_step_gives_its_slot_back_while_its_reply_streams_on_the_loop(slots):
    async def stream(other_ran: threading.Event) -> str:
        assert await asyncio.to_thread(other_ran.wait, NOW)
        return "done"

    waits_while_another_step_computes(
        slots, lambda other_ran: stream_loop.run(stream(other_ran), timeout=NOW)
    )


def test_a_step_gives_its_slot_back_while_a_scene_analysis_waits(slots):
    def analysis(other_ran: threading.Event) -> str:  # the LLM call, on a thread of its own
        assert other_ran.wait(NOW)
        return "done"

    waits_while_another_step_computes(
        slots,
        lambda other_ran: call_unless_cancelled(
            f"slots-{uuid.uuid4()}", lambda: analysis(other_ran), poll_seconds=0.05
        ),
    )


@pytest.mark.django_db(transaction=True)
def test_a_step_gives_its_slot_back_while_it_waits_for_embeddings(slots, user, settings, monkeypatch):
    companion = make_companion(user)
    settings.LLM_BASE_URL = ""  # the demo back end, whose embed is replaced by a slow server's
    settings.NOVITA_KEY = ""
    embed = DemoLLM.embed

    def recall(other_ran: threading.Event) -> str:
        def embed_once_the_other_step_ran(self, texts, **kwargs):
            assert other_ran.wait(NOW)
            return embed(self, texts, **kwargs)

        monkeypatch.setattr(DemoLLM, "embed", embed_once_the_other_step_ran)
        return "done" if embed_texts(companion.pk, ["my sister is called Mara"]) is not None else "none"

    waits_while_another_step_computes(slots, recall)


@pytest.mark.django_db(transaction=True)
def test_a_waiting_step_gives_its_database_connection_back_outside_a_transaction(slots):
    slots(1)
    with step_slots.held():
        connection.ensure_connection()
        with step_slots.waiting():
            assert connection.connection is None  # the pool has it while the step waits
        with transaction.atomic(), step_slots.waiting():
            assert connection.connection is not None  # its transaction stays open
    connection.ensure_connection()
    with step_slots.waiting():  # outside a step too (the embedded worker, a shell)
        assert connection.connection is None


def test_a_worker_asks_its_threads_to_hand_the_gil_on_sooner(settings):
    from companionhub.celery import _shorten_gil_switches

    before = sys.getswitchinterval()
    settings.WORKER_SWITCH_INTERVAL_MS = 0.5
    try:
        _shorten_gil_switches()
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        sys.setswitchinterval(before)
