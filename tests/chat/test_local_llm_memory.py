"""One summary and one memory extraction against llama.cpp's llama-server, through the real
client and the real prompts. Optional, as ``test_local_llm.py``: skipped without
``make local-llm``. A 270M model's facts are not judged, only that the path holds: a summary
comes back, and the memory answer is read without error (and without embeddings, which that
server is not started with: remembered as unsupported, never a failure)."""

from __future__ import annotations

import pytest

from chat.embeddings import _says_unsupported
from chat.llm import LLMError, OpenAIChatClient
from chat.memory_prompts import build_memory_messages, build_summary_messages, parse_facts
from tests.chat.test_local_llm import llama_server  # noqa: F401  (the fixture)

pytestmark = pytest.mark.local_llm


def test_one_summary_and_one_memory_extraction(llama_server):  # noqa: F811
    client = OpenAIChatClient(base_url=llama_server, model="gemma-3-270m", read_timeout=120)
    transcript = "\n".join(
        [
            "Alice: I just got back from Rome with my sister Mara.",
            "Mira: How lovely! What did you two see?",
            "Alice: The Colosseum, and we promised to go to Paris next spring.",
        ]
    )
    summary = client.complete(
        build_summary_messages(
            user_name="Alice", speakers=["Mira"], previous="", transcript=transcript, append_only=False
        ),
        max_tokens=120,
        temperature=0.2,
    )
    assert summary.text.strip()
    answer = client.complete(
        build_memory_messages(
            user_name="Alice",
            companion_name="Mira",
            user_text="My sister is called Mara and she lives in Berlin.",
            reply_text="Mara, what a lovely name! Say hello to her in Berlin.",
            known=[],
        ),
        max_tokens=160,
        temperature=0.2,
    )
    facts = parse_facts(answer.text, known_ids=set(), limit=5)
    assert all(fact.text and fact.replaces is None for fact in facts)
    try:
        client.embed(["Mara"], model="gemma-3-270m", timeout=(3, 30))
    except LLMError as exc:
        assert _says_unsupported(exc) or exc.code in ("server", "bad_request")
