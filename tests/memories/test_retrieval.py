"""relevant_memories: pinned first, then by vector similarity (same model only), by full text
for the rest, within the budget; nothing of another companion or owner; cache invalidation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from memories import services, vector_cache
from memories.models import Memory
from memories.retrieval import ranked_ids, relevant_memories
from tests.companions.factories import make_companion
from tests.memories.conftest import MODEL, add_memory, embed_words

pytestmark = pytest.mark.django_db


def words(text: str) -> int:
    return len(text.split())


def recall(companion, query: str, *, vector=True, model: str = MODEL, budget: int = 1000, limit: int = 20):
    return relevant_memories(
        owner_id=companion.owner_id,
        companion_id=companion.pk,
        query_text=query,
        query_vector=embed_words(query) if vector is True else vector,
        embedding_model=model,
        budget_tokens=budget,
        count_tokens=words,
        limit=limit,
    )


def test_the_most_similar_memory_comes_first(companion):
    add_memory(companion, "The user likes green tea in the morning")
    sister = add_memory(companion, "The user's sister is called Mara")
    add_memory(companion, "The user works as a nurse at night")
    found = recall(companion, "what is my sister called")
    assert found[0].memory_id == sister.pk
    assert found[0].text == sister.text and not found[0].pinned
    assert found[0].tokens == words(sister.text)
    assert found[0].score > max(r.score for r in found[1:]) if len(found) > 1 else True


def test_pinned_memories_come_first_whatever_their_similarity(companion):
    add_memory(companion, "The user's sister is called Mara")
    pinned = add_memory(companion, "Always speak softly", pinned=True)
    found = recall(companion, "sister called Mara")
    assert found[0].memory_id == pinned.pk and found[0].pinned


def test_pinned_memories_count_against_the_budget(companion):
    big = add_memory(companion, "one two three four five six", pinned=True)
    small = add_memory(companion, "sister Mara", pinned=True)
    found = recall(companion, "sister Mara", budget=3)
    assert [r.memory_id for r in found] == [small.pk]
    assert big.pk not in [r.memory_id for r in found]


def test_the_budget_and_the_limit_are_kept(companion):
    for n in range(10):
        add_memory(companion, f"the user has a cat number {n}")
    found = recall(companion, "the user has a cat", budget=14)
    assert sum(r.tokens for r in found) <= 14
    assert len(recall(companion, "the user has a cat", limit=3)) == 3
    assert recall(companion, "the user has a cat", budget=0) == []
    assert recall(companion, "the user has a cat", limit=0) == []


def test_vectors_of_another_model_are_never_compared(companion):
    other = add_memory(companion, "The user's sister is called Mara", model="other-model")
    found = recall(companion, "zzz qqq", model=MODEL)  # no word in common: only a vector could find it
    assert other.pk not in [r.memory_id for r in found]
    # ... but its words still find it by full text
    assert [r.memory_id for r in recall(companion, "who is Mara", model=MODEL)] == [other.pk]


def test_a_query_vector_of_another_length_falls_back_to_full_text(companion):
    sister = add_memory(companion, "The user's sister is called Mara")
    add_memory(companion, "The user likes tea")
    found = recall(companion, "Mara", vector=embed_words("Mara", dimensions=16))
    assert [r.memory_id for r in found] == [sister.pk]


def test_without_a_query_vector_full_text_ranks(companion):
    add_memory(companion, "The user likes green tea", vector=None)
    sister = add_memory(companion, "The user's sister is called Mara", vector=None)
    found = recall(companion, "Tell me about Mara, my sister", vector=None)
    assert found[0].memory_id == sister.pk


def test_memories_without_a_vector_are_found_by_full_text_beside_vector_ones(companion):
    with_vector = add_memory(companion, "The user's dog is named Rex")
    without = add_memory(companion, "Mara is the user's sister", vector=None)
    found = {r.memory_id for r in recall(companion, "Rex and Mara")}
    assert {with_vector.pk, without.pk} <= found


def test_full_text_stems_words(companion):
    lighthouse = add_memory(companion, "The user visited two lighthouses last summer", vector=None)
    assert [r.memory_id for r in recall(companion, "I love a lighthouse", vector=None)] == [lighthouse.pk]


def test_search_syntax_in_the_query_is_just_text(companion):
    add_memory(companion, "The user likes tea", vector=None)
    for query in ['" OR *', "tea' | !", "AND NOT (", "a:* & b", "\x00", "'", "NEAR(tea)"]:
        recall(companion, query, vector=None)  # no database error


def test_another_companions_and_owners_memories_never_come(companion, user, other_user):
    mine_other = make_companion(user, name="Aya")
    theirs = make_companion(other_user)
    add_memory(mine_other, "The user's sister is called Mara", pinned=True)
    add_memory(theirs, "The user's sister is called Mara", pinned=True)
    add_memory(theirs, "Mara sister", vector=None)
    assert recall(companion, "sister Mara") == []
    assert recall(companion, "sister Mara", vector=None) == []
    # and a wrong owner for the right companion finds nothing
    add_memory(companion, "The user's sister is called Mara", pinned=True)
    found = relevant_memories(
        owner_id=other_user.pk,
        companion_id=companion.pk,
        query_text="Mara",
        query_vector=embed_words("Mara"),
        embedding_model=MODEL,
        budget_tokens=100,
        count_tokens=words,
    )
    assert found == []


def test_newer_memories_are_a_little_ahead(companion):
    old = add_memory(companion, "The user's sister is called Mara")
    new = add_memory(companion, "The user's sister is called Mara!")
    Memory.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=365))
    ranked = ranked_ids(
        owner_id=companion.owner_id,
        companion_id=companion.pk,
        query_text="sister",
        query_vector=embed_words("sister"),
        embedding_model=MODEL,
        count=5,
    )
    assert [pk for pk, _ in ranked][:2] == [new.pk, old.pk]


def test_unlike_memories_are_left_out(companion):
    add_memory(companion, "zebra", vector=[0.0, 1.0])
    found = recall(companion, "x", vector=[1.0, 0.0])
    assert found == []


def test_a_deleted_memory_is_never_returned_even_from_a_stale_cache(companion, user):
    sister = add_memory(companion, "The user's sister is called Mara")
    assert [r.memory_id for r in recall(companion, "sister Mara")] == [sister.pk]
    Memory.objects.filter(pk=sister.pk).delete()  # behind the services' back: the cache is stale
    assert recall(companion, "sister Mara") == []


def test_the_cache_is_reused_until_a_write_changes_the_token(
    companion, user, django_capture_on_commit_callbacks
):
    add_memory(companion, "The user's sister is called Mara")
    recall(companion, "sister")
    first = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    assert vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL) is first
    with django_capture_on_commit_callbacks(execute=True):
        services.memories_remember(
            owner_id=user.pk,
            companion_id=companion.pk,
            facts=[services.Fact("The user has a dog named Rex", vector=embed_words("dog named Rex"))],
            embedding_model=MODEL,
        )
    second = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    assert second is not first and second.ids.size == 2


@pytest.mark.parametrize("change", ["add", "edit", "delete", "pin", "clear"])
def test_every_user_change_invalidates_the_cache(companion, user, change, django_capture_on_commit_callbacks):
    memory = add_memory(companion, "The user's sister is called Mara")
    before = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    with django_capture_on_commit_callbacks(execute=True):
        if change == "add":
            services.memory_add(owner=user, companion=companion, text="The user likes tea")
        elif change == "edit":
            services.memory_edit(owner=user, memory=memory, text="The user's sister is called Lena")
        elif change == "delete":
            services.memory_delete(owner=user, memory=memory)
        elif change == "pin":
            services.memory_set_pinned(owner=user, memory=memory, pinned=True)
        else:
            services.memories_clear(owner=user, companion=companion)
    after = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    assert after is not before
    if change in ("edit", "delete", "clear"):
        assert after.ids.size == 0  # an edited memory's old vector is gone with its old text


def test_the_cache_token_is_shared_between_processes(companion, user, django_capture_on_commit_callbacks):
    """Another process bumps the token in the shared cache: this process reloads."""
    add_memory(companion, "The user's sister is called Mara")
    before = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    from django.core.cache import cache

    token = f"another-process-wrote-{uuid.uuid4().hex}"
    cache.set(vector_cache._token_key(companion.pk), token, timeout=None)
    after = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    assert after is not before and after.token == token


def test_without_the_shared_cache_every_call_loads(companion, user, monkeypatch):
    add_memory(companion, "The user's sister is called Mara")

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(vector_cache.cache, "get", down)
    first = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    second = vector_cache.companion_vectors(owner_id=user.pk, companion_id=companion.pk, model=MODEL)
    assert first is not second and first.token is None
    assert [r.text for r in recall(companion, "sister Mara")] == ["The user's sister is called Mara"]


def test_the_cache_is_bounded(companion, user, monkeypatch):
    monkeypatch.setattr(vector_cache, "MAX_COMPANIONS", 3)
    companions = [make_companion(user, name=f"C{n}") for n in range(5)]
    for each in companions:
        add_memory(each, "The user's sister is called Mara")
        vector_cache.companion_vectors(owner_id=user.pk, companion_id=each.pk, model=MODEL)
    assert [key[0] for key in vector_cache.cached_companions()] == [c.pk for c in companions[-3:]]
