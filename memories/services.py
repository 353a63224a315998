"""Writing memories.

INTERFACE (skeleton): the signatures are the contract the chat pipeline's memory step codes
against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memories.models import Memory


@dataclass(frozen=True)
class Fact:
    """A fact the memory step extracted: new, or replacing memory ``replaces`` (a duplicate or a
    contradiction of it)."""

    text: str
    vector: Sequence[float] | None = None
    replaces: int | None = None


def memories_remember(
    *, owner_id: int, companion_id: int, facts: Sequence[Fact], embedding_model: str = ""
) -> list[Memory]:
    """Store ``facts``: a fact that replaces one of the companion's memories (or says the same
    as one) updates it instead of adding a row; a user's pinned or edited memory is never
    overwritten by an extracted fact. Returns the rows written."""
    raise NotImplementedError


def memories_similar(
    *,
    owner_id: int,
    companion_id: int,
    text: str,
    vector: Sequence[float] | None,
    embedding_model: str,
    limit: int = 10,
) -> list[Memory]:
    """The companion's memories closest to ``text`` (shown to the memory step so it updates
    rather than repeats them)."""
    raise NotImplementedError
