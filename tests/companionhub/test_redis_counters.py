"""Page cache, metrics counters and the websocket gauge on a real Redis, under a key prefix of their own."""

import time
import uuid

import pytest
import redis
from django.core.cache import cache, caches
from django.urls import reverse

from companionhub import metrics, pagecache
from tests.companions.factories import make_companion


@pytest.fixture
def redis_cache(redis_url, settings):
    url = redis_url  # the one named for the tests, or their own: never a database picked here
    prefix = f"ch-test-metrics-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "companionhub.redis_cache.SharedClientRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
        }
    }
    yield url, prefix
    caches.close_all()
    # Only this test's keys: a Redis named for the tests may hold data of its own.
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)


def test_page_cache_and_its_counters_work_on_redis(redis_cache, client, user):
    pagecache.reset_stats()
    make_companion(user)
    client.force_login(user)
    client.get(reverse("companions:list"))
    client.get(reverse("companions:list"))
    pagecache.user_pages_changed(user.pk)
    client.get(reverse("companions:list"))
    stats = pagecache.stats()["pages"]["companion_list"]
    assert (stats["hits"], stats["misses"]) == (1, 2)
    # The counter is a plain Redis integer that INCR moves, whichever process asks.
    url, prefix = redis_cache
    raw = redis.Redis.from_url(url)
    [key] = raw.keys(f"{prefix}:*pagecache:stats:companion_list:hits")
    assert raw.incr(key) == 2
    assert pagecache.stats()["pages"]["companion_list"]["hits"] == 2


@pytest.mark.django_db
def test_metrics_counters_and_the_websocket_gauge_work_on_redis(redis_cache, client, staff_user):
    metrics.count_rate_limit_hit("login")
    metrics.count_rate_limit_hit("login")
    metrics.observe_step_duration("generate_reply", 1500)
    metrics._publish_ws_count(4)
    cache.set(metrics._ws_key("other-host"), 3, timeout=metrics.WS_KEY_TTL)
    directory = cache.get(metrics.WS_DIRECTORY)
    cache.set(metrics.WS_DIRECTORY, {**directory, "other-host": time.time()}, timeout=None)
    client.force_login(staff_user)
    text = client.get(reverse("metrics")).content.decode()
    assert 'companionhub_rate_limit_hits_total{scope="login"} 2' in text
    assert 'companionhub_step_duration_seconds_bucket{step="generate_reply",le="2.5"} 1' in text
    assert "companionhub_websocket_connections 7" in text
    metrics._publish_ws_count(0)
