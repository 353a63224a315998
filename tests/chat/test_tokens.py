"""Counting tokens: the server's /tokenize (llama-server and vLLM shapes), cached; else an
estimate whose characters-per-token ratio is learned from the usage servers report."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache

from chat import tokens
from chat.backend_models import Connection

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counts():
    tokens.forget_counts()
    yield
    tokens.forget_counts()


def connection(base_url: str, *, provider: str = "openai-compatible", name: str = "local") -> Connection:
    return Connection.objects.create(
        name=name, kind=Connection.Kind.LLM, provider=provider, base_url=base_url, default_model="m"
    )


def test_llama_server_counts_come_from_its_tokenizer_and_are_cached(fake_llm):
    row = connection(fake_llm.base_url)
    text = f"Hello there, friend {uuid.uuid4().hex}"  # never counted before, in any cache
    counter = tokens.counter_for(row, "m")
    assert counter.kind == tokens.TOKENIZER
    assert counter.count(text) == 5  # Hello / there / , / friend / the hex
    probes_and_counts = len(fake_llm.tokenize_requests)
    assert fake_llm.tokenize_requests[-1] == {"content": text}
    again = tokens.counter_for(row, "m")  # the probe is remembered
    assert again.count(text) == 5
    assert len(fake_llm.tokenize_requests) == probes_and_counts
    tokens.forget_counts()  # another process: the shared cache has it
    assert tokens.counter_for(row, "m").count(text) == 5
    assert len(fake_llm.tokenize_requests) == probes_and_counts


def test_a_vllm_server_is_asked_in_its_own_shape(fake_llm):
    fake_llm.tokenize = "vllm"
    counter = tokens.counter_for(connection(fake_llm.base_url), "qwen")
    assert counter.kind == tokens.TOKENIZER
    text = f"one two three {uuid.uuid4().hex}"
    assert counter.count(text) == 4
    assert fake_llm.tokenize_requests[-1] == {"model": "qwen", "prompt": text}


@pytest.mark.parametrize("mode", [None, "error", "garbage"])
def test_without_a_working_tokenizer_the_count_is_an_estimate_and_the_probe_is_remembered(fake_llm, mode):
    fake_llm.tokenize = mode
    row = connection(fake_llm.base_url)
    counter = tokens.counter_for(row, "m")
    assert isinstance(counter, tokens.EstimateCounter)
    assert counter.count("x" * 30) == 10  # the default ratio, three characters a token
    asked = len(fake_llm.tokenize_requests)
    tokens.counter_for(row, "m")
    assert len(fake_llm.tokenize_requests) == asked


def test_a_tokenizer_that_fails_mid_prompt_gives_way_to_the_estimate(fake_llm):
    row = connection(fake_llm.base_url)
    counter = tokens.counter_for(row, "m")
    assert counter.count(f"a b {uuid.uuid4().hex}") == 3
    fake_llm.tokenize = "error"
    assert counter.count("y" * 9) == 3
    assert counter.kind == tokens.ESTIMATE
    assert isinstance(tokens.counter_for(row, "m"), tokens.EstimateCounter)  # not asked for a while


def test_a_down_server_is_an_estimate(fake_llm):
    fake_llm.is_down = True
    assert isinstance(tokens.counter_for(connection(fake_llm.base_url), "m"), tokens.EstimateCounter)


def test_hosted_apis_and_the_demo_are_never_probed(fake_llm):
    row = connection(fake_llm.base_url, provider="openai", name="hosted")
    assert isinstance(tokens.counter_for(row, "gpt"), tokens.EstimateCounter)
    assert isinstance(tokens.counter_for(None, ""), tokens.EstimateCounter)
    assert fake_llm.tokenize_requests == []


def test_an_edited_connection_is_probed_again(fake_llm):
    fake_llm.tokenize = None
    row = connection(fake_llm.base_url)
    assert isinstance(tokens.counter_for(row, "m"), tokens.EstimateCounter)
    fake_llm.tokenize = "llama"
    row.save()  # a new updated_at
    assert tokens.counter_for(row, "m").kind == tokens.TOKENIZER


def test_the_ratio_is_learned_from_reported_usage(settings):
    settings.CHAT_CHARS_PER_TOKEN_LEARN_RATE = 0.5
    row = Connection.objects.create(name="r", kind=Connection.Kind.LLM, provider="openai", default_model="m")
    cache.delete(tokens._ratio_key(row, "m"))
    assert tokens.learned_ratio(row, "m") == settings.CHAT_DEFAULT_CHARS_PER_TOKEN
    messages = [{"role": "system", "content": "s" * 600}, {"role": "user", "content": "u" * 400}]
    overhead = 2 * settings.CHAT_TOKENS_PER_MESSAGE + tokens.REPLY_PRIMING_TOKENS
    assert tokens.learn_from_usage(row, "m", messages=messages, prompt_tokens=200 + overhead) == 5.0
    assert tokens.learned_ratio(row, "m") == 5.0  # the first sample is taken as it is
    tokens.learn_from_usage(row, "m", messages=messages, prompt_tokens=500 + overhead)  # 2.0
    assert tokens.learned_ratio(row, "m") == pytest.approx(3.5)  # halfway: an average
    assert tokens.learned_ratio(row, "other-model") == settings.CHAT_DEFAULT_CHARS_PER_TOKEN
    assert tokens.counter_for(row, "m").count("z" * 35) == 10


def test_nonsense_usage_teaches_nothing_or_stays_in_bounds():
    row = Connection.objects.create(name="n", kind=Connection.Kind.LLM, provider="openai", default_model="m")
    cache.delete(tokens._ratio_key(row, "m"))
    short = [{"role": "user", "content": "hi"}]
    assert tokens.learn_from_usage(row, "m", messages=short, prompt_tokens=5) is None
    long = [{"role": "user", "content": "x" * 1000}]
    assert tokens.learn_from_usage(row, "m", messages=long, prompt_tokens=0) is None
    assert tokens.learn_from_usage(row, "m", messages=long, prompt_tokens=20) == tokens.MAX_CHARS_PER_TOKEN


def test_the_process_cache_is_bounded(settings, fake_llm):
    settings.CHAT_TOKEN_COUNT_CACHE_SIZE = 3
    counter = tokens.counter_for(connection(fake_llm.base_url), "m")
    for n in range(10):
        counter.count(f"text {n} {uuid.uuid4().hex}")
    assert len(tokens._counts.items) == 3
