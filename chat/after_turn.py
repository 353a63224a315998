"""What the memory work after a finished reply shares: the LLM, quietly, and paid for.

The after-steps (``chat.steps.AFTER_STEPS``: the summary, the memories) run when the reply
is done and charged. Their LLM and embedding calls are charged to the companion's owner
all the same, as one ledger row per step (``runs.run_charge_extra``), whatever happens in
the middle. They never take the circuit breaker's half-open trial a reply needs, skip an
open breaker and a back end that is not set up, and record a failed call on the breaker
as every other call does. A user over their monthly quota gets no memory work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from accounts.models import User
from accounts.usage import usage_quota_exceeded
from chat import runs
from chat.backends import BackendUnavailable, LLMChoice, llm_for_companion
from chat.embeddings import Embedded, embed_texts
from chat.llm import Completion, LLMError
from chat.runs import RunId

log = structlog.get_logger(__name__)


class AfterTurnCall:
    """One after-step's calls for one run: tokens add up, and are charged once at the end."""

    def __init__(self, run_id: RunId, *, companion_id: int, kind: str) -> None:
        self.run_id = run_id
        self.companion_id = companion_id
        self.kind = kind
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.served_by = ""

    def llm(self) -> LLMChoice | None:
        """The companion's LLM (no preset: summaries and JSON at a low temperature), or None
        when there is none or its breaker is not closed."""
        try:
            llm = llm_for_companion(self.companion_id, with_preset=False)
        except BackendUnavailable as exc:
            log.info("after_turn_skipped", kind=self.kind, reason="unavailable", error=str(exc))
            return None
        if llm.breaker.status().state != "closed":
            log.info("after_turn_skipped", kind=self.kind, reason="circuit_" + llm.breaker.status().state)
            return None
        return llm

    def complete(
        self, llm: LLMChoice, messages: list[dict[str, str]], *, max_tokens: int
    ) -> Completion | None:
        """One answer, or None (logged) when the call fails."""
        try:
            completion = llm.client.complete(messages, max_tokens=max_tokens, temperature=0.2)
        except LLMError as exc:
            llm.breaker.record_failure()
            llm.scrub(exc)
            log.warning("after_turn_llm_failed", kind=self.kind, run_id=str(self.run_id), code=exc.code)
            return None
        llm.breaker.record_success()
        self.served_by = llm.served_by
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        return completion

    def embed(self, texts: list[str]) -> Embedded | None:
        embedded = embed_texts(self.companion_id, texts)
        if embedded is not None:
            self.prompt_tokens += embedded.prompt_tokens
        return embedded

    def charge(self) -> None:
        runs.run_charge_extra(
            self.run_id,
            kind=self.kind,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            served_by=self.served_by,
        )
        self.prompt_tokens = self.completion_tokens = 0


@contextmanager
def after_turn_call(run_id: RunId, *, companion_id: int, kind: str) -> Iterator[AfterTurnCall]:
    """The step's calls; what they cost is charged when the block ends, by an error too."""
    call = AfterTurnCall(run_id, companion_id=companion_id, kind=kind)
    try:
        yield call
    finally:
        call.charge()


def may_spend(owner: User) -> bool:
    """Memory work is extra: none for a user at or over their monthly quota."""
    return usage_quota_exceeded(owner) is None
