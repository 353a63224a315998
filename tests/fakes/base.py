"""What the fake back-end servers share: a threaded HTTP/1.1 server in a daemon
thread, request records, a queue of one-shot failures and an up/down switch.

Subclasses provide a handler class with ``do_GET`` / ``do_POST`` that call
``self.fake`` (the ``FakeServer`` instance) for configuration and records.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

# Errors a handler sees when the client has gone away; they are expected, not noise.
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, OSError)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 256  # hundreds of clients connecting at once are queued, not refused

    def __init__(self, address, handler, fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        """Quiet when a client hung up (tests do that on purpose); a traceback otherwise."""
        self.fake.handler_errors += 1
        if not isinstance(sys.exc_info()[1], CLIENT_GONE):
            super().handle_error(request, client_address)


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked transfer, like the real servers
    server_version = "FakeBackend/1.0"
    server: _HTTPServer

    @property
    def fake(self) -> FakeServer:
        return self.server.fake

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(*CLIENT_GONE):
            super().finish()
        self.fake._untrack(self.connection)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except CLIENT_GONE:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- reading ---------------------------------------------------------------

    def read_json(self) -> Any:
        """The request body as JSON (``None`` when empty or not JSON), recorded."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.fake._record(
            {
                "method": self.command,
                "path": self.path,
                "client": self.client_address,  # (host, port): one port per connection
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "json": body,
                "raw": raw,
            }
        )
        return body

    # --- writing ---------------------------------------------------------------

    def send_bytes(
        self, status: int, body: bytes, *, content_type: str = "application/json", headers: dict | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, payload: Any, *, headers: dict | None = None) -> None:
        self.send_bytes(status, json.dumps(payload).encode(), headers=headers)

    def send_error_json(self, status: int, message: str, *, body: Any = None, retry_after=None) -> None:
        """An OpenAI-style error: ``{"error": {"message", "type", "code"}}`` (or ``body`` as given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        if body is None:
            body = {"error": {"message": message, "type": _error_type(status), "code": status}}
        if isinstance(body, str):
            body = body.encode()
        if isinstance(body, bytes):
            self.send_bytes(status, body, content_type="text/plain; charset=utf-8", headers=headers)
        else:
            self.send_json(status, body, headers=headers)

    def start_chunked(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        """One chunk of a chunked body, on the wire at once."""
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop_connection(self) -> None:
        """Close the socket abruptly, mid-response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.connection.close()

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops."""
        if seconds > 0:
            self.fake._stopping.wait(seconds)


def _error_type(status: int) -> str:
    if status in (401, 403):
        return "authentication_error"
    if status == 429:
        return "rate_limit_exceeded"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


class FakeServer:
    """Base of the fakes: ``start()`` / ``stop()`` or a ``with`` block.

    Control (settable at any time from the test thread):

    - ``fail_next(...)`` queues one-shot failures (see the subclass for kinds);
    - ``down()`` / ``up()``: while down every request gets HTTP 503;
    - ``delay``: seconds to sleep before answering any request;
    - ``requests``: one dict per request: ``method``, ``path``, ``headers``
      (lower-case keys), ``json`` (parsed body or ``None``), ``raw`` (bytes).
    """

    handler_class: ClassVar[type[FakeHandler]] = FakeHandler
    failure_kinds: ClassVar[frozenset[str]] = frozenset({"status", "hang", "disconnect"})

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self.delay: float = 0.0
        self.is_down = False
        self.requests: list[dict] = []
        self.handler_errors = 0
        self._failures: list[dict] = []
        self._lock = threading.RLock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._requested_port), self.handler_class, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} port={self.port} running={self.running}>"

    @property
    def origin(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not started")
        return f"http://{self.host}:{self.port}"

    # --- control ------------------------------------------------------------------

    def down(self) -> None:
        """Answer every request with HTTP 503 until ``up()`` (the server keeps running)."""
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        body: Any = None,
        retry_after: float | str | None = None,
        *,
        kind: str = "status",
        after_tokens: int = 3,
        seconds: float = 5.0,
        only_stream: bool = False,
    ) -> None:
        """Make the next ``times`` requests fail.

        ``kind="status"`` answers ``status`` with an OpenAI-style error body (or
        ``body``: a dict is sent as JSON, str/bytes as text) and a ``Retry-After``
        header when ``retry_after`` is given. Other kinds are described by the
        subclass. ``only_stream`` leaves non-streaming requests alone.
        """
        if kind not in self.failure_kinds:
            raise ValueError(f"unknown failure kind {kind!r}; one of {sorted(self.failure_kinds)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._failures.append(
                {
                    "kind": kind,
                    "status": status,
                    "times": times,
                    "body": body,
                    "retry_after": retry_after,
                    "after_tokens": after_tokens,
                    "seconds": seconds,
                    "only_stream": only_stream,
                }
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return sum(f["times"] for f in self._failures)

    def reset(self) -> None:
        """Forget records and queued failures; bring the server up."""
        with self._lock:
            self._failures.clear()
            self.requests.clear()
        self.is_down = False

    # --- used by handlers ---------------------------------------------------------

    def take_failure(self, *, streaming: bool = False) -> dict | None:
        """The failure the current request must suffer, if any (consumes one)."""
        with self._lock:
            for failure in self._failures:
                if failure["only_stream"] and not streaming:
                    continue
                failure["times"] -= 1
                if failure["times"] <= 0:
                    self._failures.remove(failure)
                return dict(failure)
        return None

    def _record(self, entry: dict) -> None:
        entry["at"] = time.perf_counter()
        with self._lock:
            self.requests.append(entry)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)


def serve_until_interrupted(server: FakeServer, label: str) -> None:
    """Run a fake from the command line (``python -m tests.fakes.<name>``) until Ctrl-C."""
    server.start()
    print(f"{label} at {server.base_url} (Ctrl-C stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
