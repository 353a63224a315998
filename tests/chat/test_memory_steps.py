"""The ``remember`` after-step (``chat.memory_steps``), its prompt parsing and what it costs.

``memories_similar`` / ``memories_remember`` are the memories app's (another piece of issue
16): replaced here at that boundary."""

from __future__ import annotations

import json

import pytest

from accounts.models import UsageTransaction
from chat import memory_steps
from chat.jsonout import first_json_object
from chat.memory_prompts import MEMORY_MARKER, parse_facts
from chat.models import PipelineRun, Turn
from companions.models import Companion
from memories.models import Memory
from tests.chat.factories import add_exchange, make_chat

pytestmark = pytest.mark.django_db


def test_the_json_is_found_in_prose_fences_and_nested():
    raw = 'Sure!\n```json\n{"facts": [{"text": "a", "replaces": 3}, {"text": "b"}],}\n```'
    assert first_json_object(raw) == {"facts": [{"text": "a", "replaces": 3}, {"text": "b"}]}
    assert first_json_object("{'facts': ['x']}") == {"facts": ["x"]}
    assert first_json_object("no json {here") is None
    assert first_json_object('[1, 2] then {"a": {"b": 1}}') == {"a": {"b": 1}}


def test_facts_are_capped_deduplicated_and_replace_only_shown_memories():
    raw = json.dumps(
        {
            "facts": [
                {"text": "  Alice's sister   is Mara. ", "replaces": "7"},
                {"text": "alice's sister is mara."},
                {"text": "x" * 1000, "replaces": 999},
                "Alice likes tea.",
                {"text": 5},
                {"text": "Alice promised to visit.", "replaces": 7},
                {"text": "one too many"},
            ]
        }
    )
    facts = parse_facts(raw, known_ids={7}, limit=4)
    assert [(f.text[:30], f.replaces) for f in facts] == [
        ("Alice's sister is Mara.", 7),
        ("x" * 30, None),
        ("Alice likes tea.", None),
        ("Alice promised to visit.", None),  # one memory is replaced by one fact
    ]
    assert len(facts[1].text) == 300
    assert parse_facts("nothing", known_ids=set(), limit=5) == []
    assert parse_facts('{"facts": "none"}', known_ids=set(), limit=5) == []


@pytest.fixture
def run(companion):
    conversation = make_chat(companion)
    said, reply = add_exchange(conversation, companion, "My sister is called Mara.", "What a lovely name!")
    return PipelineRun.objects.create(
        conversation=conversation,
        turn=Turn.objects.get(message=said),
        companion=companion,
        reply=reply,
        status=PipelineRun.Status.COMPLETED,
    )


@pytest.fixture
def memory_store(monkeypatch, companion):
    """The memories app's two functions, recorded."""
    calls = {"similar": [], "remember": []}
    known = Memory(pk=7, owner_id=companion.owner_id, companion=companion, text="Alice has a sister.")

    def similar(**kwargs):
        calls["similar"].append(kwargs)
        return [known]

    def remember(**kwargs):
        calls["remember"].append(kwargs)
        return list(kwargs["facts"])

    monkeypatch.setattr(memory_steps, "memories_similar", similar)
    monkeypatch.setattr(memory_steps, "memories_remember", remember)
    return calls


FACTS = '{"facts": [{"text": "Alice\'s sister is called Mara.", "replaces": 7}]}'


def test_it_remembers_the_facts_with_vectors_and_charges_the_owner(
    use_fake_llm, memory_work, run, memory_store, companion
):
    use_fake_llm.answer_when(MEMORY_MARKER, f"Here you go: {FACTS}")
    memory_steps.remember_after_turn(run.pk)
    [similar] = memory_store["similar"]
    assert similar["owner_id"] == companion.owner_id and similar["companion_id"] == companion.pk
    assert (
        "Mara" in similar["text"]
        and len(similar["vector"]) > 0
        and similar["embedding_model"] == "fake-model"
    )
    [remember] = memory_store["remember"]
    [fact] = remember["facts"]
    assert (fact.text, fact.replaces) == ("Alice's sister is called Mara.", 7)
    assert len(fact.vector) > 0 and remember["embedding_model"] == "fake-model"
    prompt = next(r["json"] for r in use_fake_llm.requests if MEMORY_MARKER in str(r["json"]))
    assert "[7] Alice has a sister." in prompt["messages"][1]["content"]
    assert "My sister is called Mara." in prompt["messages"][1]["content"]
    [charge] = UsageTransaction.objects.filter(run=None)
    assert charge.run_status == "memory" and charge.user_id == companion.owner_id
    total = charge.prompt_tokens + charge.completion_tokens
    assert total > 0 and Companion.objects.get(pk=companion.pk).tokens_burned == total


def test_without_embeddings_facts_are_kept_without_vectors(use_fake_llm, memory_work, run, memory_store):
    use_fake_llm.embeddings = False
    use_fake_llm.answer_when(MEMORY_MARKER, FACTS)
    memory_steps.remember_after_turn(run.pk)
    [remember] = memory_store["remember"]
    assert remember["facts"][0].vector is None and remember["embedding_model"] == ""
    assert memory_store["similar"][0]["vector"] is None


def test_a_failing_memory_call_remembers_nothing_and_charges_nothing(
    use_fake_llm, memory_work, run, memory_store
):
    use_fake_llm.embeddings = False
    use_fake_llm.answer_when(MEMORY_MARKER, status=500)
    memory_steps.remember_after_turn(run.pk)
    assert memory_store["remember"] == []
    assert not UsageTransaction.objects.exists()


def test_nothing_worth_remembering_writes_nothing(use_fake_llm, memory_work, run, memory_store):
    use_fake_llm.answer_when(MEMORY_MARKER, '{"facts": []}')
    memory_steps.remember_after_turn(run.pk)
    assert memory_store["remember"] == []
    assert UsageTransaction.objects.get(run=None).run_status == "memory"  # the call was paid for


def test_it_is_off_with_the_setting_and_for_runs_that_did_not_complete(
    use_fake_llm, memory_work, run, memory_store, settings
):
    PipelineRun.objects.filter(pk=run.pk).update(status=PipelineRun.Status.FAILED)
    memory_steps.remember_after_turn(run.pk)
    PipelineRun.objects.filter(pk=run.pk).update(
        status=PipelineRun.Status.COMPLETED, analysis={"repaint": {}}
    )
    memory_steps.remember_after_turn(run.pk)  # a picture painted again: the same reply
    PipelineRun.objects.filter(pk=run.pk).update(analysis={})
    settings.MEMORY_EXTRACTION_ENABLED = False
    memory_steps.remember_after_turn(run.pk)
    assert memory_store["similar"] == [] and use_fake_llm.requests == []


def test_an_open_breaker_skips_the_step(use_fake_llm, memory_work, run, memory_store):
    from chat.backends import llm_for_companion

    breaker = llm_for_companion(run.companion_id).breaker
    try:
        for _ in range(10):
            breaker.record_failure()
        memory_steps.remember_after_turn(run.pk)
        assert use_fake_llm.requests == []
    finally:
        breaker.reset()


def test_a_user_over_quota_gets_no_memory_work(use_fake_llm, memory_work, run, memory_store, settings):
    from accounts.usage import usage_record_extra

    settings.USAGE_MONTHLY_TOKEN_QUOTA = 10
    usage_record_extra(
        user_id=run.companion.owner_id, companion_id=None, companion_name="", kind="memory",
        prompt_tokens=20, completion_tokens=0,
    )  # fmt: skip
    memory_steps.remember_after_turn(run.pk)
    assert use_fake_llm.requests == []


def test_the_demo_back_end_extracts_facts_offline(memory_work, run, memory_store, settings):
    settings.LLM_BASE_URL = ""
    settings.NOVITA_KEY = ""
    memory_steps.remember_after_turn(run.pk)
    [remember] = memory_store["remember"]
    [fact] = remember["facts"]
    assert "sister is called Mara" in fact.text and len(fact.vector) == 256
