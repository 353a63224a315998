"""``chat.embeddings``: the connection's ``/v1/embeddings`` against the fake server, and the
demo back end's offline vectors."""

from __future__ import annotations

import math

import pytest

from chat.backends import llm_for_companion
from chat.demo_llm import EMBEDDING_DIMS, EMBEDDING_MODEL, DemoLLM, embed_text
from chat.embeddings import MAX_TEXT_CHARS, embed_texts

pytestmark = pytest.mark.django_db


def dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_it_embeds_texts_in_order_with_the_connections_model(use_fake_llm, companion):
    embedded = embed_texts(companion.pk, ["my sister is called Mara", "the weather is rainy"])
    assert embedded is not None
    assert len(embedded.vectors) == 2 and embedded.model == "fake-model"
    assert embedded.prompt_tokens > 0
    [request] = use_fake_llm.embedding_requests()
    texts = ["my sister is called Mara", "the weather is rainy"]
    assert request["json"] == {"model": "fake-model", "input": texts}
    assert request["headers"]["authorization"] == "Bearer test-key"
    # The fake's vectors of similar texts are close: the order was kept.
    again = embed_texts(companion.pk, ["my sister is named Mara"])
    assert dot(again.vectors[0], embedded.vectors[0]) > dot(again.vectors[0], embedded.vectors[1])


def test_the_embedding_model_setting_and_the_connections_field_win(use_fake_llm, companion, settings):
    settings.LLM_EMBEDDING_MODEL = "nomic-embed"
    assert embed_texts(companion.pk, ["a"]).model == "nomic-embed"
    connection = llm_for_companion(companion.pk).connection
    connection.embedding_model = "bge-small"
    connection.save()
    assert embed_texts(companion.pk, ["a"]).model == "bge-small"
    assert [r["json"]["model"] for r in use_fake_llm.embedding_requests()] == ["nomic-embed", "bge-small"]


def test_inputs_are_batched_and_capped(use_fake_llm, companion):
    embedded = embed_texts(companion.pk, [f"text {i}" for i in range(40)] + ["x" * (MAX_TEXT_CHARS + 500)])
    assert len(embedded.vectors) == 41
    first, second = use_fake_llm.embedding_requests()
    assert len(first["json"]["input"]) == 32 and len(second["json"]["input"]) == 9
    assert len(second["json"]["input"][-1]) == MAX_TEXT_CHARS


def test_too_many_texts_at_once_are_refused(use_fake_llm, companion):
    with pytest.raises(ValueError, match="at most"):
        embed_texts(companion.pk, ["a"] * 1000)


def test_no_texts_make_no_call(use_fake_llm, companion):
    assert embed_texts(companion.pk, []) is None
    assert use_fake_llm.embedding_requests() == []


@pytest.mark.parametrize("status", [404, 501])
def test_a_server_without_embeddings_is_remembered_and_not_asked_again(use_fake_llm, companion, status):
    use_fake_llm.fail_embeddings(status=status, times=5)
    assert embed_texts(companion.pk, ["a"]) is None
    assert embed_texts(companion.pk, ["b"]) is None
    assert len(use_fake_llm.embedding_requests()) == 1


def test_a_400_that_says_embeddings_are_not_supported_is_remembered(use_fake_llm, companion):
    use_fake_llm.fail_embeddings(status=400, message="This model does not support embeddings.", times=5)
    assert embed_texts(companion.pk, ["a"]) is None
    assert embed_texts(companion.pk, ["b"]) is None
    assert len(use_fake_llm.embedding_requests()) == 1


def test_a_server_error_is_none_but_asked_again_next_time(use_fake_llm, companion):
    use_fake_llm.fail_embeddings(status=500)
    assert embed_texts(companion.pk, ["a"]) is None
    assert embed_texts(companion.pk, ["a"]) is not None
    assert len(use_fake_llm.embedding_requests()) == 2


@pytest.mark.parametrize("kind", ["short", "nan", "huge", "ragged", "garbage"])
def test_a_malformed_answer_is_none(use_fake_llm, companion, kind):
    use_fake_llm.fail_embeddings(kind)
    assert embed_texts(companion.pk, ["one", "two"]) is None
    assert embed_texts(companion.pk, ["one", "two"]) is not None  # not remembered as unsupported


def test_a_timeout_is_short_and_none(use_fake_llm, companion, settings):
    settings.EMBEDDINGS_TIMEOUT = 0.2
    use_fake_llm.delay = 1.0
    assert embed_texts(companion.pk, ["a"]) is None


def test_an_open_breaker_is_not_asked(use_fake_llm, companion):
    breaker = llm_for_companion(companion.pk).breaker
    try:
        for _ in range(10):
            breaker.record_failure()
        assert embed_texts(companion.pk, ["a"]) is None
        assert use_fake_llm.embedding_requests() == []
    finally:
        breaker.reset()


def test_the_demo_embeds_offline_deterministically(companion, settings):
    settings.LLM_BASE_URL = ""
    settings.NOVITA_KEY = ""
    texts = ["My sister is called Mara.", "My sister is named Mara!", "Rain today."]
    embedded = embed_texts(companion.pk, texts)
    assert embedded is not None and embedded.model == EMBEDDING_MODEL
    mara, named, rain = embedded.vectors
    assert len(mara) == EMBEDDING_DIMS and math.isclose(dot(mara, mara), 1.0)
    assert dot(mara, named) > dot(mara, rain)
    assert embed_texts(companion.pk, ["My sister is called Mara."]).vectors[0] == mara
    assert embed_text("") == embed_text("!!!")  # no words: a fixed unit vector, never zeros
    assert math.isclose(dot(embed_text(""), embed_text("")), 1.0)


def test_the_demo_answers_in_the_wire_shape():
    payload = DemoLLM(token_delay=0).embed(["a b", "c"], model="", timeout=(1, 1))
    assert [item["index"] for item in payload["data"]] == [0, 1]
    assert payload["usage"]["prompt_tokens"] > 0
