"""The websocket gauge of /metrics follows sockets as they open and close."""

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache

from companionhub import metrics

pytestmark = pytest.mark.django_db(transaction=True)


async def test_open_sockets_are_counted_and_closing_them_counts_down(connect, companion, user):
    await cache.adelete(metrics.WS_DIRECTORY)
    gauge = sync_to_async(metrics.websocket_connections)
    first = await connect(companion.pk, user=user)
    second = await connect(companion.pk, user=user)
    assert first.accepted and second.accepted
    assert await gauge() == 2
    await first.close()
    assert await gauge() == 1
    await second.close()
    assert await gauge() == 0


async def test_refused_sockets_are_not_counted(connect, companion, other_user):
    await cache.adelete(metrics.WS_DIRECTORY)
    client = await connect(companion.pk, user=other_user)
    assert not client.accepted
    assert await sync_to_async(metrics.websocket_connections)() == 0


async def test_sockets_of_every_route_are_counted(connect, companion, user):
    from tests.chat.factories import make_chat, make_group

    await cache.adelete(metrics.WS_DIRECTORY)
    chat = await sync_to_async(make_chat)(companion)
    group = await sync_to_async(make_group)(user, "Rin", "Aiko")
    clients = [
        await connect(None, user=user, path=f"/ws/conversation/{chat.pk}/"),
        await connect(None, user=user, path=f"/ws/group/{group.pk}/"),
    ]
    assert all(client.accepted for client in clients)
    assert await sync_to_async(metrics.websocket_connections)() == 2
    for client in clients:
        await client.close()
    assert await sync_to_async(metrics.websocket_connections)() == 0
