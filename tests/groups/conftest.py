"""Group chat fixtures: the chat tests' worker and websocket client, pointed at a group."""

from __future__ import annotations

import pytest

from tests.chat import conftest as chat_fixtures
from tests.groups.factories import make_group

# The chat tests' fixtures: a real worker, the websocket client, a private MEDIA_ROOT.
worker = chat_fixtures.worker
connect = chat_fixtures.connect
media_root = chat_fixtures.media_root


@pytest.fixture
def group(user):
    return make_group(user, "Mika", "Rin", "Aya")


@pytest.fixture
def connect_group(connect):
    """``await connect_group(group_id, user=... | token=...)`` -> a client of ``/ws/group/<id>/``."""

    async def open_group(group_id: int, **kwargs):
        return await connect(None, path=f"/ws/group/{group_id}/", **kwargs)

    return open_group
