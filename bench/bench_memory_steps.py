"""What the memory work after each turn costs: the ``summarize`` and ``remember`` steps.

They run on the ``memory`` worker after ``done``, so they never delay a reply; this measures
how much work they add per turn. In this process, against the configured database, with the
fake LLM server on loopback answering at once (summaries, facts, embeddings), so the figures
are our side of the step: reading the run and the conversation, building the prompt, the
HTTP round trip to a server that does nothing, parsing, storing and charging. A real model's
time comes on top and is the model's. Wall time includes waiting on the fake server's HTTP
answers (it is a plain ``http.server``); the CPU column is this process's CPU time per step,
the step's and the fake's threads together, so it is an upper bound on the step's own work.

* summary step on a turn where nothing was dropped (most turns): the check alone;
* summary step on a turn that summarises a stretch of 40 messages (one chunk);
* memory step: embeddings, the 10 closest of 1,000 memories, the extraction call, dedupe and
  storing one new fact.

Everything it writes is rolled back.
"""

from __future__ import annotations

import time

from django.db import transaction

from bench.stats import percentile, table

REPEATS = 60
HISTORY = 200
MEMORIES = 1_000
STRETCH = 40


class _Rollback(Exception):
    pass


def _completed_run(conversation, companion, user_text: str, reply_text: str, record: dict):
    from chat.models import PipelineRun
    from tests.chat.factories import add_reply, add_user_message

    message = add_user_message(conversation, user_text)
    reply = add_reply(conversation, companion, reply_text)
    return PipelineRun.objects.create(
        conversation=conversation,
        turn=message.turn,
        companion=companion,
        reply=reply,
        status=PipelineRun.Status.COMPLETED,
        prompt_record=record,
    )


def _timed(fn, repeats: int, before=None) -> list[tuple[float, float]]:
    """(wall ms, CPU ms of this process: the step and the fake server's threads) per call."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        started, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000))
    return times


def _scenarios(fake) -> list[tuple[str, list[float]]]:
    from django.conf import settings

    from accounts.models import User
    from chat.backends import reset_backends
    from chat.memory_prompts import MEMORY_MARKER, SUMMARY_MARKER
    from chat.memory_steps import remember_after_turn
    from chat.models import Conversation, Message
    from chat.summaries import summarize_after_turn
    from memories import vectors
    from memories.models import Memory
    from tests.chat.factories import add_reply, add_user_message, make_chat
    from tests.companions.factories import make_companion
    from tests.fakes.llm_server import fake_embedding

    settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.LLM_MODEL = fake.base_url, "bench", "fake-model"
    settings.MEMORY_SUMMARY_ENABLED = settings.MEMORY_EXTRACTION_ENABLED = True
    reset_backends()
    fake.answer_when(SUMMARY_MARKER, "Alice and Mika talked about the weather and a trip to the sea.")

    user = User.objects.create_user(username=f"benchsteps{time.time_ns() % 10**9}")
    companion = make_companion(user)
    conversation = make_chat(companion, greeting="*waves* Hello!")
    for n in range(HISTORY // 2):
        add_user_message(conversation, f"Message {n}: the weather today is mild and grey " * 3)
        add_reply(conversation, companion, f"Reply {n}: " + "words of a reply " * 12)
    ids = list(Message.objects.filter(conversation=conversation).order_by("pk").values_list("pk", flat=True))

    quiet = _completed_run(conversation, companion, "Hi.", "Hello!", {"dropped_upto_id": None})
    covered = Conversation.objects.filter(pk=conversation.pk)
    rows = [
        ("summary step, nothing dropped", _timed(lambda: summarize_after_turn(quiet.pk), REPEATS)),
    ]

    dropping = _completed_run(
        conversation, companion, "Go on.", "Sure.", {"dropped_upto_id": ids[STRETCH - 9]}
    )

    def reset() -> None:
        covered.update(summary="", summary_upto=None, summary_edited_at=None)

    rows.append(
        (
            f"summary step, a pass over {STRETCH} messages",
            _timed(lambda: summarize_after_turn(dropping.pk), REPEATS, reset),
        )
    )

    model = "fake-model"
    Memory.objects.bulk_create(
        (
            Memory(
                owner=user,
                companion=companion,
                text=(text := f"Alice once visited harbour town number {n} on a rainy weekend."),
                embedding=vectors.pack(fake_embedding(text)),
                embedding_model=model,
            )
            for n in range(MEMORIES)
        ),
        batch_size=500,
    )
    counter = iter(range(10**6))

    def new_fact() -> None:
        n = next(counter)
        fake.answer_when(
            MEMORY_MARKER, f'{{"facts": [{{"text": "Alice has a cat called Tom {n}.", "replaces": null}}]}}'
        )

    talk = _completed_run(
        conversation, companion, "My cat is called Tom.", "What a lovely name for a cat!", {}
    )
    rows.append(
        (
            f"memory step, {MEMORIES:,} memories, one new fact",
            _timed(lambda: remember_after_turn(talk.pk), REPEATS, new_fact),
        )
    )
    return rows


def run() -> dict:
    from tests.fakes.llm_server import FakeLLMServer

    results: dict = {}
    with FakeLLMServer() as fake:
        try:
            with transaction.atomic():
                rows = _scenarios(fake)
                raise _Rollback
        except _Rollback:
            pass
    printable = []
    for name, times in rows:
        wall = [w for w, _ in times[1:]]  # the first warms connections and caches
        cpu = [c for _, c in times[1:]]
        figures = {
            "p50_ms": round(percentile(wall, 50), 2),
            "p95_ms": round(percentile(wall, 95), 2),
            "cpu_p50_ms": round(percentile(cpu, 50), 2),
            "n": len(wall),
        }
        results[name] = figures
        printable.append((name, figures["p50_ms"], figures["p95_ms"], figures["cpu_p50_ms"], len(wall)))
    print(table(printable, ("step", "p50 ms", "p95 ms", "CPU p50 ms", "turns")))
    return results
