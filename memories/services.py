"""Writing memories: the memory step's facts, and the user's own changes on the Memories page.

Every write here ends by ``vector_cache.bump`` (after commit), which tells every process that
the companion's vectors changed; the admin's delete goes through ``memory_delete`` and
``memories_delete_many`` for the same reason.

A memory is *protected* when it is the user's: pinned, edited, or added by hand. The memory
step never changes a protected memory: a fact that replaces one is stored as a row of its
own, and a fact that says the same (equal text, or a vector at least ``NEAR_DUPLICATE``
similar) is dropped, since the user's wording already says it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import structlog
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from companionhub.errors import AppError
from companionhub.text import UNSTORABLE_MESSAGE, is_storable, scrub
from companions.models import Companion
from memories import embedding, retrieval, vector_cache, vectors
from memories.models import MEMORY_MAX_CHARS, Memory

log = structlog.get_logger(__name__)

EMBED_TASK = "memories.embed_memory"
MAX_FACTS = 50  # facts stored from one turn; the step asks for a handful
NEAR_DUPLICATE = 0.92  # cosine similarity at which two memories say the same
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Fact:
    """A fact the memory step extracted: new, or replacing memory ``replaces`` (a duplicate or a
    contradiction of it)."""

    text: str
    vector: Sequence[float] | None = None
    replaces: int | None = None


# --- text ----------------------------------------------------------------------------------


def normalised(text: str) -> str:
    """What two memories are compared by: case, spacing and end punctuation do not count."""
    return _SPACE.sub(" ", text).strip().strip("\"'“”„«»").rstrip(".!?…").strip().casefold()


def extracted_text(text: str) -> str:
    """An extracted fact as stored: storable, on one line, at most ``MEMORY_MAX_CHARS``."""
    return _SPACE.sub(" ", scrub(text)).strip()[:MEMORY_MAX_CHARS].strip()


def user_text(text: str) -> str:
    """What the user typed, checked: the form says the same, this guards every other caller."""
    text = text.strip()
    if not text:
        raise AppError("empty", _("Write what the companion should remember."))
    if len(text) > MEMORY_MAX_CHARS:
        raise AppError(
            "too_long",
            _("A memory can be at most %(limit)s characters long (this one has %(count)s).")
            % {"limit": MEMORY_MAX_CHARS, "count": len(text)},
        )
    if not is_storable(text):
        raise AppError("unstorable", _(UNSTORABLE_MESSAGE))
    return text


def is_protected(memory: Memory) -> bool:
    return memory.pinned or memory.user_edited or memory.source == Memory.Source.MANUAL


# --- the memory step -------------------------------------------------------------------------


def memories_remember(
    *, owner_id: int, companion_id: int, facts: Sequence[Fact], embedding_model: str = ""
) -> list[Memory]:
    """Store ``facts``: a fact that replaces one of the companion's memories (or says the same
    as one: equal text, or a vector of ``embedding_model`` at least ``NEAR_DUPLICATE``
    similar) updates it instead of adding a row; a user's pinned or edited memory is never
    overwritten by an extracted fact. Returns the rows written.

    The companion row is locked for the batch, so two chats' memory steps for one companion
    take turns. Nothing is written for a companion that is not ``owner_id``'s.
    """
    written: list[Memory] = []
    with transaction.atomic():
        companion = Companion.objects.select_for_update().filter(pk=companion_id, owner_id=owner_id).first()
        if companion is None:
            return []
        mine = Memory.objects.filter(owner_id=owner_id, companion_id=companion_id)
        by_text: dict[str, int] = {}
        for pk, text in mine.order_by("pk").values_list("pk", "text"):
            by_text.setdefault(normalised(text), pk)
        batch = _Batch(owner_id, companion_id, embedding_model)
        for fact in list(facts)[:MAX_FACTS]:
            text = extracted_text(fact.text)
            if not text:
                continue
            key = normalised(text)
            vector = vectors.unit(fact.vector) if embedding_model else None
            target, skip = _target(mine, fact, key, vector, by_text, batch)
            if skip:
                continue
            if target is None:
                target = Memory(
                    owner_id=owner_id, companion_id=companion_id, text=text, source=Memory.Source.EXTRACTED
                )
            else:
                by_text.pop(normalised(target.text), None)
                target.text = text
            if vector is not None:
                target.embedding = vectors.pack(vector)
                target.embedding_model = embedding_model
            target.save()
            if vector is not None:
                batch.added(target.pk, vector)
            by_text[key] = target.pk
            written.append(target)
        if written:
            _enforce_cap(mine)
            vector_cache.bump(companion_id)
    log.info("memories_remembered", companion_id=companion_id, facts=len(facts), written=len(written))
    return written


class _Batch:
    """The companion's vectors of the model, and those written earlier in this batch."""

    def __init__(self, owner_id: int, companion_id: int, model: str) -> None:
        self.owner_id, self.companion_id, self.model = owner_id, companion_id, model
        self.entry: vector_cache.CompanionVectors | None = None
        self.fresh: list[tuple[int, vectors.Vector]] = []

    def added(self, pk: int, vector: vectors.Vector) -> None:
        self.fresh.append((pk, vector))

    def nearest(self, vector: vectors.Vector) -> tuple[int | None, float]:
        if self.entry is None:
            self.entry = vector_cache.companion_vectors(
                owner_id=self.owner_id, companion_id=self.companion_id, model=self.model
            )
        best: tuple[int | None, float] = (None, -1.0)
        if self.entry.ids.size and self.entry.dimensions == vector.size:
            similarity = vectors.similarities(self.entry.matrix, vector)
            at = int(np.argmax(similarity))
            best = (int(self.entry.ids[at]), float(similarity[at]))
        for pk, other in self.fresh:
            value = vectors.similarity(vector, other)
            if value > best[1]:
                best = (pk, value)
        return best


def _target(
    mine: QuerySet[Memory],
    fact: Fact,
    key: str,
    vector: vectors.Vector | None,
    by_text: dict[str, int],
    batch: _Batch,
) -> tuple[Memory | None, bool]:
    """(the memory the fact updates or None for a new one, whether to drop the fact)."""
    if fact.replaces is not None:
        replaced = mine.filter(pk=fact.replaces).first()
        if replaced is not None:
            if not is_protected(replaced):
                return replaced, False
            if normalised(replaced.text) == key:
                return None, True
    equal_pk = by_text.get(key)
    equal = mine.filter(pk=equal_pk).first() if equal_pk is not None else None
    if equal is not None:
        return (None, True) if is_protected(equal) else (equal, False)
    if vector is not None:
        near_pk, similarity = batch.nearest(vector)
        if near_pk is not None and similarity >= NEAR_DUPLICATE:
            near = mine.filter(pk=near_pk).first()
            if near is not None:
                return (None, True) if is_protected(near) else (near, False)
    return None, False


def _enforce_cap(mine: QuerySet[Memory]) -> int:
    """Over ``MEMORIES_MAX_PER_COMPANION``, the oldest extracted memories nobody touched go."""
    excess = mine.count() - settings.MEMORIES_MAX_PER_COMPANION
    if excess <= 0:
        return 0
    doomed = list(
        mine.filter(pinned=False, user_edited=False, source=Memory.Source.EXTRACTED)
        .order_by("updated_at", "pk")
        .values_list("pk", flat=True)[:excess]
    )
    deleted, _rows = Memory.objects.filter(pk__in=doomed).delete()
    return deleted


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
    rather than repeats them): by vector where there are vectors of ``embedding_model``, by
    full text for the rest, as ``relevant_memories`` ranks them."""
    ranked = retrieval.ranked_ids(
        owner_id=owner_id,
        companion_id=companion_id,
        query_text=text,
        query_vector=vector,
        embedding_model=embedding_model,
        count=max(1, min(limit, 100)),
    )
    rows = Memory.objects.filter(owner_id=owner_id, companion_id=companion_id).in_bulk(
        [pk for pk, _score in ranked]
    )
    return [rows[pk] for pk, _score in ranked if pk in rows]


def memories_mark_used(*, owner_id: int, companion_id: int, memory_ids: Sequence[int]) -> int:
    """Record that a reply used these memories (one UPDATE; called off the reply's path).

    ``updated_at`` stays as it is: being used is not being written, and the vectors kept in
    memory stay current."""
    if not memory_ids:
        return 0
    return Memory.objects.filter(
        owner_id=owner_id, companion_id=companion_id, pk__in=list(memory_ids)
    ).update(last_used_at=timezone.now())


def memory_embed(*, memory_id: int, text: str) -> bool:
    """Give the memory the vector of ``text`` (the embedding task's work); True when stored.

    Nothing happens when the memory is gone or its text changed meanwhile (that edit sent
    its own task), or when no vector can be had."""
    row = Memory.objects.filter(pk=memory_id, text=text).values_list("companion_id", flat=True).first()
    if row is None:
        return False
    found = embedding.embed(row, [text])
    vector = vectors.unit(found.vectors[0]) if found is not None else None
    if found is None or vector is None:
        return False
    with transaction.atomic():
        stored = Memory.objects.filter(pk=memory_id, text=text).update(
            embedding=vectors.pack(vector), embedding_model=found.model
        )
        if stored:
            vector_cache.bump(row)
    return bool(stored)


# --- the user's changes ------------------------------------------------------------------------


def _check_owner(owner: User, owner_id: int) -> None:
    if owner_id != owner.pk:
        raise Http404("no such memory")


def _embed_on_commit(memory: Memory) -> None:
    memory_id, text = memory.pk, memory.text
    transaction.on_commit(lambda: current_app.send_task(EMBED_TASK, args=(memory_id, text)))


def memory_add(*, owner: User, companion: Companion, text: str, pinned: bool = False) -> Memory:
    """A memory the user writes by hand (its vector follows from the embedding task).

    Refused when the companion already has this memory, or is full of memories the user
    wrote or pinned (extracted ones make room, oldest first)."""
    _check_owner(owner, companion.owner_id)
    text = user_text(text)
    with transaction.atomic():
        Companion.objects.select_for_update().filter(pk=companion.pk).first()
        mine = Memory.objects.filter(owner=owner, companion=companion)
        if mine.filter(text__iexact=text).exists():
            raise AppError("duplicate", _("%(name)s already has this memory.") % {"name": companion.name})
        if mine.count() >= settings.MEMORIES_MAX_PER_COMPANION:
            oldest = (
                mine.filter(pinned=False, user_edited=False, source=Memory.Source.EXTRACTED)
                .order_by("updated_at", "pk")
                .first()
            )
            if oldest is None:
                raise AppError(
                    "full",
                    _("%(name)s has %(count)s memories, as many as a companion can keep. Delete some first.")
                    % {"name": companion.name, "count": settings.MEMORIES_MAX_PER_COMPANION},
                )
            oldest.delete()
        memory = Memory.objects.create(
            owner=owner, companion=companion, text=text, pinned=pinned, source=Memory.Source.MANUAL
        )
        _embed_on_commit(memory)
        vector_cache.bump(companion.pk)
    return memory


def memory_edit(*, owner: User, memory: Memory, text: str) -> Memory:
    """The user's wording: the memory step never overwrites it. Its old vector goes (it was of
    the old text) and the embedding task makes a new one."""
    _check_owner(owner, memory.owner_id)
    text = user_text(text)
    if text == memory.text and memory.user_edited:
        return memory
    with transaction.atomic():
        memory.text = text
        memory.user_edited = True
        memory.embedding = None
        memory.embedding_model = ""
        memory.save(update_fields=["text", "user_edited", "embedding", "embedding_model", "updated_at"])
        _embed_on_commit(memory)
        vector_cache.bump(memory.companion_id)
    return memory


def memory_set_pinned(*, owner: User, memory: Memory, pinned: bool) -> Memory:
    """Pinned memories go into every prompt (as far as the budget allows)."""
    _check_owner(owner, memory.owner_id)
    if memory.pinned == pinned:
        return memory
    with transaction.atomic():
        memory.pinned = pinned
        memory.save(update_fields=["pinned", "updated_at"])
        vector_cache.bump(memory.companion_id)
    return memory


def memory_delete(*, owner: User, memory: Memory) -> None:
    _check_owner(owner, memory.owner_id)
    with transaction.atomic():
        Memory.objects.filter(pk=memory.pk, owner=owner).delete()
        vector_cache.bump(memory.companion_id)


def memories_clear(*, owner: User, companion: Companion) -> int:
    """Forget every memory of the companion; returns how many there were."""
    _check_owner(owner, companion.owner_id)
    with transaction.atomic():
        deleted, _rows = Memory.objects.filter(owner=owner, companion=companion).delete()
        vector_cache.bump(companion.pk)
    return deleted


def memories_delete_many(queryset: QuerySet[Memory]) -> int:
    """Delete memories of any owners (the admin's bulk delete), keeping the vector caches right."""
    with transaction.atomic():
        companions = set(queryset.values_list("companion_id", flat=True))
        deleted, _rows = queryset.delete()
        for companion_id in companions:
            vector_cache.bump(companion_id)
    return deleted
