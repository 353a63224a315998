"""A chat client as docs/websocket.md tells third-party programs to write one, for the fault drills.

It speaks to the real site over the ``websockets`` library and keeps, per run,
the reply it reassembles the documented way: a ``snapshot`` sets it to
``run.content``, each ``token`` sets it to ``reply[:offset] + text``, ``done``
cuts it to ``length``. Sequence numbers are handled as documented: an event
already seen is dropped, and after a drop ``reconnect()`` resumes with
``?after=<last seq>``. Every frame is kept in order (``frames``) so a test can
check what came when, and each run's ends (``done`` or an ``error`` with the
run's id) are counted, so "exactly one end per run" can be asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

SETUP = """
from accounts.models import User
from accounts.tokens import token_create
from tests.companions.factories import make_companion
user = User.objects.create_user(username="{name}", email="{name}@example.com", password="x-drill-password-1")
_, secret = token_create(user=user, name="drill")
print(secret, *[make_companion(user).pk for _ in range({companions})])
"""
RUN_STATUS = "from chat.models import PipelineRun; print(PipelineRun.objects.get(pk='{run_id}').status)"
REPLIES = """
import json
from chat.models import PipelineRun
runs = PipelineRun.objects.filter(pk__in={run_ids!r}).select_related("reply")
print(json.dumps({{str(r.pk): [r.status, r.error_code, r.reply.content if r.reply else None,
                   r.reply_id] for r in runs}}))
"""
SENT_RUN = """
from chat.models import PipelineRun
run = PipelineRun.objects.filter(companion_id={companion_id}, turn__message__role="user",
                                 turn__message__content={content!r}).order_by("created_at").first()
print(run.pk if run else "-")
"""


def make_account(site: Any, name: str, companions: int) -> tuple[str, list[int]]:
    """A user with an API token and ``companions`` companions on ``site``: (secret, companion ids)."""
    output = site.manage("shell", "-c", SETUP.format(name=name, companions=companions))
    secret, *ids = output.split()[-1 - companions :]
    return secret, [int(i) for i in ids]


def stored_runs(site: Any, run_ids: list[str]) -> dict[str, tuple[str, str, str | None, int | None]]:
    """run id -> (status, error code, the reply message's stored content, its id), from the database."""
    found = json.loads(site.manage("shell", "-c", REPLIES.format(run_ids=list(run_ids))).splitlines()[-1])
    return {run_id: tuple(value) for run_id, value in found.items()}  # type: ignore[misc]


def sent_run(site: Any, companion_id: int, content: str) -> str | None:
    """The run answering the companion's user message ``content``, if the server stored one.

    For a frame whose socket closed before its answer came: the server may have
    handled it (the message is stored, the run started) or never seen it.
    """
    found = site.manage("shell", "-c", SENT_RUN.format(companion_id=companion_id, content=content))
    run_id = found.split()[-1]
    return None if run_id == "-" else run_id


class Unanswered(ConnectionError):
    """The socket closed before the server answered the frame: it may or may not have been handled."""


class Refused(AssertionError):
    """The server answered a frame with an error instead of starting the run."""

    def __init__(self, frame: dict[str, Any] | None) -> None:
        super().__init__(f"message refused: {frame}")
        self.frame = frame or {}


@dataclass
class RunView:
    """One run as one socket saw it."""

    text: str = ""
    ends: list[str] = field(default_factory=list)  # "done", or the code of each error of the run
    length: int | None = None
    message_id: int | None = None
    tokens: int = 0

    @property
    def ended(self) -> bool:
        return bool(self.ends)


class ChatSocket:
    """One websocket on one chat; reading happens in a task of its own."""

    def __init__(
        self,
        ws_url: str,
        origin: str,
        secret: str,
        path: str,
        *,
        timeline: list | None = None,
        name: str = "",
    ) -> None:
        self.timeline = timeline  # (name, event) of every socket sharing it, in arrival order
        self.name = name
        self.ws_url = ws_url
        self.headers = {"Origin": origin, "Authorization": f"Bearer {secret}"}
        self.path = path  # e.g. "/ws/chat/3/"
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.seq: int | None = None
        self.runs: dict[str, RunView] = {}
        self.frames: list[dict[str, Any]] = []
        self.accepted: list[str] = []  # run ids of this socket's own message.accepted, in order
        self.snapshots = 0
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()

    async def connect(self, *, resume: bool = False, timeout: float = 10) -> None:  # noqa: ASYNC109
        url = self.ws_url + self.path
        if resume and self.seq is not None:
            url += f"?after={self.seq}"
        self.closed.clear()
        snapshots = self.snapshots
        self.ws = await websockets.connect(url, additional_headers=self.headers, open_timeout=timeout)
        self.reader = asyncio.create_task(self._read(self.ws))
        await self.wait_for(lambda: self.snapshots > snapshots or self.closed.is_set(), timeout=timeout)
        if self.snapshots == snapshots:
            raise websockets.ConnectionClosedError(None, None)

    async def reconnect(self, *, within: float = 30) -> int:
        """Connect again with ``?after=<last seq>``, retrying while the server is away; how many tries."""
        await self.drop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        tries = 0
        while True:
            tries += 1
            try:
                await self.connect(resume=True)
                return tries
            except (OSError, TimeoutError, websockets.WebSocketException):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.25)

    async def drop(self) -> None:
        """Close the socket as a client that goes away would (no goodbye awaited for long)."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        self.ws = self.reader = None
        self.closed.set()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_message(self, content: str, client_id: str) -> None:
        await self.send({"type": "message.send", "content": content, "client_id": client_id})

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 30) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                if predicate():
                    return
                await self.changed.wait()

    async def wait_accepted(self, count: int, *, timeout: float = 30, since: int = 0) -> str:  # noqa: ASYNC109
        """The run id of the ``count``-th accepted message (a refusal after frame ``since`` raises
        ``Refused``; the socket closing first raises ``Unanswered``)."""
        await self.wait_for(
            lambda: len(self.accepted) >= count or self._refused(since) or self.closed.is_set(),
            timeout=timeout,
        )
        if len(self.accepted) >= count:
            return self.accepted[count - 1]
        if refusal := self._refused(since):
            raise Refused(refusal)
        raise Unanswered(f"{self.ws_url}{self.path} closed before the server answered")

    async def wait_end(self, run_id: str, *, timeout: float = 30) -> RunView:  # noqa: ASYNC109
        await self.wait_for(lambda: self.run(run_id).ended, timeout=timeout)
        return self.run(run_id)

    def run(self, run_id: str) -> RunView:
        return self.runs.setdefault(run_id, RunView())

    def _refused(self, since: int = 0) -> dict[str, Any] | None:
        return next((f for f in self.frames[since:] if f["type"] == "error" and not f.get("run_id")), None)

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                self.handle(json.loads(raw))
        except websockets.WebSocketException:
            pass
        finally:
            self.closed.set()
            self.changed.set()

    def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        seq = event.get("seq")
        if kind in ("snapshot", "group.snapshot"):
            self.snapshots += 1
            run = event.get("run")
            if run and run.get("status") in ("queued", "running"):
                self.run(run["id"]).text = run.get("content") or ""
            if seq is not None:
                self.seq = seq
        elif seq is not None:
            if self.seq is not None and seq <= self.seq:
                return  # seen already
            self.seq = seq
        self.frames.append(event)
        if self.timeline is not None:
            self.timeline.append((self.name, event))
        run_id = event.get("run_id")
        if kind == "message.accepted":
            self.accepted.append(run_id)
        elif kind == "token":
            view = self.run(run_id)
            view.text = view.text[: event["offset"]] + event["text"]
            view.tokens += 1
        elif kind == "done":
            view = self.run(run_id)
            view.length, view.message_id = event["length"], event["message_id"]
            view.text = view.text[: event["length"]]
            view.ends.append("done")
        elif kind == "error" and run_id:
            self.run(run_id).ends.append(event["code"])
        self.changed.set()
