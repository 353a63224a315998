"""Chat fixtures: a real Celery worker, websocket clients, companions.

The worker is Celery's own test worker (threads pool) consuming the chat and
image queues of the configured broker: the in-memory broker with nothing
configured, Redis under CI. Tasks go through the broker for real; nothing is
eager.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from celery.worker import state as worker_state
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import Client

from chat.backends import image_breaker, llm_breaker, reset_backends
from companionhub.asgi import application
from tests.companions.factories import make_companion

ORIGIN = (b"origin", b"http://localhost:8000")
# The Origin must be the site's own origin for the Host the request names (companionhub/ws_origin.py).
HOST = (b"host", b"localhost:8000")
EVENT_TIMEOUT = 20  # seconds to wait for one event before the test fails


@pytest.fixture
def worker(chat_worker, transactional_db, django_db_blocker, settings):
    """A running worker for one test, with fast retries and a clean breaker."""
    settings.CHAT_RETRY_BACKOFF_BASE = 0.05
    settings.CHAT_RETRY_BACKOFF_CAP = 0.2
    settings.DEMO_LLM_TOKEN_DELAY = 0
    reset_backends()
    llm_breaker().reset()
    image_breaker().reset()
    yield chat_worker
    _wait_for_idle_worker()
    llm_breaker().reset()
    image_breaker().reset()


def _wait_for_idle_worker(timeout: float = 10.0) -> None:
    """Let tasks a test left running finish before its database is emptied.

    A test that stops reading before its run is done would otherwise have the
    teardown's TRUNCATE race the worker's last transaction (a deadlock on
    PostgreSQL) and leave rows for the next test. Nothing to wait for is the
    usual case and costs nothing.
    """
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        if worker_state.active_requests or worker_state.reserved_requests:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            return
        time.sleep(0.02)


# Between two steps of a chain the worker holds no task for a moment (the next is on its
# way through the broker): idle means idle for this long, not idle once.
QUIET_SECONDS = 0.3


@pytest.fixture
def memory_work(settings):
    """The summary and the memories after each reply, on (tests/conftest.py turns them off)."""
    settings.MEMORY_SUMMARY_ENABLED = True
    settings.MEMORY_EXTRACTION_ENABLED = True
    return settings


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def companion(user):
    return make_companion(user)


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


class ChatClient:
    """A websocket client of the chat protocol, as a browser or a program would use it."""

    def __init__(self, companion_id: int | None, headers: list[tuple[bytes, bytes]], path: str = "") -> None:
        path = path or f"/ws/chat/{companion_id}/"
        self.communicator = WebsocketCommunicator(application, path, headers=headers)
        self.events: list[dict] = []
        self.pending: list[dict] = []  # read while connecting, not yet received

    async def connect(self) -> tuple[bool, int | None]:
        """(let in, close code). The consumer refuses a socket by accepting it and closing at once
        with its code (tests/companionhub/test_daphne_websockets.py shows why); the origin check
        refuses the handshake itself."""
        connected, code = await self.communicator.connect(timeout=10)
        if not connected:
            return False, code
        first = await self.communicator.receive_output(timeout=10)
        if first["type"] == "websocket.close":
            return False, first.get("code")
        self.pending.append(json.loads(first["text"]))
        return True, None

    async def send(self, frame: dict | str) -> None:
        if isinstance(frame, str):
            await self.communicator.send_to(text_data=frame)
        else:
            await self.communicator.send_json_to(frame)

    async def receive(self, timeout: float = EVENT_TIMEOUT) -> dict:  # noqa: ASYNC109 - mirrors Channels
        if self.pending:
            event = self.pending.pop(0)
        else:
            event = await self.communicator.receive_json_from(timeout=timeout)
        self.events.append(event)
        return event

    async def receive_until(self, *types: str, timeout: float = EVENT_TIMEOUT) -> dict:  # noqa: ASYNC109
        """Read events until one of ``types`` arrives (a run error always ends the wait)."""
        while True:
            event = await self.receive(timeout)
            if event["type"] in types:
                return event
            if event["type"] == "error" and event.get("code") != "image_failed" and "error" not in types:
                raise AssertionError(f"unexpected error event: {event}")

    async def nothing_more(self) -> bool:
        return await self.communicator.receive_nothing(timeout=0.3)

    async def receive_close(self, timeout: float = 5) -> int | None:  # noqa: ASYNC109 - mirrors Channels
        """The close code of the next output, which must be the server closing the socket."""
        output = await self.communicator.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code")

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.communicator.disconnect()


@pytest.fixture
async def connect():
    """``await connect(companion_id, user=... | token=...)`` -> a connected ChatClient (closed at the end).

    ``path=`` connects elsewhere (``/ws/conversation/<id>/``, a group's ``/ws/group/<id>/``).
    """
    clients: list[ChatClient] = []
    fresh_users: set[int] = set()

    async def open_client(
        companion_id: int | None, *, user=None, token: str | None = None, origin=ORIGIN, path: str = ""
    ):
        headers = [HOST, origin] if origin else [HOST]
        if user is not None and user.pk not in fresh_users:
            # Socket counts live in the shared cache; start each test from zero.
            await cache.adelete(f"ws-sockets:user:{user.pk}")
            fresh_users.add(user.pk)
        if user is not None:
            cookie = await database_sync_to_async(session_cookie)(user)
            headers.append((b"cookie", cookie))
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        client = ChatClient(companion_id, headers, path)
        clients.append(client)
        connected, code = await client.connect()
        client.accepted, client.close_code = connected, code
        if connected:
            snapshot = await client.receive()
            assert snapshot["type"] in ("snapshot", "group.snapshot")
        return client

    yield open_client
    for client in clients:
        await client.close()


@pytest.fixture
def connect_conversation(connect):
    """``await connect_conversation(conversation_id, user=... | token=...)``: ``/ws/conversation/<id>/``."""

    async def open_conversation(conversation_id: int, **options):
        return await connect(None, path=f"/ws/conversation/{conversation_id}/", **options)

    return open_conversation


def dumps(frame) -> str:
    return json.dumps(frame)


# --- group conversations (tests/chat/test_group_*.py) ---


@pytest.fixture
def group(user):
    """A group of three of ``user``'s companions: Mika, Rin and Aya (their standing order)."""
    from tests.chat.factories import make_group

    return make_group(user, "Mika", "Rin", "Aya")


@pytest.fixture
def connect_group(connect):
    """``await connect_group(group_id, user=... | token=...)`` -> a client of ``/ws/group/<id>/``."""

    async def open_group(group_id: int, **kwargs):
        return await connect(None, path=f"/ws/group/{group_id}/", **kwargs)

    return open_group
