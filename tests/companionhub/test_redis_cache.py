"""The Redis cache keeps one client per connection pool, and caches as Django's does."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis
from django.core.cache import caches

from companionhub.redis_cache import SharedClientRedisCache


@pytest.fixture
def cache(redis_url):
    prefix = f"ch-test-cache-{uuid.uuid4().hex[:12]}"
    backend = SharedClientRedisCache(redis_url, {"KEY_PREFIX": prefix})
    yield backend
    backend.close()
    client = redis.Redis.from_url(redis_url)  # only this test's keys
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)


def test_every_call_shares_one_client_and_the_cache_works_as_before(cache):
    first = cache._cache.get_client(write=True)
    assert cache._cache.get_client() is first  # one server: reads and writes share its pool
    cache.set("greeting", {"text": "hello"}, 30)
    assert cache.get("greeting") == {"text": "hello"}
    assert cache.add("greeting", "other", 30) is False
    cache.set("count", 1, 30)
    assert cache.incr("count", 2) == 3
    assert cache.get_many(["greeting", "count", "missing"]) == {"greeting": {"text": "hello"}, "count": 3}
    cache.delete("greeting")
    assert cache.get("greeting") is None
    assert cache._cache.get_client() is first


def test_threads_share_the_client_and_each_gets_its_own_answers(cache):
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(50):
            cache.set(f"k{n}", i, 30)
            if cache.get(f"k{n}") != i:
                errors.append(f"thread {n} read another value at {i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


def test_the_site_cache_is_this_backend_on_redis(settings):
    if not settings.REDIS_URL:
        pytest.skip("the embedded default caches in memory")
    assert isinstance(caches["default"], SharedClientRedisCache)
