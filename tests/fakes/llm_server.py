"""A fake OpenAI-compatible Chat Completions server for tests and manual runs.

It speaks the real wire format: JSON for ``"stream": false``, and for
``"stream": true`` a ``text/event-stream`` of ``chat.completion.chunk``
events ending with ``data: [DONE]``, each event flushed as it is written:
chunked by default, or (``framing``) close-delimited or with a Content-Length,
and gzip'd with ``gzip = True``.

    with FakeLLMServer() as llm:
        llm.set_reply("Hi there!")
        llm.token_delay = 0.01
        llm.fail_next(status=429, retry_after=3)
        client = OpenAIChatClient(base_url=llm.base_url, model="m")

Run by hand: ``python -m tests.fakes.llm_server --port 8089 --token-delay 0.05``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

from tests.fakes.base import CLIENT_GONE, FakeHandler, FakeServer, serve_until_interrupted

__all__ = ["DEFAULT_COMPLETION_TEXT", "DEFAULT_REPLY_TOKENS", "FRAMINGS", "FakeLLMServer", "split_tokens"]

DEFAULT_REPLY_TOKENS = ["Hello", " there", "!", " I", " am", " *smiling*", " at", " you", "."]
DEFAULT_ANALYSIS = {
    "outfit": "red sundress",
    "location": "beach",
    "action": "walking on the sand",
    "wants_image": False,
}
DEFAULT_COMPLETION_TEXT = f"Sure! Here is the state:\n```json\n{json.dumps(DEFAULT_ANALYSIS)}\n```"
DEFAULT_MODELS = ["fake-model"]

_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")


def split_tokens(text: str) -> list[str]:
    """Word-ish tokens, spaces kept in front: ``"Hi *waves*"`` -> ``["Hi", " *", "waves", "*"]``."""
    return _TOKEN.findall(text)


def _estimate(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def _prompt_text(body: dict) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return ""
    return "".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))


class _LLMHandler(FakeHandler):
    def do_GET(self) -> None:
        self.read_json()
        fake: FakeLLMServer = self.fake  # type: ignore[assignment]
        path = self.path.split("?", 1)[0].rstrip("/")
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
        elif path.endswith("/models"):
            self.send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                        for name in fake.models
                    ],
                },
            )
        elif path in ("", "/health", "/v1/health"):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_error_json(404, f"Unknown path {self.path}")

    def do_POST(self) -> None:
        fake: FakeLLMServer = self.fake  # type: ignore[assignment]
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/tokenize":  # kept out of ``requests``: tests there look at chat calls
            self._tokenize(fake, self._read_unrecorded())
            return
        body = self.read_json()
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
            return
        if path.endswith("/embeddings"):
            self._embeddings(fake, body)
            return
        if not path.endswith("/chat/completions"):
            self.send_error_json(404, f"Unknown path {self.path}")
            return
        if not isinstance(body, dict):
            self.send_error_json(400, "The request body is not a JSON object.")
            return
        rule = fake.rule_for(body)
        if rule is not None and not body.get("stream"):
            self.sleep(rule["delay"])
            if rule["status"]:
                self.send_error_json(rule["status"], fake.error_message(rule["status"]))
            else:
                self._complete(fake, body, None, text=rule["text"])
            return
        streaming = bool(body.get("stream"))
        failure = fake.take_failure(streaming=streaming)
        self.sleep(fake.delay)
        if failure is not None:
            kind = failure["kind"]
            if kind == "status":
                self.send_error_json(
                    failure["status"],
                    fake.error_message(failure["status"]),
                    body=failure["body"],
                    retry_after=failure["retry_after"],
                )
                return
            if kind == "hang":
                self.sleep(failure["seconds"])
                failure = None  # then answer normally, if the client is still there
            elif kind == "silent":
                # Accept the request, then never send a byte: no status line, no
                # headers. Only the client's read timeout (or the server stopping)
                # ends it; the socket is closed without an answer.
                fake._silent_waiting()
                self.sleep(failure["seconds"])
                self.close_connection = True
                return
        if streaming:
            self._stream(fake, body, failure)
        else:
            self._complete(fake, body, failure)

    # --- tokenize (llama-server and vLLM, at the server's root) -----------------

    def _read_unrecorded(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _tokenize(self, fake: FakeLLMServer, body: Any) -> None:
        """``tokenize`` is ``"llama"`` (``{"content"}`` -> ``{"tokens": [...]}``), ``"vllm"``
        (``{"model", "prompt"}`` -> ``{"count", "tokens", "max_model_len"}``), ``None`` (404,
        as servers without one), ``"error"`` (HTTP 500) or ``"garbage"`` (not JSON)."""
        with fake._lock:
            fake.tokenize_requests.append(body)
        mode = fake.tokenize
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
            return
        if mode is None:
            self.send_error_json(404, "Not found (fake).")
            return
        if mode == "error":
            self.send_error_json(500, "The tokenizer failed (fake).")
            return
        if mode == "garbage":
            self.send_bytes(200, b"{not json")
            return
        field = "content" if mode == "llama" else "prompt"
        if not isinstance(body, dict) or not isinstance(body.get(field), str):
            self.send_error_json(400, f"'{field}' is required (fake).")
            return
        tokens = list(range(len(split_tokens(body[field]))))
        if mode == "llama":
            self.send_json(200, {"tokens": tokens})
        else:
            self.send_json(200, {"count": len(tokens), "tokens": tokens, "max_model_len": 8192})

    # --- non-streaming ----------------------------------------------------------

    def _complete(
        self, fake: FakeLLMServer, body: dict, failure: dict | None, *, text: str | None = None
    ) -> None:
        kind = failure["kind"] if failure else None
        if kind == "garbage":
            self.send_bytes(200, b'{"id": "chatcmpl-x", "choices": [{not json')
            return
        if kind == "error_200":
            self.send_json(200, {"error": {"message": "upstream overloaded", "code": 502}})
            return
        text = fake.completion_text if text is None else text
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
        if fake.send_usage:
            prompt, completion = _estimate(_prompt_text(body)), _estimate(text)
            payload["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        data = json.dumps(payload).encode()
        if kind == "disconnect":  # promise the whole body, send half of it, hang up
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.drop_connection()
            return
        self.send_bytes(200, data)

    # --- embeddings -------------------------------------------------------------

    def _embeddings(self, fake: FakeLLMServer, body: Any) -> None:
        """``POST /v1/embeddings``: hashed-feature vectors (``fake_embedding``), or the failure
        queued with ``fail_embeddings``; a fake with ``embeddings = False`` has none (404)."""
        failure = fake.take_embeddings_failure()
        self.sleep(fake.delay)
        if not fake.embeddings and failure is None:
            self.send_error_json(404, "File Not Found")
            return
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
            self.send_error_json(400, "'input' must be a string or a list of strings.")
            return
        kind = failure["kind"] if failure else None
        if kind == "status":
            self.send_error_json(
                failure["status"], failure["message"] or fake.error_message(failure["status"])
            )
            return
        vectors = [fake_embedding(text) for text in inputs]
        if kind == "short":  # one vector fewer than inputs
            vectors = vectors[:-1]
        elif kind == "nan":
            vectors = [[float("nan"), *vector[1:]] for vector in vectors]
        elif kind == "huge":
            vectors = [[0.001] * 10_000 for _ in vectors]
        elif kind == "ragged":
            vectors = [vector[: len(vector) - index] for index, vector in enumerate(vectors)]
        if kind == "garbage":
            self.send_bytes(200, b'{"data": [{"embedding": [0.1, ')
            return
        payload = {
            "object": "list",
            "model": body.get("model") or "fake-embedder",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": sum(_estimate(text) for text in inputs), "total_tokens": 0},
        }
        # allow_nan: a server that sends NaN writes it as the bare word, which is what the client must refuse.
        self.send_bytes(200, json.dumps(payload, allow_nan=True).encode())

    # --- streaming --------------------------------------------------------------

    def _stream(self, fake: FakeLLMServer, body: dict, failure: dict | None) -> None:
        kind = failure["kind"] if failure else None
        record = fake._open_stream()
        users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
        record["last_user"] = str(users[-1].get("content", "")) if users else ""
        try:
            self.sleep(fake.first_byte_delay)
            steps = self._stream_steps(fake, body, failure)
            finished = _Wire(self, fake.framing, gzip=fake.gzip, steps=steps).send(fake, record)
            if kind == "truncate":
                record["dropped"] = True
            record["completed"] = finished and kind not in ("disconnect", "truncate", "cut")
        except CLIENT_GONE:
            record["client_disconnected"] = True
            self.close_connection = True
        finally:
            fake._close_stream(record)

    def _stream_steps(self, fake: FakeLLMServer, body: dict, failure: dict | None) -> list:
        """The whole answer as a list: bytes to send, and the pauses and records between them.

        Built before anything is sent, so a Content-Length answer knows its length.
        """
        kind = failure["kind"] if failure else None
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = body.get("model") or "fake-model"

        def chunk(choices: Any, **extra: Any) -> bytes:
            payload = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

        def delta(content: dict, finish: str | None = None) -> bytes:
            return chunk([{"index": 0, "delta": content, "finish_reason": finish}])

        if kind == "garbage":
            return [
                b"data: {not json\n\n",
                b'data: {"choices": [{"delta": {"content": "x"\n\n',
                b"data: [DONE]\n\n",
            ]
        if kind == "error_200":
            error = {"error": {"message": "upstream overloaded", "code": 502}}
            return [b"data: " + json.dumps(error).encode() + b"\n\n", b"data: [DONE]\n\n"]
        steps = []
        if fake.comment_lines:
            steps.append(b": OPENROUTER PROCESSING\n\n")
        steps.append(delta({"role": "assistant", "content": ""}))
        if fake.null_choices:
            steps.append(chunk(None))
            steps.append(chunk([]))
        if fake.reasoning:
            steps.append(delta({"content": None, "reasoning_content": fake.reasoning_text}))
            steps.append(delta({"reasoning": fake.reasoning_text}))
        for index in range(fake.reasoning_chunks):  # a model thinking at length before it answers
            if index:
                steps.append(_Sleep(fake.token_delay))
            steps.append(delta({"content": None, "reasoning_content": f"thought {index}. "}))
            steps.append(_Progress("reasoning_sent"))
        tokens = [] if kind == "empty" else list(fake.reply_tokens)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if isinstance(max_tokens, int) and 0 <= max_tokens < len(tokens):
            tokens, finish = tokens[:max_tokens], "length"
        drop_after = (
            failure["after_tokens"] if kind in ("disconnect", "truncate", "cut", "error_mid") else None
        )
        for index, token in enumerate(tokens):
            if drop_after is not None and index >= drop_after:
                break
            if index:
                steps.append(_Sleep(fake.token_delay))
            if fake.comment_lines and index % 3 == 2:
                steps.append(b": OPENROUTER PROCESSING\n\n")
            if fake.null_choices and index % 4 == 3:
                steps.append(chunk(None))
            steps.append(delta({"content": token}))
            steps.append(_Progress("tokens_sent"))
            if fake.hold_after_tokens == index + 1:
                steps.append(_Hold())
        if kind == "disconnect":  # hang up mid-body: no [DONE], and the framing is left unfinished
            return [*steps, _Drop()]
        if kind == "cut":  # hang up in the middle of the next token's event, inside a UTF-8 character
            event = delta({"content": tokens[drop_after] if drop_after < len(tokens) else "é"})
            wide = next((i for i, byte in enumerate(event) if byte >= 0x80), len(event) // 2)
            return [*steps, event[: wide + 1], _Drop()]
        if kind == "error_mid":  # some tokens, then an error object in place of the rest
            error = {"error": {"message": "upstream overloaded", "code": 502}}
            return [*steps, b"data: " + json.dumps(error).encode() + b"\n\n", b"data: [DONE]\n\n"]
        if kind == "truncate":  # a well-formed end of the body, but no finish_reason and no [DONE]
            return steps
        steps.append(delta({}, finish))
        if fake.send_usage and (body.get("stream_options") or {}).get("include_usage"):
            prompt = _estimate(_prompt_text(body))
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": len(tokens),
                "total_tokens": prompt + len(tokens),
            }
            steps.append(chunk([], usage=usage))
        steps.append(b"data: [DONE]\n\n")
        return steps


# --- how a streamed answer goes on the wire ------------------------------------------


@dataclass(frozen=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True)
class _Progress:
    counter: str  # the stream record's count to add one to, once the bytes before it are out


@dataclass(frozen=True)
class _Hold:
    """Wait for the test to call ``release()`` (at most ``hold_timeout`` seconds)."""


@dataclass(frozen=True)
class _Drop:
    """Close the socket abruptly, mid-body."""


FRAMINGS = ("chunked", "close", "length")


class _Wire:
    """Send the steps of a streamed answer in one HTTP framing, optionally gzip'd.

    - ``chunked``: ``Transfer-Encoding: chunked``, one chunk per write;
    - ``close``: an HTTP/1.0 answer with no length, whose body ends when the
      server closes the connection (as some proxies and small servers do);
    - ``length``: ``Content-Length`` known up front, connection kept alive.

    With ``gzip`` each write is compressed and sync-flushed, so it is on the wire
    (and decodable) at once, as a compressing proxy that streams does.
    """

    def __init__(self, handler: _LLMHandler, framing: str, *, gzip: bool, steps: list) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; one of {FRAMINGS}")
        self.handler = handler
        self.framing = framing
        self.steps = list(steps)
        if gzip:
            compressor = zlib.compressobj(wbits=31)
            self.steps = [
                compressor.compress(step) + compressor.flush(zlib.Z_SYNC_FLUSH)
                if isinstance(step, bytes)
                else step
                for step in self.steps
            ]
        # The gzip trailer follows the last event; a client may hang up once it has read
        # ``[DONE]``, before the trailer or the last chunk arrives, and the answer was whole.
        self.trailer = b""
        if gzip and not any(isinstance(step, _Drop) for step in self.steps):
            self.trailer = compressor.flush()
        self.gzip = gzip

    def send(self, fake: FakeLLMServer, record: dict) -> bool:
        """Send it all; False when it was cut short (a drop, or the fake stopping)."""
        handler = self.handler
        if self.framing == "close":
            handler.protocol_version = "HTTP/1.0"  # this answer only; the status line says so
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        if self.gzip:
            handler.send_header("Content-Encoding", "gzip")
        if self.framing == "chunked":
            handler.send_header("Transfer-Encoding", "chunked")
        elif self.framing == "length":
            length = sum(len(step) for step in self.steps if isinstance(step, bytes)) + len(self.trailer)
            if any(isinstance(step, _Drop) for step in self.steps):
                length += 64  # promised, never sent
            handler.send_header("Content-Length", str(length))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.flush()
        for step in self.steps:
            if isinstance(step, bytes):
                self._write(step)
            elif isinstance(step, _Sleep):
                handler.sleep(step.seconds)
                if fake._stopping.is_set():
                    return False
            elif isinstance(step, _Progress):
                fake._progress(record, step.counter)
            elif isinstance(step, _Hold):
                fake._hold(record)
            elif isinstance(step, _Drop):
                record["dropped"] = True
                handler.drop_connection()
                return False
        handler.sleep(fake.body_end_delay)  # [DONE] is out; the body's end comes later
        try:
            self._write(self.trailer)
            if self.framing == "chunked":
                handler.end_chunked()
            handler.wfile.flush()
        except CLIENT_GONE:
            handler.close_connection = True  # gone after the last event: still a whole answer
        return True

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.framing == "chunked":
            self.handler.write_chunk(data)
        else:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()


EMBEDDING_DIMS = 64


def fake_embedding(text: str) -> list[float]:
    """A deterministic unit vector of hashed words and character trigrams: texts that share
    words are close, as a real embedding model's would be."""
    vector = [0.0] * EMBEDDING_DIMS
    for word in re.findall(r"\w+", text.lower()):
        features = [word] + [f" {word} "[i : i + 3] for i in range(len(word))]
        for feature in features:
            digest = zlib.crc32(feature.encode())
            vector[digest % EMBEDDING_DIMS] += 1.0 if digest & 0x100 else -1.0
    norm = sum(value * value for value in vector) ** 0.5
    return [value / norm for value in vector] if norm else [1.0] + [0.0] * (EMBEDDING_DIMS - 1)


EMBEDDING_FAILURES = frozenset({"status", "short", "nan", "huge", "ragged", "garbage"})


class FakeLLMServer(FakeServer):
    """OpenAI-compatible ``POST .../chat/completions`` and ``GET .../models``, and
    ``POST /tokenize`` at the root (llama-server's shape by default; ``tokenize``).

    Settable attributes: ``reply_tokens`` (or ``set_reply(text)``),
    ``completion_text`` (the non-streamed answer), ``token_delay``,
    ``first_byte_delay``, ``body_end_delay`` (between ``[DONE]`` and the end of the body:
    the chunked terminator, the gzip trailer), ``delay``, ``send_usage``, ``comment_lines``,
    ``reasoning``, ``reasoning_chunks`` (that many reasoning-only deltas before
    the reply, ``token_delay`` apart), ``null_choices``, ``models``,
    ``framing`` (one of ``FRAMINGS``: ``"chunked"``, ``"close"``,
    ``"length"``), ``gzip``.

    ``hold_after(n)``: the stream stops after its ``n``-th token until the test
    calls ``release()`` -- proof that the client handed on a token before the
    rest was even sent, without timing anything.

    ``fail_next(kind=...)``: ``"status"`` (default), ``"disconnect"`` (streams
    ``after_tokens`` tokens, then closes the socket without ``[DONE]``; a
    non-streamed answer is cut in half), ``"truncate"`` (streams
    ``after_tokens`` tokens, then ends the body cleanly with neither a
    ``finish_reason`` nor ``[DONE]``, as a proxy that gives up may), ``"garbage"`` (unreadable JSON on
    HTTP 200), ``"error_200"`` (an ``error`` object on HTTP 200),
    ``"error_mid"`` (``after_tokens`` tokens, then an ``error`` object),
    ``"cut"`` (``after_tokens`` tokens, then part of the next event, ending
    inside a UTF-8 character, and the socket closed), ``"empty"`` (a
    well-finished stream with no content at all, as small models sometimes
    answer), ``"hang"``
    (sleeps ``seconds`` first), ``"silent"`` (accepts the request and sends
    nothing at all for ``seconds`` -- default 5 -- then closes the socket:
    a back end that went quiet; ``silent_requests`` counts them).

    ``answer_when(marker, text, status=..., delay=...)``: a non-streamed request whose messages
    contain ``marker`` gets ``text`` (or fails with ``status``) after ``delay`` seconds, whatever
    ``completion_text`` says -- so a test tells the memory work's prompts from the analysis.

    ``POST .../embeddings`` answers ``fake_embedding`` vectors (``embeddings = False``: 404, as
    a server without embeddings); ``fail_embeddings(kind, status=...)`` spoils the next one:
    ``"status"`` (an error status), ``"short"`` (one vector too few), ``"nan"``, ``"huge"``
    (10,000 dimensions), ``"ragged"`` (vectors of different sizes), ``"garbage"`` (cut JSON).

    Records: ``requests``, ``first_token_sent_at`` (``time.perf_counter()``
    when each stream's first content token was flushed) and ``streams`` (one
    dict per stream: ``tokens_sent``, ``completed``, ``dropped``,
    ``client_disconnected``, ``finished``).
    """

    handler_class = _LLMHandler
    failure_kinds: ClassVar[frozenset[str]] = frozenset(
        {
            "status",
            "disconnect",
            "truncate",
            "garbage",
            "error_200",
            "error_mid",
            "cut",
            "empty",
            "hang",
            "silent",
        }
    )

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.reply_tokens: list[str] = list(DEFAULT_REPLY_TOKENS)
        self.completion_text: str = DEFAULT_COMPLETION_TEXT
        self.token_delay: float = 0.0
        self.first_byte_delay: float = 0.0
        self.body_end_delay: float = 0.0
        self.send_usage: bool = True
        self.comment_lines: bool = False
        self.reasoning: bool = False
        self.reasoning_text: str = "thinking..."
        self.null_choices: bool = False
        self.reasoning_chunks: int = 0
        self.framing: str = "chunked"
        self.gzip: bool = False
        self.hold_after_tokens: int | None = None
        self.hold_timeout: float = 10.0
        self._released = threading.Event()
        self.models: list[str] = list(DEFAULT_MODELS)
        self.first_token_sent_at: list[float] = []
        self.streams: list[dict] = []
        self.silent_requests: int = 0
        self.embeddings: bool = True
        self._embedding_failures: list[dict] = []
        self._rules: list[dict] = []
        # ``POST /tokenize`` at the root: "llama", "vllm", None (404), "error", "garbage".
        # A token is one of ``split_tokens``' word-ish pieces.
        self.tokenize: str | None = "llama"
        self.tokenize_requests: list[Any] = []  # their bodies (not in ``requests``)
        self._stream_ids = itertools.count(1)
        self._stream_done = threading.Condition(self._lock)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def reply_text(self) -> str:
        return "".join(self.reply_tokens)

    def set_reply(self, text: str) -> None:
        """Stream ``text`` as word-ish tokens (spaces kept, so they join back to ``text``)."""
        self.reply_tokens = split_tokens(text)

    def error_message(self, status: int) -> str:
        return {
            401: "Incorrect API key provided (fake).",
            403: "Forbidden (fake).",
            404: "Not found (fake).",
            429: "Rate limit reached (fake).",
        }.get(status, f"The fake server failed with HTTP {status}.")

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.first_token_sent_at.clear()
            self.streams.clear()
            self._rules.clear()
            self._embedding_failures.clear()
            self.tokenize_requests.clear()

    def wait_for_stream_end(self, timeout: float = 5.0) -> dict:
        """Wait until the latest stream has ended (finished, dropped or abandoned); return its record."""
        deadline = time.monotonic() + timeout
        with self._stream_done:
            while not (self.streams and self.streams[-1]["finished"]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no stream ended within {timeout} s: {self.streams}")
                self._stream_done.wait(remaining)
            return dict(self.streams[-1])

    def hold_after(self, tokens: int) -> None:
        """Pause each stream after its ``tokens``-th token until ``release()``."""
        self._released.clear()
        self.hold_after_tokens = tokens

    def release(self) -> None:
        self._released.set()

    def answer_when(
        self, marker: str, text: str = "", *, status: int | None = None, delay: float = 0.0
    ) -> None:
        """Answer non-streamed requests that mention ``marker`` with ``text`` (or ``status``)."""
        with self._lock:
            self._rules.insert(0, {"marker": marker, "text": text, "status": status, "delay": delay})

    def rule_for(self, body: dict) -> dict | None:
        prompt = _prompt_text(body)
        with self._lock:
            return next((dict(rule) for rule in self._rules if rule["marker"] in prompt), None)

    def fail_embeddings(
        self, kind: str = "status", *, status: int = 500, message: str = "", times: int = 1
    ) -> None:
        if kind not in EMBEDDING_FAILURES:
            raise ValueError(f"unknown embeddings failure {kind!r}; one of {sorted(EMBEDDING_FAILURES)}")
        with self._lock:
            self._embedding_failures.extend(
                {"kind": kind, "status": status, "message": message} for _ in range(times)
            )

    def take_embeddings_failure(self) -> dict | None:
        with self._lock:
            return self._embedding_failures.pop(0) if self._embedding_failures else None

    def embedding_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].split("?", 1)[0].rstrip("/").endswith("/embeddings")]

    # --- used by the handler ----------------------------------------------------

    def wait_until_held(self, timeout: float = 5.0) -> dict:
        """Wait until the latest stream is held (``hold_after``); return its record."""
        deadline = time.monotonic() + timeout
        while not (self.streams and self.streams[-1]["held"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no stream was held within {timeout} s: {self.streams}")
            time.sleep(0.01)
        return self.streams[-1]

    def _hold(self, record: dict) -> None:
        record["held"] = True
        deadline = time.monotonic() + self.hold_timeout
        while not self._released.wait(0.05):
            if self._stopping.is_set() or time.monotonic() > deadline:
                record["hold_timed_out"] = True  # the test never released it: it went on anyway
                return

    def _progress(self, record: dict, counter: str) -> None:
        with self._lock:
            record[counter] = record.get(counter, 0) + 1
            if counter == "tokens_sent":
                now = time.perf_counter()
                record.setdefault("token_times", []).append(now)
                if record[counter] == 1:
                    record["first_token_at"] = now
                    self.first_token_sent_at.append(now)

    def _silent_waiting(self) -> None:
        with self._lock:
            self.silent_requests += 1

    def _open_stream(self) -> dict:
        record = {
            "id": next(self._stream_ids),
            "tokens_sent": 0,
            "reasoning_sent": 0,
            "held": False,
            "hold_timed_out": False,
            "completed": False,
            "dropped": False,
            "client_disconnected": False,
            "finished": False,
        }
        with self._lock:
            self.streams.append(record)
        return record

    def _close_stream(self, record: dict) -> None:
        with self._stream_done:
            record["finished"] = True
            self._stream_done.notify_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible chat API until interrupted.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token-delay", type=float, default=0.05, help="seconds between streamed tokens")
    parser.add_argument("--first-byte-delay", type=float, default=0.0)
    parser.add_argument("--reply", default=None, help="the reply to stream (default: a short greeting)")
    parser.add_argument("--no-usage", action="store_true", help="never send usage figures")
    args = parser.parse_args(argv)
    server = FakeLLMServer(args.host, args.port)
    server.token_delay = args.token_delay
    server.first_byte_delay = args.first_byte_delay
    server.send_usage = not args.no_usage
    if args.reply:
        server.set_reply(args.reply)
    serve_until_interrupted(server, "Fake LLM")


if __name__ == "__main__":
    main()
