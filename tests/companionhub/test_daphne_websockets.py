"""The real Daphne and a real websocket client: refusals and oversized frames as the protocol says.

In-process tests (``WebsocketCommunicator``) cannot show these: a consumer that
closes before accepting looks the same there as one that accepts and closes,
but Daphne answers the first with an HTTP 403 handshake failure; and
autobahn's message limits and the way it fails a socket live in Daphne only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from chat import events
from companionhub.daphne_websockets import CLOSE_MESSAGE_TOO_BIG
from tests.fakes.site import Site, run_site, site_env

KB = 1024
MB = 1024 * KB

SETUP = """
from accounts.models import User
from accounts.tokens import token_create
from tests.companions.factories import make_companion
owner = User.objects.create_user(username="owner", email="owner@example.com", password="x-owner-password-1")
other = User.objects.create_user(username="other", email="other@example.com", password="x-other-password-1")
mine = make_companion(owner, name="Mika")
theirs = make_companion(other, name="Rin")
_, secret = token_create(user=owner, name="refusals")
print(mine.pk, theirs.pk, secret)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Site, str, str, str]]:
    var = tmp_path_factory.mktemp("daphne-ws")
    env = site_env(
        {"WS_MAX_SOCKETS_PER_USER": "2", "WS_PING_MAX_SOCKETS_PER_ADDRESS": "1", "EMBEDDED_WORKER": "False"},
        var_dir=var,
    )
    with run_site(env, var_dir=var) as running:
        mine, theirs, secret = running.manage("shell", "-c", SETUP).split()[-3:]
        yield running, mine, theirs, secret


def open_socket(site: Site, path: str, token: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return connect(
        f"{site.ws_url}{path}", origin=Origin(site.base_url), additional_headers=headers, open_timeout=10
    )


def close_code(socket: ClientConnection) -> int | None:
    """The server's close code, read after the handshake succeeded (a refusal is not a 403)."""
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_a_signed_out_client_sees_4401(site):
    running, mine, _, _ = site
    with open_socket(running, f"/ws/chat/{mine}/") as socket:
        assert close_code(socket) == events.CLOSE_UNAUTHENTICATED


def test_another_users_companion_is_4404(site):
    running, _, theirs, secret = site
    with open_socket(running, f"/ws/chat/{theirs}/", secret) as socket:
        assert close_code(socket) == events.CLOSE_NOT_FOUND


def test_one_socket_too_many_is_4429_and_the_others_stay_open(site):
    running, mine, _, secret = site
    with ExitStack() as stack:
        kept = [stack.enter_context(open_socket(running, f"/ws/chat/{mine}/", secret)) for _ in range(2)]
        for socket in kept:
            assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"
        with open_socket(running, f"/ws/chat/{mine}/", secret) as refused:
            assert close_code(refused) == events.CLOSE_TOO_MANY_SOCKETS
        kept[0].send(json.dumps({"type": "ping"}))
        assert json.loads(kept[0].recv(timeout=10)) == {"type": "pong"}


def test_one_ping_socket_too_many_is_4429(site):
    running, _, _, _ = site
    with open_socket(running, "/ws/ping/") as first, open_socket(running, "/ws/ping/") as refused:
        assert close_code(refused) == 4429
        first.send(json.dumps({"type": "ping"}))
        assert json.loads(first.recv(timeout=10)) == {"type": "pong"}


@pytest.mark.parametrize("size", [70 * KB, 3 * MB // 2, 8 * MB], ids=["70KiB", "1.5MiB", "8MiB"])
def test_a_frame_over_the_limit_gets_frame_too_large_and_the_socket_stays_usable(site, size):
    running, mine, _, secret = site
    with open_socket(running, f"/ws/chat/{mine}/", secret) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"
        frame = json.dumps({"type": "message.send", "content": "x" * size, "client_id": "big"})
        socket.send(frame)
        error = json.loads(socket.recv(timeout=30))
        assert (error["type"], error["code"]) == ("error", "frame_too_large")
        socket.send(json.dumps({"type": "ping"}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "pong"}


def test_a_frame_over_the_hard_cap_is_closed_with_1009_not_reset(site):
    running, mine, _, secret = site
    with open_socket(running, f"/ws/chat/{mine}/", secret) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"
        frame = json.dumps({"type": "message.send", "content": "x" * (17 * MB), "client_id": "huge"})
        with pytest.raises(ConnectionClosed) as closed:
            socket.send(frame)
            socket.recv(timeout=30)
        assert closed.value.rcvd is not None, "the connection was dropped without a close frame"
        assert closed.value.rcvd.code == CLOSE_MESSAGE_TOO_BIG
