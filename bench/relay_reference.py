"""The reference relay: the least a Python relay can do, to measure CompanionHub's against.

One asyncio process, no database, no queue: a websocket server (the
``websockets`` library) that answers ``message.send`` with
``message.accepted``, opens an HTTP stream to the LLM (plain asyncio streams,
HTTP/1.1 chunked), and forwards the reply as ``token`` frames with code-point
offsets -- the first token at once, then at most one frame every 50 ms, as
CompanionHub batches -- and a ``done`` frame carrying the reply's length.
Run as a process of its own (``python -m bench.relay_reference --llm URL``) so
its CPU time can be read from ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.server import ServerConnection, serve

BATCH_SECONDS = 0.05


async def llm_stream(base_url: str, content: str):
    """Yield the content deltas of a streamed chat completion."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port or 80, limit=1 << 20)
    try:
        body = json.dumps(
            {
                "model": "fake-model",
                "messages": [{"role": "user", "content": content}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        writer.write(
            f"POST {url.path.rstrip('/')}/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        status = await reader.readline()
        if b" 200 " not in status:
            raise ConnectionError(f"the LLM answered {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers: the fake (and the real servers) stream chunked
        buffer = b""
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                return
            buffer += await reader.readexactly(size)
            await reader.readexactly(2)
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                if not event.startswith(b"data: "):
                    continue
                data = event[6:]
                if data == b"[DONE]":
                    return
                for choice in json.loads(data).get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
    finally:
        writer.close()


async def relay(ws: ServerConnection, base_url: str, run_id: str, content: str) -> None:
    pending: list[str] = []
    offset = 0
    finished = False
    wake = asyncio.Event()

    async def flusher() -> None:
        nonlocal offset
        while True:
            await wake.wait()
            wake.clear()
            if pending:
                text = "".join(pending)
                pending.clear()
                await ws.send(json.dumps({"type": "token", "run_id": run_id, "text": text, "offset": offset}))
                offset += len(text)
            if finished:
                return
            await asyncio.sleep(BATCH_SECONDS)

    sender = asyncio.create_task(flusher())
    try:
        async for piece in llm_stream(base_url, content):
            pending.append(piece)
            wake.set()
    except (ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:
        sender.cancel()
        await ws.send(
            json.dumps({"type": "error", "run_id": run_id, "code": "llm_failed", "message": str(exc)})
        )
        return
    finished = True
    wake.set()
    await sender
    await ws.send(json.dumps({"type": "done", "run_id": run_id, "length": offset, "finish_reason": "stop"}))


async def main_async(host: str, port: int, base_url: str) -> None:
    async def handler(ws: ServerConnection) -> None:
        tasks = set()
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                frame = json.loads(message)
                if frame.get("type") != "message.send":
                    continue
                run_id = uuid.uuid4().hex
                await ws.send(json.dumps({"type": "message.accepted", "run_id": run_id}))
                task = asyncio.create_task(relay(ws, base_url, run_id, str(frame.get("content", ""))))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        for task in tasks:
            task.cancel()

    async with serve(handler, host, port, compression=None, max_queue=None, backlog=4096) as server:
        print(f"port {next(iter(server.sockets)).getsockname()[1]}", flush=True)
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A minimal LLM-to-websocket relay, for the benchmark.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--llm", required=True, help="the LLM's base URL, e.g. http://127.0.0.1:8089/v1")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args.host, args.port, args.llm))


if __name__ == "__main__":
    main()
