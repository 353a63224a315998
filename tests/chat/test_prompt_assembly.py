"""A reply's prompt within the token budget: the priority order, lore placement and scopes,
memories, the summary, history newest first, and the record of what was sent.

The lorebook scanner, the memory retrieval and the embeddings are other pieces: here they
are replaced by simple fakes at their module boundary.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat import embeddings, prompt_assembly, tokens
from chat.admission import run_admit
from chat.backend_models import Connection
from chat.budget import PromptTooLarge
from chat.models import Message, PipelineRun
from chat.prompt_assembly import Line, PromptInput, assemble
from chat.replies import ReplyWriter
from chat.runs import run_create, run_mark_cancelled
from chat.tokens import EstimateCounter, messages_tokens
from lorebooks import scanning
from lorebooks import selectors as lore_selectors
from lorebooks.models import Lorebook
from lorebooks.scanning import AFTER_CHAR, AT_DEPTH, BEFORE_CHAR, Fired, ScanBook, ScanResult
from memories import retrieval, vector_cache
from memories.retrieval import Recalled
from tests.chat.factories import add_reply, add_user_message, make_chat, make_group_of
from tests.companions.factories import make_companion
from tests.memories.conftest import add_memory

pytestmark = pytest.mark.django_db
COUNTER = EstimateCounter(4.0)


def fired(text: str, *, position: str = BEFORE_CHAR, depth: int = 4, uid: int = 1, tokens: int = 5) -> Fired:
    return Fired(
        book_id=1, book_name="World", uid=uid, comment=f"entry {uid}", text=text, position=position,
        depth=depth, order=100, tokens=tokens, reason="key: lamp",
    )  # fmt: skip


def lines(*texts: str) -> list[Line]:
    """Alternating user/assistant lines, the last one the user's."""
    n = len(texts)
    return [
        Line(i + 1, "user" if (n - 1 - i) % 2 == 0 else "assistant", text, (n - 1 - i) % 2 == 0)
        for i, text in enumerate(texts)
    ]


@pytest.fixture
def scanned(monkeypatch):
    """The scanner answers what the test puts in ``result``, and remembers how it was called."""
    calls: list[dict] = []
    result = ScanResult()

    def fake_scan(books, **kwargs):
        calls.append({"books": books, **kwargs})
        return result

    monkeypatch.setattr(scanning, "scan", fake_scan)
    return result, calls


def build(companion, history, *, context=4096, reserve=256, **extra):
    inp = PromptInput(companion=companion, user_name="Alice", history=history, **extra)
    return assemble(inp, counter=COUNTER, context_length=context, reserve=reserve)


def test_lore_goes_before_or_after_the_character_and_at_its_depth(user, scanned):
    result, calls = scanned
    result.fired += [
        fired("BEFORE-TEXT"),
        fired("AFTER-TEXT", position=AFTER_CHAR, uid=2),
        fired("DEPTH-TWO", position=AT_DEPTH, depth=2, uid=3),
        fired("DEPTH-ZERO", position=AT_DEPTH, depth=0, uid=4),
    ]
    companion = make_companion(
        user, name="Keeper", config={"card": {"personality": "stern", "scenario": "Storm."}}
    )
    book = ScanBook(book_id=1, name="World", entries=())
    sent = build(
        companion, lines("one", "two", "three", "four"), books=[book], greeting="Hi", summary="Before."
    )
    system = sent.messages[0]["content"]
    assert system.index("BEFORE-TEXT") < system.index("Personality: stern")
    assert system.index("Scenario: Storm.") < system.index("AFTER-TEXT") < system.index("You are at home")
    contents = [m["content"] for m in sent.messages[1:]]
    # summary, one, two, [depth 2], three, four, [depth 0]
    assert contents[0].startswith("Summary of the conversation so far:")
    assert contents[1:3] == ["one", "two"] and "DEPTH-TWO" in contents[3]
    assert contents[4:6] == ["three", "four"] and "DEPTH-ZERO" in contents[6]
    assert sent.messages[3 + 1]["role"] == "system"
    assert calls[0]["always_scanned"] == ["Hi", "Before."]
    assert calls[0]["messages"] == ["one", "two", "three", "four"]
    assert [e["uid"] for e in sent.record["lore"]] == [1, 2, 3, 4]


def test_a_depth_deeper_than_the_history_goes_before_it(user, scanned):
    scanned[0].fired.append(fired("DEEP", position=AT_DEPTH, depth=9))
    book = ScanBook(book_id=1, name="World", entries=())
    sent = build(make_companion(user), lines("only"), books=[book])
    assert "DEEP" in sent.messages[1]["content"] and sent.messages[2]["content"] == "only"


def test_memories_go_into_the_system_prompt_pinned_first(user):
    recalled = [
        Recalled(memory_id=7, text="Alice's sister is called Mara.", pinned=False, score=0.9, tokens=8),
        Recalled(memory_id=3, text="Alice hates rain.", pinned=True, score=0.1, tokens=5),
    ]
    sent = build(make_companion(user), lines("hello"), recall=lambda budget, counter: recalled)
    system = sent.messages[0]["content"]
    assert "Things you remember about Alice:\n- Alice hates rain.\n- Alice's sister is called Mara." in system
    assert [m["id"] for m in sent.record["memories"]] == [3, 7]
    assert sent.record["memories"][0]["pinned"] is True


def test_the_newest_message_and_the_core_always_go_in_and_history_gives_way(user, settings):
    companion = make_companion(user)
    history = lines(*[f"message {n} " + "x" * 400 for n in range(40)], "the question")
    sent = build(companion, history, context=2048, reserve=256)
    assert sent.messages[-1] == {"role": "user", "content": "the question"}
    assert messages_tokens(COUNTER, sent.messages) <= 2048 - 256
    kept = [m["content"] for m in sent.messages[1:-1]]
    assert kept and all(text.startswith("message ") for text in kept)
    first_kept = int(kept[0].split()[1])
    assert sent.dropped_upto_id == history[first_kept - 1].id  # the newest that did not fit
    assert sent.history_start_id == history[first_kept].id


def test_when_squeezed_the_parts_give_way_in_priority_order(user, settings):
    settings.CHAT_CONTEXT_SAFETY_TOKENS = 0
    settings.CHAT_ESTIMATE_SAFETY_SHARE = 0
    card = {"personality": "p" * 400, "mes_example": "<START>\nexample one\n\n<START>\nexample two"}
    companion = make_companion(user, config={"card": card})
    recalled = [Recalled(memory_id=1, text="pinned fact", pinned=True, score=1.0, tokens=3)]
    history = lines(*["older " + "h" * 200 for _ in range(30)], "newest")

    def used(context: int) -> dict[str, int]:
        sent = build(
            companion, history, context=context, reserve=100, summary="the summary " * 20,
            recall=lambda budget, counter: [m for m in recalled if counter.count(m.text) <= budget],
        )  # fmt: skip
        assert messages_tokens(COUNTER, sent.messages) <= context - 100
        return {p["part"]: p["tokens"] for p in sent.record["parts"]}

    roomy = used(4000)
    assert all(roomy[part] for part in ("character", "pinned_memories", "summary", "examples", "history"))
    # Less room: the history (last in the order) gives way first, the parts before it stay whole.
    middling = used(1200)
    assert 0 < middling["history"] < roomy["history"]
    for part in ("system", "newest", "character", "pinned_memories", "summary", "examples"):
        assert middling[part] == roomy[part], part
    tight = used(560)
    assert tight["character"] == roomy["character"] and tight["newest"] and tight["pinned_memories"]
    assert tight["history"] < middling["history"]
    assert tight["summary"] <= middling["summary"] and tight["examples"] <= middling["examples"]
    with pytest.raises(PromptTooLarge) as failed:
        used(300)  # the character's text alone does not fit
    assert failed.value.part in ("character", "system")


def test_a_user_message_too_long_for_the_budget_keeps_its_end(user):
    sent = build(make_companion(user), lines("start " + "y" * 20000 + " the very end"), context=2048)
    assert sent.messages[-1]["content"].endswith(" the very end")
    assert messages_tokens(COUNTER, sent.messages) <= 2048 - 256


def test_a_continued_reply_is_counted_and_sent_last(user):
    sent = build(make_companion(user), lines("hi"), continuing="Once upon")
    assert sent.messages[-2] == {"role": "assistant", "content": "Once upon"}
    assert sent.messages[-1]["role"] == "user"


def test_a_failing_scanner_or_memory_lookup_leaves_the_reply_going(user, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(scanning, "scan", broken)
    monkeypatch.setattr(lore_selectors, "scan_books", broken)
    monkeypatch.setattr(retrieval, "relevant_memories", broken)
    monkeypatch.setattr(embeddings, "embed_texts", broken)
    companion = make_companion(user)
    companion.lorebooks.add(Lorebook.objects.create(owner=user, name="Book"))
    sent = reply_prompt(user, companion, "Hello")
    assert sent.messages[-1] == {"role": "user", "content": "Hello"}
    assert sent.record["lore"] == [] and sent.record["memories"] == []


# --- from the database ----------------------------------------------------------------------


def prompt_for(run: PipelineRun, companion, *, context: int = 8192) -> prompt_assembly.AssembledPrompt:
    run = PipelineRun.objects.select_related("conversation", "turn__message", "companion").get(pk=run.pk)
    return ReplyWriter(run).prompt(
        companion, user_name="Alice", counter=COUNTER, context_length=context, reserve=256
    )


def start_run(conversation, companion, said: str) -> PipelineRun:
    message = add_user_message(conversation, said)
    return run_create(
        companion=companion,
        want_image=False,
        admission=run_admit(conversation.owner, want_image=False),
        conversation=conversation,
        turn=message.turn,
    )


def reply_prompt(user, companion, said: str, **kwargs) -> prompt_assembly.AssembledPrompt:
    conversation = make_chat(companion, greeting="*waves*")
    run = start_run(conversation, companion, said)
    try:
        return prompt_for(run, companion, **kwargs)
    finally:
        run_mark_cancelled(run.pk)


@pytest.fixture
def no_memories(monkeypatch):
    monkeypatch.setattr(embeddings, "embed_texts", lambda companion_id, texts: None)
    monkeypatch.setattr(retrieval, "relevant_memories", lambda **kwargs: [])


def test_a_conversation_far_longer_than_the_context_never_overflows(user, no_memories, settings):
    settings.CHAT_HISTORY_FETCH = 200
    companion = make_companion(user)
    conversation = make_chat(companion)
    rows = []
    for n in range(130):
        rows.append(add_user_message(conversation, f"user {n} " + "u" * 300))
        rows.append(add_reply(conversation, companion, f"reply {n} " + "r" * 300))
    run = start_run(conversation, companion, "And now?")
    sent = prompt_for(run, companion, context=2048)
    run_mark_cancelled(run.pk)
    assert messages_tokens(COUNTER, sent.messages) <= 2048 - 256
    assert sent.messages[-1] == {"role": "user", "content": "And now?"}
    first_sent = sent.messages[1]["content"]
    first_row = next(row for row in rows if row.content == first_sent)
    index = rows.index(first_row)
    assert sent.history_start_id == first_row.pk
    assert sent.dropped_upto_id == rows[index - 1].pk


def test_all_fitting_history_past_the_fetch_limit_still_reports_what_was_left(user, no_memories, settings):
    settings.CHAT_HISTORY_FETCH = 3
    companion = make_companion(user)
    conversation = make_chat(companion)
    rows = [add_reply(conversation, companion, f"line {n}") for n in range(5)]
    run = start_run(conversation, companion, "hi")
    sent = prompt_for(run, companion)
    run_mark_cancelled(run.pk)
    assert [m["content"] for m in sent.messages[1:]] == ["line 3", "line 4", "hi"]
    assert sent.dropped_upto_id == rows[2].pk


def test_only_messages_after_the_summary_are_sent_and_the_summary_before_them(user, no_memories):
    companion = make_companion(user)
    conversation = make_chat(companion)
    rows = [add_reply(conversation, companion, f"line {n}") for n in range(4)]
    conversation.summary = "They met at the harbour."
    conversation.summary_upto = rows[1]
    conversation.save(update_fields=["summary", "summary_upto"])
    run = start_run(conversation, companion, "hi")
    sent = prompt_for(run, companion)
    run_mark_cancelled(run.pk)
    assert sent.messages[1] == {
        "role": "system",
        "content": "Summary of the conversation so far:\nThey met at the harbour.",
    }
    assert [m["content"] for m in sent.messages[2:]] == ["line 2", "line 3", "hi"]
    assert sent.record["summary_used"] is True
    assert sent.dropped_upto_id is None


def test_one_to_one_and_group_books_apply_to_the_right_speakers(user, no_memories, monkeypatch):
    asked: list[list[int]] = []

    def fake_books(owner_id, book_ids):
        asked.append(list(book_ids))
        return []

    monkeypatch.setattr(lore_selectors, "scan_books", fake_books)
    mika, rin = make_companion(user, name="Mika"), make_companion(user, name="Rin")
    card = Lorebook.objects.create(owner=user, name="Mika's card")
    mika_own = Lorebook.objects.create(owner=user, name="Mika's")
    rin_own = Lorebook.objects.create(owner=user, name="Rin's")
    shared = Lorebook.objects.create(owner=user, name="The group's")
    mika.card_book = card
    mika.save(update_fields=["card_book"])
    mika.lorebooks.add(mika_own, card)
    rin.lorebooks.add(rin_own)
    group = make_group_of(user, [mika, rin])
    group.lorebooks.add(shared)
    assert prompt_assembly.book_ids_for(mika, group) == [card.pk, mika_own.pk, shared.pk]
    assert prompt_assembly.book_ids_for(rin, group) == [rin_own.pk, shared.pk]
    direct = make_chat(mika)
    assert prompt_assembly.book_ids_for(mika, direct) == [card.pk, mika_own.pk]
    run = start_run(group, mika, "Whose boat is this?")
    sent = prompt_for(run, mika)
    run_mark_cancelled(run.pk)
    assert asked[-1] == [card.pk, mika_own.pk, shared.pk]
    assert sent.messages[-1] == {"role": "user", "content": "Alice: Whose boat is this?"}
    assert "Reply only as Mika" in sent.messages[0]["content"]


def test_the_memory_query_is_the_newest_messages_and_embeddings_are_used(user, monkeypatch, settings):
    settings.CHAT_MEMORY_QUERY_MESSAGES = 2
    seen: dict = {}
    monkeypatch.setattr(
        embeddings, "embed_texts", lambda cid, texts: embeddings.Embedded([[0.1, 0.2]], "emb-model", 7)
    )

    def fake_relevant(**kwargs):
        seen.update(kwargs)
        return [Recalled(memory_id=1, text="Mara is her sister.", pinned=False, score=0.5, tokens=5)]

    monkeypatch.setattr(retrieval, "relevant_memories", fake_relevant)
    companion = make_companion(user)
    add_memory(companion, "Mara is her sister.")
    sent = reply_prompt(user, companion, "Tell me about my sister")
    assert seen["query_text"] == "*waves*\nTell me about my sister"
    assert seen["query_vector"] == [0.1, 0.2] and seen["embedding_model"] == "emb-model"
    assert seen["owner_id"] == user.pk
    assert "- Mara is her sister." in sent.messages[0]["content"]
    assert sent.embedding_tokens == 7


def test_without_embeddings_retrieval_falls_back_to_full_text(user, monkeypatch):
    seen: dict = {}
    monkeypatch.setattr(embeddings, "embed_texts", lambda cid, texts: None)
    monkeypatch.setattr(retrieval, "relevant_memories", lambda **kwargs: seen.update(kwargs) or [])
    companion = make_companion(user)
    add_memory(companion, "Mara is her sister.", vector=None)
    reply_prompt(user, companion, "hello")
    assert seen["query_vector"] is None and seen["embedding_model"] == ""


def test_a_companion_that_remembers_nothing_asks_for_no_embedding(user, monkeypatch):
    asked: list = []
    monkeypatch.setattr(embeddings, "embed_texts", lambda cid, texts: asked.append(texts))
    monkeypatch.setattr(retrieval, "relevant_memories", lambda **kwargs: asked.append(kwargs) or [])
    companion = make_companion(user)
    sent = reply_prompt(user, companion, "hello")
    assert asked == [] and sent.record["memories"] == []
    add_memory(companion, "Mara is her sister.")
    vector_cache.bump(companion.pk)  # as every write of the memory services ends
    reply_prompt(user, companion, "hello again")
    assert len(asked) == 2


def test_the_record_says_what_was_sent_and_only_the_newest_are_kept(
    user, no_memories, settings, scanned, monkeypatch
):
    settings.CHAT_PROMPT_RECORDS_KEPT = 2
    scanned[0].fired.append(fired("The lamp is old.", tokens=5))
    scanned[0].over_budget.append(fired("Too long.", uid=9, tokens=900))
    books = [ScanBook(book_id=1, name="World", entries=())]
    monkeypatch.setattr(lore_selectors, "scan_books", lambda owner_id, book_ids: books)
    companion = make_companion(user)
    companion.lorebooks.add(Lorebook.objects.create(owner=user, name="World"))
    conversation = make_chat(companion, greeting="*waves*")
    runs = []
    for said in ("one", "two", "three"):
        run = start_run(conversation, companion, said)
        run = PipelineRun.objects.select_related("conversation", "turn__message", "companion").get(pk=run.pk)
        writer = ReplyWriter(run)
        sent = writer.prompt(companion, user_name="Alice", counter=COUNTER, context_length=8192, reserve=256)
        writer.record_prompt(sent.record)
        run_mark_cancelled(run.pk)
        runs.append(run)
    record = PipelineRun.objects.values_list("prompt_record", flat=True).get(pk=runs[-1].pk)
    assert record["messages"][-1] == {"role": "user", "content": "three"}
    assert record["context_length"] == 8192 and record["reserve"] == 256 and record["counter"] == "estimate"
    assert {p["part"] for p in record["parts"]} >= {"system", "newest", "character", "lore", "history"}
    assert record["lore"][0] | {} == {
        "book": "World", "uid": 1, "comment": "entry 1", "reason": "key: lamp", "tokens": 5,
        "position": "before_char", "depth": 4,
    }  # fmt: skip
    assert record["lore_over_budget"][0]["uid"] == 9
    assert record["summary_used"] is False and record["dropped_upto_id"] is None
    assert (
        record["history_start_id"] == Message.objects.filter(conversation=conversation).order_by("pk")[0].pk
    )
    kept = dict(PipelineRun.objects.filter(conversation=conversation).values_list("pk", "prompt_record"))
    assert kept[runs[0].pk] == {} and kept[runs[1].pk] and kept[runs[2].pk]


def test_runs_load_without_their_record(user, no_memories):
    companion = make_companion(user)
    run = start_run(make_chat(companion), companion, "hi")
    PipelineRun.objects.filter(pk=run.pk).update(prompt_record={"messages": []})
    assert "prompt_record" in PipelineRun.objects.get(pk=run.pk).get_deferred_fields()
    assert "prompt_record" in companion.runs.get().get_deferred_fields()
    run_mark_cancelled(run.pk)


# --- the reply step, on a real worker ----------------------------------------------------------


@sync_to_async
def _sent_record(companion_id: int) -> dict:
    run = PipelineRun.objects.filter(companion_id=companion_id).order_by("-created_at").first()
    return PipelineRun.objects.values_list("prompt_record", flat=True).get(pk=run.pk)


@sync_to_async
def _ratio() -> float:
    connection = Connection.objects.get(from_env=True, kind=Connection.Kind.LLM)
    return tokens.learned_ratio(connection, "fake-model")


@pytest.mark.django_db(transaction=True)
async def test_the_reply_step_records_what_it_sent_and_learns_from_usage(
    worker, use_fake_llm, connect, companion, user
):
    use_fake_llm.tokenize = "vllm"
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Tell me a story about the sea " * 10})
    await client.receive_until("message.accepted")
    await client.receive_until("done")
    streamed = [r["json"] for r in use_fake_llm.requests if (r["json"] or {}).get("stream")][-1]
    record = await _sent_record(companion.pk)
    assert record["messages"] == streamed["messages"]  # exactly what went over the wire
    assert record["counter"] == "tokenizer"
    assert record["reserve"] == streamed["max_tokens"]
    assert use_fake_llm.tokenize_requests  # counted by the server's tokenizer
    # The fake reports a quarter of the characters as prompt tokens: the ratio moves off 3.0.
    assert await _ratio() != pytest.approx(3.0)
