"""Writing memories: dedupe and updates, the user's memories never overwritten, the cap, text
limits, ownership, and the embedding task."""

from __future__ import annotations

import pytest
from django.http import Http404

from companionhub.errors import AppError
from memories import embedding, services, vectors
from memories.models import MEMORY_MAX_CHARS, Memory
from memories.services import Fact
from tests.companions.factories import make_companion
from tests.memories.conftest import MODEL, add_memory, embed_words

pytestmark = pytest.mark.django_db


def remember(companion, *facts: Fact, model: str = MODEL) -> list[Memory]:
    return services.memories_remember(
        owner_id=companion.owner_id, companion_id=companion.pk, facts=facts, embedding_model=model
    )


def fact(text: str, **kw) -> Fact:
    return Fact(text, vector=embed_words(text), **kw)


def test_new_facts_are_stored_with_their_vectors(companion):
    written = remember(companion, fact("The user's sister is called Mara"), fact("The user has a dog"))
    assert [m.text for m in written] == ["The user's sister is called Mara", "The user has a dog"]
    stored = Memory.objects.get(pk=written[0].pk)
    assert stored.source == "extracted" and stored.embedding_model == MODEL
    assert vectors.unpack(stored.embedding).size == 64


def test_an_equal_fact_updates_the_memory_instead_of_adding(companion):
    first = remember(companion, Fact("The user's sister is called Mara."))[0]
    again = remember(companion, Fact("  the USER'S sister is called   mara "))
    assert Memory.objects.filter(companion=companion).count() == 1
    assert again[0].pk == first.pk


def test_a_near_identical_fact_updates_the_memory(companion):
    first = remember(companion, fact("The user's sister is called Mara"))[0]
    remember(
        companion,
        Fact("The user's sister is called Mara now", vector=embed_words("The user's sister is called Mara")),
    )
    assert list(Memory.objects.filter(companion=companion).values_list("pk", "text")) == [
        (first.pk, "The user's sister is called Mara now")
    ]


def test_a_near_identical_fact_of_another_model_is_a_new_memory(companion):
    remember(companion, fact("The user's sister is called Mara"), model="other")
    remember(companion, Fact("Mara is the sister", vector=embed_words("The user's sister is called Mara")))
    assert Memory.objects.filter(companion=companion).count() == 2


def test_duplicates_within_one_batch_are_one_memory(companion):
    remember(companion, fact("The user likes tea"), fact("The user likes tea."))
    assert Memory.objects.filter(companion=companion).count() == 1


def test_a_replacing_fact_updates_that_memory(companion):
    old = remember(companion, fact("The user lives in Berlin"))[0]
    remember(companion, fact("The user moved to Madrid", replaces=old.pk))
    old.refresh_from_db()
    assert old.text == "The user moved to Madrid"
    assert Memory.objects.filter(companion=companion).count() == 1


@pytest.mark.parametrize("protection", [{"pinned": True}, {"user_edited": True}, {"source": "manual"}])
def test_a_users_memory_is_never_overwritten(companion, protection):
    mine = add_memory(companion, "The user lives in Berlin", **protection)
    remember(companion, fact("The user moved to Madrid", replaces=mine.pk))
    mine.refresh_from_db()
    assert mine.text == "The user lives in Berlin"
    texts = set(Memory.objects.filter(companion=companion).values_list("text", flat=True))
    assert texts == {"The user lives in Berlin", "The user moved to Madrid"}


@pytest.mark.parametrize("protection", [{"pinned": True}, {"user_edited": True}])
def test_a_fact_equal_to_a_users_memory_is_dropped(companion, protection):
    mine = add_memory(companion, "The user lives in Berlin", **protection)
    assert remember(companion, fact("the user lives in berlin", replaces=mine.pk)) == []
    assert remember(companion, fact("The user lives in Berlin!")) == []
    assert (
        remember(companion, Fact("User: Berlin resident", vector=embed_words("The user lives in Berlin")))
        == []
    )
    assert list(Memory.objects.filter(companion=companion).values_list("text", flat=True)) == [mine.text]


def test_replacing_a_memory_of_another_companion_adds_instead(companion, user):
    other = add_memory(make_companion(user, name="Aya"), "The user lives in Berlin")
    remember(companion, fact("The user moved to Madrid", replaces=other.pk))
    other.refresh_from_db()
    assert other.text == "The user lives in Berlin"
    assert Memory.objects.filter(companion=companion).count() == 1


def test_nothing_is_stored_for_another_owners_companion(companion, other_user):
    assert (
        services.memories_remember(owner_id=other_user.pk, companion_id=companion.pk, facts=[Fact("x y z")])
        == []
    )
    assert not Memory.objects.exists()


def test_extracted_text_is_cleaned_and_cut(companion):
    written = remember(
        companion,
        Fact("  a\x00b \ud800 c\n\nd  "),
        Fact("x" * (MEMORY_MAX_CHARS + 50)),
        Fact(" \n "),
    )
    assert [m.text for m in written] == ["ab ? c d", "x" * MEMORY_MAX_CHARS]


def test_a_bad_vector_leaves_the_memory_without_one(companion):
    for bad in ([], [0.0, 0.0], [float("nan"), 1.0], ["a", "b"], [1.0] * 9000):
        remember(companion, Fact(f"fact {len(Memory.objects.all())}", vector=bad))
    assert set(Memory.objects.values_list("embedding_model", flat=True)) == {""}
    assert not Memory.objects.filter(embedding__isnull=False).exists()


def test_over_the_cap_the_oldest_extracted_memories_go(companion, settings):
    settings.MEMORIES_MAX_PER_COMPANION = 3
    pinned = add_memory(companion, "pinned one", pinned=True)
    edited = add_memory(companion, "edited one", user_edited=True)
    oldest = remember(companion, Fact("first extracted"))[0]
    remember(companion, Fact("second extracted"), Fact("third extracted"))
    left = set(Memory.objects.filter(companion=companion).values_list("pk", flat=True))
    assert pinned.pk in left and edited.pk in left and oldest.pk not in left
    assert len(left) == 3


def test_memories_similar_finds_the_closest(companion):
    sister = add_memory(companion, "The user's sister is called Mara")
    add_memory(companion, "The user likes tea")
    found = services.memories_similar(
        owner_id=companion.owner_id,
        companion_id=companion.pk,
        text="sister Mara",
        vector=embed_words("sister Mara"),
        embedding_model=MODEL,
        limit=1,
    )
    assert found == [sister]
    by_text = services.memories_similar(
        owner_id=companion.owner_id, companion_id=companion.pk, text="Mara", vector=None, embedding_model=""
    )
    assert by_text == [sister]


def test_memories_similar_never_shows_another_owners(companion, other_user):
    add_memory(companion, "The user's sister is called Mara")
    assert (
        services.memories_similar(
            owner_id=other_user.pk, companion_id=companion.pk, text="Mara", vector=None, embedding_model=""
        )
        == []
    )


def test_mark_used_sets_last_used_without_touching_updated(companion, other_user):
    memory = add_memory(companion, "The user likes tea")
    updated = memory.updated_at
    assert (
        services.memories_mark_used(owner_id=other_user.pk, companion_id=companion.pk, memory_ids=[memory.pk])
        == 0
    )
    assert (
        services.memories_mark_used(
            owner_id=companion.owner_id, companion_id=companion.pk, memory_ids=[memory.pk]
        )
        == 1
    )
    memory.refresh_from_db()
    assert memory.last_used_at is not None and memory.updated_at == updated


# --- the user's changes ----------------------------------------------------------------------


def test_memory_add_stores_a_manual_memory_and_sends_the_embedding_task(
    companion, user, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        services.current_app, "send_task", lambda name, args=(), **kw: sent.append((name, args))
    )
    with django_capture_on_commit_callbacks(execute=True):
        memory = services.memory_add(
            owner=user, companion=companion, text="  I am allergic to nuts ", pinned=True
        )
    assert memory.text == "I am allergic to nuts" and memory.pinned and memory.source == "manual"
    assert sent == [("memories.embed_memory", (memory.pk, "I am allergic to nuts"))]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("x" * (MEMORY_MAX_CHARS + 1), "too_long"),
        ("a\x00b", "unstorable"),
        ("a\ud800", "unstorable"),
    ],
)
def test_memory_add_refuses_bad_text(companion, user, text, code):
    with pytest.raises(AppError) as caught:
        services.memory_add(owner=user, companion=companion, text=text)
    assert caught.value.code == code and caught.value.message
    assert not Memory.objects.exists()


def test_memory_add_refuses_a_duplicate(companion, user):
    services.memory_add(owner=user, companion=companion, text="I like tea")
    with pytest.raises(AppError) as caught:
        services.memory_add(owner=user, companion=companion, text="i LIKE tea")
    assert caught.value.code == "duplicate"


def test_memory_add_makes_room_or_refuses_when_full(companion, user, settings):
    settings.MEMORIES_MAX_PER_COMPANION = 2
    extracted = add_memory(companion, "extracted one")
    services.memory_add(owner=user, companion=companion, text="mine one")
    services.memory_add(owner=user, companion=companion, text="mine two")
    assert not Memory.objects.filter(pk=extracted.pk).exists()
    with pytest.raises(AppError) as caught:
        services.memory_add(owner=user, companion=companion, text="mine three")
    assert caught.value.code == "full"


def test_memory_edit_marks_it_edited_and_drops_the_old_vector(companion, user):
    memory = add_memory(companion, "The user lives in Berlin")
    services.memory_edit(owner=user, memory=memory, text="The user lives in Madrid")
    memory.refresh_from_db()
    assert memory.text == "The user lives in Madrid" and memory.user_edited
    assert memory.embedding is None and memory.embedding_model == ""


def test_memory_edit_refuses_bad_text(companion, user):
    memory = add_memory(companion, "The user lives in Berlin")
    with pytest.raises(AppError):
        services.memory_edit(owner=user, memory=memory, text=" ")
    memory.refresh_from_db()
    assert memory.text == "The user lives in Berlin" and not memory.user_edited


def test_pin_delete_and_clear(companion, user):
    a, b = add_memory(companion, "a one"), add_memory(companion, "b two")
    keep = add_memory(make_companion(user, name="Aya"), "kept")
    services.memory_set_pinned(owner=user, memory=a, pinned=True)
    assert Memory.objects.get(pk=a.pk).pinned
    services.memory_delete(owner=user, memory=b)
    assert not Memory.objects.filter(pk=b.pk).exists()
    assert services.memories_clear(owner=user, companion=companion) == 1
    assert list(Memory.objects.values_list("pk", flat=True)) == [keep.pk]


def test_the_user_changes_check_the_owner(companion, other_user):
    memory = add_memory(companion, "The user likes tea")
    calls = [
        lambda: services.memory_add(owner=other_user, companion=companion, text="x"),
        lambda: services.memory_edit(owner=other_user, memory=memory, text="x"),
        lambda: services.memory_set_pinned(owner=other_user, memory=memory, pinned=True),
        lambda: services.memory_delete(owner=other_user, memory=memory),
        lambda: services.memories_clear(owner=other_user, companion=companion),
    ]
    for call in calls:
        with pytest.raises(Http404):
            call()
    memory.refresh_from_db()
    assert memory.text == "The user likes tea" and not memory.pinned


# --- the embedding task ------------------------------------------------------------------------


def test_the_embedding_task_stores_the_vector(companion, embedder):
    memory = add_memory(companion, "The user likes tea", vector=None)
    from memories.tasks import embed_memory

    embed_memory(memory.pk, memory.text)
    memory.refresh_from_db()
    assert memory.embedding_model == MODEL and vectors.unpack(memory.embedding).size == 64
    assert embedder == [(companion.pk, ["The user likes tea"])]


def test_the_embedding_task_skips_a_memory_edited_meanwhile(companion, embedder):
    memory = add_memory(companion, "The user likes coffee", vector=None)
    assert not services.memory_embed(memory_id=memory.pk, text="The user likes tea")
    assert not services.memory_embed(memory_id=999_999, text="gone")
    assert embedder == []


@pytest.mark.parametrize(
    "answer",
    [
        None,
        NotImplementedError(),
        RuntimeError("down"),
        ([], MODEL),
        ([[1.0]], ""),
        "nonsense",
        ([[0.0, 0.0]], MODEL),
    ],
)
def test_a_failing_embedder_leaves_the_memory_without_a_vector(companion, answer):
    memory = add_memory(companion, "The user likes tea", vector=None)

    def embed(companion_id, texts):
        if isinstance(answer, Exception):
            raise answer
        return answer

    previous = embedding._embedder
    embedding.register_embedder(embed)
    try:
        assert not services.memory_embed(memory_id=memory.pk, text=memory.text)
    finally:
        embedding.register_embedder(previous)
    memory.refresh_from_db()
    assert memory.embedding is None


def test_chats_embed_texts_object_answer_is_understood(companion):
    from chat.embeddings import Embedded

    previous = embedding._embedder
    embedding.register_embedder(lambda cid, texts: Embedded(vectors=[[1.0, 0.0]], model="m"))
    try:
        assert embedding.embed(companion.pk, ["x"]) == embedding.Embeddings([[1.0, 0.0]], "m")
    finally:
        embedding.register_embedder(previous)


def test_the_task_goes_to_the_memory_queue():
    from companionhub.celery import app

    assert app.amqp.router.route({}, "memories.embed_memory")["queue"].name == "memory"


def test_a_deleted_companion_takes_its_memories(companion, user):
    add_memory(companion, "The user likes tea")
    kept = add_memory(make_companion(user, name="Aya"), "kept")
    companion.delete()
    assert list(Memory.objects.values_list("pk", flat=True)) == [kept.pk]


def test_a_deleted_account_takes_its_memories(companion, user, other_user):
    add_memory(companion, "The user likes tea")
    theirs = add_memory(make_companion(other_user), "theirs")
    from accounts.services import user_delete

    user_delete(user=user)
    assert list(Memory.objects.values_list("pk", flat=True)) == [theirs.pk]
