"""The Redis channel layer under a crowd: many sockets joining their groups at once."""

from __future__ import annotations

import asyncio
import copy
import uuid

from channels_redis.core import RedisChannelLayer
from django.conf import settings

CROWD = 250  # more than redis-py 8's default pool of 100 connections


def redis_layer_config(redis_url: str) -> dict:
    """The production layer's CONFIG (as settings build it with REDIS_URL), on the test's Redis."""
    config = copy.deepcopy(settings.CHANNEL_LAYERS["default"]["CONFIG"])
    if "hosts" not in config:  # this run uses the in-memory layer: build what REDIS_URL would give
        config = {"hosts": [{"address": redis_url, "socket_timeout": None, "max_connections": 1000}]}
    config["hosts"][0]["address"] = redis_url
    config["prefix"] = f"test-crowd-{uuid.uuid4().hex[:8]}"
    return config


def test_settings_raise_the_layer_pool_above_redis_default(settings):
    if not settings.REDIS_URL:
        return  # the in-memory layer has no pool
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["max_connections"] > CROWD


async def test_a_crowd_of_sockets_can_join_their_groups_at_once(redis_url):
    layer = RedisChannelLayer(**redis_layer_config(redis_url))
    channels = [f"crowd.{uuid.uuid4().hex}" for _ in range(CROWD)]
    try:
        await asyncio.gather(*(layer.group_add(f"g{n}", name) for n, name in enumerate(channels)))
        await asyncio.gather(*(layer.group_discard(f"g{n}", name) for n, name in enumerate(channels)))
    finally:
        await layer.flush()
        await layer.close_pools()
