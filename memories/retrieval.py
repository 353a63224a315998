"""Which of a companion's memories go into a turn's prompt.

INTERFACE (skeleton): ``Recalled`` and ``relevant_memories``'s signature are the contract
the chat pipeline codes against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Recalled:
    memory_id: int
    text: str
    pinned: bool
    score: float  # how relevant (shown in the prompt view); pinned memories come first whatever it is
    tokens: int


def relevant_memories(
    *,
    owner_id: int,
    companion_id: int,
    query_text: str,
    query_vector: Sequence[float] | None,
    embedding_model: str,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    limit: int = 20,
) -> list[Recalled]:
    """The pinned memories, then the most relevant others (similarity to ``query_vector`` when
    the memories have vectors of ``embedding_model``, else full-text rank of ``query_text``,
    with newer ones a little ahead), as many as fit ``budget_tokens``, at most ``limit``."""
    raise NotImplementedError
