"""The relay benchmark's client side: one client code for every system, and its bookkeeping.

A *system* is how a client gets a reply: ``direct`` (the client reads the
LLM's SSE itself), or a websocket relay (the reference relay, CompanionHub).
Every client opens its connection first; then all send in one burst and read
until ``done`` or ``error``. Frames are read tolerantly: unknown types and
fields are ignored, so the same client measures the relay as it changes.

``reassemble`` rebuilds a reply from its token frames as docs/websocket.md
tells clients to (``reply = reply[:offset] + text``) and counts, against the
LLM's exact text, the tokens lost, duplicated or reordered, and when each
token first arrived whole.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection

# --- CPU and memory of process trees, from /proc ---------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and of its children it has reaped)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
        table[int(name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / CLOCK_TICKS)
    return table


def _tree(table: dict[int, tuple[int, float]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


# A thread of a process: (pid, its name as /proc shows it), or (pid, None) for the main thread.
Thread = tuple[int, str | None]


def thread_seconds(pid: int, name: str | None) -> float:
    """CPU seconds (user + system) of the process's threads of that name (its main thread: None)."""
    total = 0.0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                if (comm != name) if name is not None else (int(tid) != pid):
                    continue
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def cpu_seconds(
    groups: dict[str, list[int]], threads: dict[str, list[Thread]] | None = None
) -> dict[str, float]:
    """CPU seconds (user + system) of each group of process trees: the roots, their live
    descendants, and the children they have already reaped; and of each group of threads."""
    table = _proc_table()
    spent = {
        name: sum(table[pid][1] for root in roots for pid in _tree(table, root))
        for name, roots in groups.items()
    }
    for name, members in (threads or {}).items():
        spent[name] = sum(thread_seconds(pid, thread) for pid, thread in members)
    return spent


def rss_mb(root: int) -> float:
    """Resident memory of a process and its descendants, in MB."""
    total = 0
    for pid in _tree(_proc_table(), root):
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return round(total / 1024, 1)


class CpuSampler:
    """Reads ``cpu_seconds`` every ``interval`` seconds, so CPU can be cut to any window afterwards."""

    def __init__(
        self,
        groups: dict[str, list[int]],
        interval: float = 0.1,
        threads: dict[str, list[Thread]] | None = None,
    ) -> None:
        self.groups = groups
        self.threads = threads or {}
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), cpu_seconds(self.groups, self.threads)))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.samples.clear()
        self.samples.append((time.monotonic(), cpu_seconds(self.groups, self.threads)))
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.samples.append((time.monotonic(), cpu_seconds(self.groups, self.threads)))

    def within(self, intervals: list[tuple[float, float]]) -> dict[str, float]:
        """CPU seconds spent while inside the union of ``intervals`` (each sample step counted by
        the share of it the union covers)."""
        merged: list[list[float]] = []
        for start, end in sorted(intervals):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        spent = dict.fromkeys([*self.groups, *self.threads], 0.0)
        for (t0, a), (t1, b) in zip(self.samples, self.samples[1:], strict=False):
            if t1 <= t0:
                continue
            covered = sum(max(0.0, min(t1, end) - max(t0, start)) for start, end in merged)
            for name in spent:
                spent[name] += (b[name] - a[name]) * covered / (t1 - t0)
        return spent


# --- reassembly ------------------------------------------------------------------------------


@dataclass
class Reassembly:
    text: str
    lost: int  # tokens with a character that never arrived
    duplicated: int  # tokens with a character that arrived more than once
    reordered: int  # tokens that first arrived after a later part of the reply
    corrupt: int  # characters that arrived where the reply has another one
    arrivals: list[float | None]  # per token: when it was first whole


def reassemble(frames: list[tuple[float, int, str]], tokens: list[str]) -> Reassembly:
    """``frames``: (arrival, offset, text) of each token frame, in arrival order."""
    expected = "".join(tokens)
    ends: list[int] = []
    for token in tokens:
        ends.append((ends[-1] if ends else 0) + len(token))
    seen = [0] * len(expected)
    late = [False] * len(expected)
    arrivals: list[float | None] = [None] * len(tokens)
    reply, high, corrupt = "", 0, 0
    for arrival, offset, text in frames:
        reply = reply[:offset] + text
        for i, char in enumerate(text):
            pos = offset + i
            if pos >= len(expected) or expected[pos] != char:
                corrupt += 1
                continue
            if not seen[pos] and pos < high:
                late[pos] = True
            seen[pos] += 1
        high = max(high, offset + len(text))
        first = bisect.bisect_right(ends, offset)
        last = min(len(tokens) - 1, bisect.bisect_left(ends, offset + len(text)))
        for k in range(first, last + 1):
            start = ends[k - 1] if k else 0
            if arrivals[k] is None and all(seen[start : ends[k]]):
                arrivals[k] = arrival

    def count(test: Callable[[int], bool]) -> int:
        return sum(
            1 for k in range(len(tokens)) if any(test(p) for p in range(ends[k - 1] if k else 0, ends[k]))
        )

    return Reassembly(
        text=reply,
        lost=count(lambda p: not seen[p]),
        duplicated=count(lambda p: seen[p] > 1),
        reordered=count(lambda p: late[p]),
        corrupt=corrupt,
        arrivals=arrivals,
    )


# --- clients ---------------------------------------------------------------------------------


@dataclass
class StreamResult:
    key: str
    sent_at: float = 0.0
    frames: list[tuple[float, int, str]] = field(default_factory=list)
    first_frame_at: float | None = None
    done: bool = False
    done_at: float | None = None
    done_length: int | None = None
    error: str | None = None
    run_id: str | None = None


class Connection:
    """One client's way to a reply: ``open`` before the burst, ``send``, then ``events``."""

    async def open(self) -> None:
        pass

    async def send(self, content: str) -> None:
        raise NotImplementedError

    def events(self) -> AsyncIterator[dict]:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class DirectConnection(Connection):
    """The limit: the client reads the LLM's stream itself; each delta is a token frame."""

    def __init__(self, llm_base_url: str) -> None:
        self.url = urlsplit(llm_base_url)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.url.hostname, self.url.port, limit=1 << 20
        )

    async def send(self, content: str) -> None:
        assert self.writer is not None
        body = json.dumps(
            {"model": "fake-model", "messages": [{"role": "user", "content": content}], "stream": True}
        ).encode()
        self.writer.write(
            f"POST {self.url.path.rstrip('/')}/chat/completions HTTP/1.1\r\nHost: {self.url.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )

    async def events(self) -> AsyncIterator[dict]:
        reader = self.reader
        assert reader is not None
        await reader.readline()  # status
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        buffer, offset = b"", 0
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                return
            buffer += await reader.readexactly(size)
            await reader.readexactly(2)
            *chunks, buffer = buffer.split(b"\n\n")
            for chunk in chunks:
                data = chunk.removeprefix(b"data: ")
                if data == b"[DONE]":
                    yield {"type": "done", "length": offset}
                    return
                for choice in json.loads(data).get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield {"type": "token", "text": piece, "offset": offset}
                        offset += len(piece)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class SocketConnection(Connection):
    """A websocket relay (the reference relay, or CompanionHub's ``/ws/conversation/<id>/``)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, *, snapshot: bool = False) -> None:
        self.url = url
        self.headers = headers or {}
        self.snapshot = snapshot
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        self.ws = await websockets.connect(
            self.url, additional_headers=self.headers, compression=None, open_timeout=120, max_queue=None
        )
        if self.snapshot:
            await self.ws.recv()

    @property
    def socket(self) -> ClientConnection:
        if self.ws is None:
            raise RuntimeError("not open")
        return self.ws

    async def send(self, content: str) -> None:
        await self.socket.send(json.dumps({"type": "message.send", "content": content}))

    async def events(self) -> AsyncIterator[dict]:
        async for message in self.socket:
            event = json.loads(message)
            if isinstance(event, dict):
                yield event

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def read_reply(
    conn: Connection, result: StreamResult, *, expected_length: int, deadline: float, grace: float = 30.0
) -> None:
    """Read one reply until ``done`` / ``error``, the level's deadline, or ``grace`` seconds after
    the whole text is in with no ``done``, or 30 s without a frame once tokens flow.

    ``done`` follows the turn's last steps (the state update, ``finish``), which wait in the
    worker's queue behind other turns' steps: on a saturated machine that took over 10 s."""
    have = 0
    events = conn.events()
    while True:
        wait = deadline - time.monotonic()
        if have >= expected_length:
            wait = min(wait, grace)
        elif result.frames:
            wait = min(wait, 30.0)
        if wait <= 0:
            result.error = result.error or "timeout"
            return
        try:
            event = await asyncio.wait_for(anext(events), timeout=wait)
        except (TimeoutError, StopAsyncIteration, websockets.ConnectionClosed, ConnectionError) as exc:
            result.error = "timeout" if isinstance(exc, TimeoutError) else "closed"
            return
        now = time.monotonic()
        kind = event.get("type")
        if kind == "message.accepted":
            result.run_id = event.get("run_id")
        elif kind == "token" and isinstance(event.get("text"), str) and isinstance(event.get("offset"), int):
            if result.first_frame_at is None:
                result.first_frame_at = now
            result.frames.append((now, event["offset"], event["text"]))
            have = max(have, event["offset"] + len(event["text"]))
        elif kind == "done":
            result.done = True
            result.done_at = now
            result.done_length = event.get("length")
            return
        elif kind == "error" and (event.get("run_id") is None or event.get("run_id") == result.run_id):
            result.error = str(event.get("code"))
            return


async def burst(
    connections: list[Connection], keys: list[str], *, expected_length: int, seconds: float, opening: int = 50
) -> tuple[list[StreamResult], float, float]:
    """Open every connection, then send from all at once and read every reply.

    Returns the results and the monotonic times the burst began and the last reply ended."""
    gate = asyncio.Semaphore(opening)

    async def open_one(conn: Connection) -> None:
        async with gate:
            await conn.open()

    await asyncio.gather(*(open_one(conn) for conn in connections))
    results = [StreamResult(key=key) for key in keys]
    go = asyncio.Event()
    deadline = 0.0

    async def one(conn: Connection, result: StreamResult) -> None:
        await go.wait()
        result.sent_at = time.monotonic()
        await conn.send(f"Tell me a story [bench:{result.key}]")
        await read_reply(conn, result, expected_length=expected_length, deadline=deadline)

    tasks = [
        asyncio.create_task(one(conn, result)) for conn, result in zip(connections, results, strict=True)
    ]
    await asyncio.sleep(0)
    began = time.monotonic()
    deadline = began + seconds
    go.set()
    await asyncio.gather(*tasks)
    ended = time.monotonic()
    await asyncio.gather(*(conn.close() for conn in connections), return_exceptions=True)
    return results, began, ended
