"""An asyncio fake OpenAI-compatible server that streams to hundreds of clients at an exact pace.

The threaded fake in ``tests/fakes/llm_server.py`` spends a thread per stream
and shares the GIL with whoever runs it; at 1,000 streams its pacing drifts.
This one runs as a process of its own (``python -m bench.relay_fake``) and
writes every stream's next token from one timer heap, so a stream's token
``i`` leaves at ``start + i * delay`` however many streams there are.

Wire format as the other fake and the real servers: for ``"stream": true`` a
chunked ``text/event-stream`` of ``data: {chat.completion.chunk}`` events (a
role delta, one content delta per token, a delta with ``finish_reason``, a
chunk with ``usage``), then ``data: [DONE]``; for ``"stream": false`` (the
scene analyses) a ``chat.completion`` with the scene as JSON, at once.
``POST /tokenize`` answers llama-server's shape, ``GET /v1/models`` a list.

Records, for the benchmark: every streamed request whose last user message
holds a tag ``[bench:<key>]`` is kept under ``<key>``: when it arrived and
when each token left (``time.monotonic()``, the same clock in every process on
the machine). ``GET /bench/records`` returns them and forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import re
import time
from dataclasses import dataclass, field

TAG = re.compile(r"\[bench:([\w.-]+)\]")
CHUNK_ID = "chatcmpl-bench"
ANALYSIS = json.dumps(
    {"outfit": "red sundress", "location": "beach", "action": "walking on the sand", "wants_image": False}
)
TICK = 0.002  # seconds between looks at the timer heap: the pacing's resolution


def reply_tokens(count: int = 200) -> list[str]:
    """The reply every stream sends: distinct tokens, so a lost or swapped one shows; some carry
    accents and an emoji (one code point, two UTF-16 units), so offsets are checked in code points;
    no sentence ends and no leading or trailing space, so nothing in a relay trims or re-times it."""
    tokens = []
    for n in range(count):
        word = ("café" if n % 10 == 3 else "🙂" if n % 10 == 7 else "word") + str(n)
        tokens.append(word if n == 0 else " " + word)
    return tokens


def _event(payload: dict) -> bytes:
    data = b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _delta(content: dict, finish: str | None = None) -> bytes:
    return _event(
        {
            "id": CHUNK_ID,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "fake-model",
            "choices": [{"index": 0, "delta": content, "finish_reason": finish}],
        }
    )


@dataclass(eq=False)
class _Stream:
    transport: asyncio.Transport
    start: float
    finished: asyncio.Future
    index: int = 1  # token 0 goes out with the headers
    sent: list[float] = field(default_factory=list)


class FakeServer:
    def __init__(self, tokens: list[str], delay: float) -> None:
        self.tokens = tokens
        self.delay = delay
        self.token_chunks = [_delta({"content": token}) for token in tokens]
        self.records: dict[str, dict] = {}
        self._heap: list[tuple[float, int, _Stream]] = []
        self._seq = itertools.count()

    async def ticker(self) -> None:
        """Write every stream's due token; one timer for all streams."""
        loop = asyncio.get_running_loop()
        heap = self._heap
        while True:
            await asyncio.sleep(TICK)
            now = loop.time()  # time.monotonic()
            while heap and heap[0][0] <= now:
                _, seq, stream = heapq.heappop(heap)
                if stream.transport.is_closing():
                    stream.finished.set_result(False)
                    continue
                stream.transport.write(self.token_chunks[stream.index])
                stream.sent.append(time.monotonic())
                stream.index += 1
                if stream.index == len(self.tokens):
                    stream.finished.set_result(True)
                else:
                    heapq.heappush(heap, (stream.start + stream.index * self.delay, seq, stream))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                keep = await self.answer(method, path.split("?", 1)[0].rstrip("/"), body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        with contextlib.suppress(ConnectionError):
            writer.close()

    async def answer(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if method == "GET" and path == "/bench/records":
            records, self.records = self.records, {}
            self._send_json(writer, 200, records)
            return True
        if method == "GET" and path.endswith("/models"):
            self._send_json(
                writer, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
            )
            return True
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = None
        if method == "POST" and path == "/tokenize" and isinstance(request, dict):
            self._send_json(writer, 200, {"tokens": list(range(len(str(request.get("content", ""))) // 4))})
            return True
        if method != "POST" or not path.endswith("/chat/completions") or not isinstance(request, dict):
            self._send_json(writer, 404, {"error": {"message": f"unknown {method} {path}", "code": 404}})
            return True
        if not request.get("stream"):
            self._send_json(writer, 200, self._analysis())
            return True
        await self._stream(request, writer)
        return True

    def _analysis(self) -> dict:
        return {
            "id": CHUNK_ID,
            "object": "chat.completion",
            "created": 0,
            "model": "fake-model",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": ANALYSIS}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }

    async def _stream(self, request: dict, writer: asyncio.StreamWriter) -> None:
        requested = time.monotonic()
        key = _tag(request)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + _delta({"role": "assistant", "content": ""})
            + self.token_chunks[0]
        )
        stream = _Stream(writer.transport, requested, asyncio.get_running_loop().create_future())  # type: ignore[arg-type]
        stream.sent.append(time.monotonic())
        if len(self.tokens) > 1:
            heapq.heappush(self._heap, (requested + self.delay, next(self._seq), stream))
            whole = await stream.finished
        else:
            whole = True
        if key is not None:
            self.records[key] = {"requested": requested, "sent": stream.sent, "whole": whole}
        if not whole:
            raise ConnectionResetError
        usage = {
            "prompt_tokens": 100,
            "completion_tokens": len(self.tokens),
            "total_tokens": 100 + len(self.tokens),
        }
        writer.write(
            _delta({}, "stop")
            + _event(
                {
                    "id": CHUNK_ID,
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake-model",
                    "choices": [],
                    "usage": usage,
                }
            )
            + b"%x\r\ndata: [DONE]\n\n\r\n0\r\n\r\n" % len(b"data: [DONE]\n\n")
        )
        await writer.drain()

    @staticmethod
    def _send_json(writer: asyncio.StreamWriter, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        reason = b"OK" if status == 200 else b"Not Found"
        writer.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason, len(data), data)
        )


def _tag(request: dict) -> str | None:
    """The ``[bench:<key>]`` in the last user message (earlier turns in the history hold older tags)."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            found = TAG.findall(str(message.get("content") or ""))
            if found:
                return found[-1]
    return None


async def serve(host: str, port: int, tokens: list[str], delay: float) -> None:
    fake = FakeServer(tokens, delay)
    server = await asyncio.start_server(fake.handle, host, port, backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    ticker = asyncio.create_task(fake.ticker())
    async with server:
        await server.serve_forever()
    ticker.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve paced fake chat completions until interrupted.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=200, help="tokens in every streamed reply")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between streamed tokens")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, reply_tokens(args.tokens), args.delay))


if __name__ == "__main__":
    main()
