"""The ``remember`` after-step: durable facts of a finished exchange become memories.

After each completed reply (one-to-one and group alike: the run's companion remembers), the
LLM is shown the user's message, the reply and the companion's memories closest to them
(``memories_similar``, with their ids) and asked for facts worth keeping for weeks: about
the user, the relationship, promises, events; not chit-chat. A fact that repeats or
contradicts a memory it was shown names it as ``replaces``, so memories are updated instead
of piling up (``memories_remember`` decides, and never overwrites a pinned or edited one).
Facts are embedded with the companion's connection when it can (``chat.embeddings``).

Optional through and through: off with ``MEMORY_EXTRACTION_ENABLED``, skipped for a picture
painted again (the same reply) and for a user over their quota, and any failure is logged
by the task and touches nothing else. Every call is charged (``chat.after_turn``).
"""

from __future__ import annotations

import structlog
from django.conf import settings

from chat import memory_prompts, painting
from chat.after_turn import after_turn_call, may_spend
from chat.models import PipelineRun
from chat.runs import RunId
from companions.selectors import LARGE_COLUMNS
from memories.services import Fact, memories_remember, memories_similar

log = structlog.get_logger(__name__)

MEMORY_MAX_TOKENS = 400  # the answer: a few short facts as JSON
KNOWN_LIMIT = 8  # memories shown to the step, closest first
TEXT_MAX_CHARS = 4000  # of the user's message and of the reply, in the prompt


def remember_after_turn(run_id: RunId) -> None:
    """The ``remember`` after-step of a completed run."""
    if not settings.MEMORY_EXTRACTION_ENABLED:
        return
    run = (
        PipelineRun.objects.filter(pk=run_id, status=PipelineRun.Status.COMPLETED)
        .select_related("companion__owner", "turn__message", "reply")
        .defer("prompt_record", *(f"companion__{column}" for column in LARGE_COLUMNS))
        .first()
    )
    if run is None or run.reply is None or painting.repaint_of(run.analysis) is not None:
        return
    user_text = run.turn.message.content.strip()[:TEXT_MAX_CHARS]
    reply_text = run.reply.content.strip()[:TEXT_MAX_CHARS]
    companion, owner = run.companion, run.companion.owner
    if not user_text or not reply_text or not may_spend(owner):
        return
    with after_turn_call(run_id, companion_id=companion.pk, kind="memory") as call:
        llm = call.llm()
        if llm is None:
            return
        query = f"{user_text}\n{reply_text}"
        found = call.embed([query])
        known = memories_similar(
            owner_id=owner.pk,
            companion_id=companion.pk,
            text=query,
            vector=found.vectors[0] if found else None,
            embedding_model=found.model if found else "",
            limit=KNOWN_LIMIT,
        )
        messages = memory_prompts.build_memory_messages(
            user_name=owner.name_for_companions,
            companion_name=companion.name,
            user_text=user_text,
            reply_text=reply_text,
            known=[memory_prompts.KnownMemory(memory.pk, memory.text) for memory in known],
        )
        completion = call.complete(llm, messages, max_tokens=MEMORY_MAX_TOKENS)
        if completion is None:
            return
        facts = memory_prompts.parse_facts(
            completion.text,
            known_ids={memory.pk for memory in known},
            limit=max(int(settings.MEMORY_FACTS_PER_TURN), 0),
        )
        if not facts:
            return
        embedded = call.embed([fact.text for fact in facts])
        vectors = embedded.vectors if embedded else [None] * len(facts)
        written = memories_remember(
            owner_id=owner.pk,
            companion_id=companion.pk,
            facts=[
                Fact(fact.text, vector, fact.replaces) for fact, vector in zip(facts, vectors, strict=True)
            ],
            embedding_model=embedded.model if embedded else "",
        )
    log.info("memories_remembered", run_id=str(run_id), companion_id=companion.pk, facts=len(written))
