"""OpenAI-compatible Chat Completions over ``requests``, streaming with SSE.

One client for every server that speaks the protocol: OpenAI, Novita,
OpenRouter, Ollama, llama.cpp's llama-server, vLLM, LM Studio. The parts
those servers disagree on are handled here:

- SSE comment lines (``: OPENROUTER PROCESSING``) and blank keep-alives are skipped;
- chunks with missing or ``null`` ``choices`` are empty, not errors;
- ``reasoning`` / ``reasoning_content`` deltas and ``<think>…</think>`` spans
  never reach the visible reply: they are kept apart as ``reasoning``;
- chat-template debris (``<|im_end|>``, ``</s>``, a leading ``Assistant:``) is
  cut from the reply, and the stream is closed at the first end marker;
- a top-level ``error`` object is a failure even on HTTP 200;
- usage is asked for (``stream_options.include_usage``) and estimated when absent.

Bytes are read as they arrive, whatever the framing: chunked, ended by the
server closing the connection (HTTP/1.0 style), or sized by Content-Length,
gzip'd or not. ``iter_content(chunk_size=None)`` is not used because it waits
for the whole of a close-delimited body; ``raw.read1`` returns what has come.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Self

import aiohttp
import requests
import urllib3.exceptions

from chat import aio_session
from chat.errors import RunError

__all__ = [
    "DEFAULT_STOP",
    "HEARTBEAT_SECONDS",
    "AsyncChatStream",
    "ChatStream",
    "Completion",
    "LLMError",
    "OpenAIChatClient",
    "ReplyDecoder",
    "error_from_status",
    "estimate_tokens",
    "parse_sse",
    "strip_template_debris",
]

# Chat-template end markers some servers leak into the text when the model's
# template is misconfigured; a reply ends at the first one.
TEMPLATE_MARKERS = (
    "<|im_end|>",
    "<|im_start|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
)
# Sent as ``stop``: the end markers of the common templates (ChatML, Llama 3, Mistral
# and Llama 2, Gemma). OpenAI refuses more than four, so ``<|end|>`` (Phi) and the
# rest are left to the stream filter, which cuts at every marker anyway.
DEFAULT_STOP = ("<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>")
# A small model sometimes starts its reply by naming its role, as a base model would.
ROLE_LABEL = "assistant:"
# Reasoning models put their thinking in these delta fields (DeepSeek, vLLM and
# llama.cpp use ``reasoning_content``; OpenRouter and Ollama ``reasoning``) ...
REASONING_FIELDS = ("reasoning_content", "reasoning")
# ... or inline in the content, between these tags (QwQ, DeepSeek-R1 distills on
# servers that do not split them out).
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# How often, in seconds of wall time, a stream calls its heartbeat while bytes arrive,
# whether or not they hold visible text (a reader checks for a cancel there).
HEARTBEAT_SECONDS = 0.25
READ_SIZE = 64 * 1024
# What an async call reads of an error answer for its message (the message is cut to 200).
ERROR_BODY_LIMIT = 64 * 1024
# After ``[DONE]`` the body's last bytes (the chunked terminator) usually follow at once: an
# async stream waits this long for them, off the reader's path, so the connection can be
# reused; a server that sends more, or takes longer, has its connection closed instead.
DRAIN_SECONDS = 1.0


class LLMError(Exception):
    """A failed call. ``retryable`` says whether trying again can help."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.partial_text = partial_text


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    reasoning: str = ""  # what a reasoning model thought, kept out of ``text``


def estimate_tokens(text: str) -> int:
    """About four characters a token for English; good enough for a usage figure."""
    return (len(text) + 3) // 4 if text else 0


def _messages_chars(messages: list[dict]) -> str:
    return "".join(str(m.get("content") or "") for m in messages)


def strip_template_debris(text: str) -> str:
    """Cut the text at the first chat-template marker, and drop a leading ``Assistant:``."""
    text = _cut_at_marker(text)
    return text[_role_label_end(text) or 0 :]


def _cut_at_marker(text: str) -> str:
    cut = len(text)
    for marker in TEMPLATE_MARKERS:
        index = text.find(marker)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]


def _role_label_end(text: str) -> int | None:
    """Where the reply starts after a leading role label (0 when there is none).

    ``None`` while undecided: the text so far (blank, or ``"Assis"``) may still
    turn out to be the label when more arrives.
    """
    stripped = text.lstrip()
    head = stripped[: len(ROLE_LABEL)].lower()
    if len(head) < len(ROLE_LABEL):
        return None if ROLE_LABEL.startswith(head) else 0
    if head != ROLE_LABEL:
        return 0
    rest = stripped[len(ROLE_LABEL) :]
    return len(text) - len(rest.lstrip())


def _partial_tail(text: str, tags: tuple[str, ...]) -> int:
    """The length of the longest end of ``text`` that could grow into one of ``tags``.

    Called for every piece a reply streams: only the tags' beginnings that end in the text's
    last character are tried, longest first (for most pieces, none)."""
    if not text:
        return 0
    for prefix in _prefixes_by_last_char(tags).get(text[-1], ()):
        if text.endswith(prefix):
            return len(prefix)
    return 0


@functools.cache
def _prefixes_by_last_char(tags: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Every proper beginning of every tag, by its last character, longest first."""
    found: dict[str, set[str]] = {}
    for tag in tags:
        for size in range(1, len(tag)):
            found.setdefault(tag[size - 1], set()).add(tag[:size])
    return {last: tuple(sorted(group, key=len, reverse=True)) for last, group in found.items()}


# --- SSE ---------------------------------------------------------------------------


class _SSEEvents:
    """The ``data`` of each SSE event, fed byte chunks split anywhere (push, so any transport
    can feed it: ``requests`` in a thread, ``aiohttp`` on an event loop).

    ``feed`` returns the events a chunk completed; ``end`` the last one the body stopped
    in the middle of (no blank line after it), with ``ended`` False when not even its line
    was finished: it may be whole, or cut mid-token by a dropped connection.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.data_lines: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        lines = (self.buffer + chunk).split(b"\n")
        self.buffer = lines.pop()
        events = []
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:  # blank line: end of an event
                if self.data_lines:
                    events.append("\n".join(self.data_lines))
                    self.data_lines = []
                continue
            if line.startswith(":"):  # comment / keep-alive
                continue
            field, _, value = line.partition(":")
            if field == "data":
                self.data_lines.append(value[1:] if value.startswith(" ") else value)
        return events

    def end(self) -> list[tuple[str, bool]]:
        tail = self.buffer.rstrip(b"\r").decode("utf-8", errors="replace")
        self.buffer = b""
        if tail.startswith("data:"):
            self.data_lines.append(tail[5:].lstrip(" "))
        data, self.data_lines = self.data_lines, []
        return [("\n".join(data), not tail)] if data else []


class _Done:
    """The ``data: [DONE]`` event."""


_DONE = _Done()


def _payload(data: str, *, ended: bool) -> dict | _Done | None:
    """One event's JSON object; ``_DONE`` at ``[DONE]``; None for a last event cut mid-way.

    Raises ``LLMError(bad_response)`` for a whole event that is not a JSON object.
    """
    if data.strip() == "[DONE]":
        return _DONE
    try:
        payload = json.loads(data)
    except ValueError as exc:
        if not ended:  # the connection closed mid-event: a cut-off reply, not garbage
            return None
        raise LLMError(
            RunError.BAD_RESPONSE, "The AI service sent data we could not read.", retryable=True
        ) from exc
    if not isinstance(payload, dict):
        raise LLMError(RunError.BAD_RESPONSE, "The AI service sent data we could not read.", retryable=True)
    return payload


def parse_sse(chunks: Iterable[bytes]) -> Iterator[dict]:
    """JSON payloads of an SSE stream, stopping at ``[DONE]``.

    Raises ``LLMError(bad_response)`` for a payload that is not a JSON object.
    """
    events = _SSEEvents()

    def ended_events() -> Iterator[tuple[str, bool]]:
        for chunk in chunks:
            for data in events.feed(chunk):
                yield data, True
        yield from events.end()

    for data, ended in ended_events():
        payload = _payload(data, ended=ended)
        if not isinstance(payload, dict):  # [DONE], or a last event cut mid-way
            return
        yield payload


# --- errors ------------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _error_detail(body: str) -> str:
    try:
        decoded = json.loads(body)
    except ValueError:
        return body[:200]
    if isinstance(decoded, dict):
        error = decoded.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)[:200]
        if isinstance(error, str):
            return error[:200]
    return str(decoded)[:200]


def error_from_status(status: int, body: str, *, retry_after: str | None = None) -> LLMError:
    """The failure an HTTP error answer means, whichever client received it.

    ``body`` is the answer's text (the service's own message is kept from it);
    ``retry_after`` the raw ``Retry-After`` header.
    """
    detail = _error_detail(body)
    if status in (401, 403):
        return LLMError(RunError.AUTH, f"HTTP {status}: {detail}", retryable=False, status=status)
    if status == 429:
        return LLMError(
            RunError.RATE_LIMITED,
            f"HTTP 429: {detail}",
            retryable=True,
            retry_after=_retry_after(retry_after),
            status=status,
        )
    if status in (408, 409) or status >= 500:
        return LLMError(
            RunError.SERVER,
            f"HTTP {status}: {detail}",
            retryable=True,
            retry_after=_retry_after(retry_after),
            status=status,
        )
    return LLMError(RunError.BAD_REQUEST, f"HTTP {status}: {detail}", retryable=False, status=status)


def error_from_response(response: requests.Response) -> LLMError:
    return error_from_status(
        response.status_code, response.text, retry_after=response.headers.get("Retry-After")
    )


def _error_from_payload(payload: dict) -> LLMError | None:
    error = payload.get("error")
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else str(error)
    return LLMError(RunError.BAD_RESPONSE, f"error in response: {message}"[:300], retryable=True)


def _transport_error(exc: requests.RequestException) -> LLMError:
    if isinstance(exc, requests.Timeout):
        return LLMError(RunError.TIMEOUT, "The AI service did not answer in time.", retryable=True)
    if isinstance(exc, requests.ConnectionError):
        return LLMError(
            RunError.CONNECTION, f"Could not reach the AI service: {type(exc).__name__}.", retryable=True
        )
    return LLMError(
        RunError.CONNECTION, f"Request to the AI service failed: {type(exc).__name__}.", retryable=True
    )


def _aio_transport_error(exc: BaseException) -> LLMError:
    """``_transport_error`` for the async client: the same codes for aiohttp's failures."""
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return LLMError(RunError.TIMEOUT, "The AI service did not answer in time.", retryable=True)
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return LLMError(
            RunError.CONNECTION, f"Could not reach the AI service: {type(exc).__name__}.", retryable=True
        )
    return LLMError(
        RunError.CONNECTION, f"Request to the AI service failed: {type(exc).__name__}.", retryable=True
    )


# --- client ------------------------------------------------------------------------


class OpenAIChatClient:
    """``POST {base_url}/chat/completions``; one ``requests.Session`` per client."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        stop: tuple[str, ...] = DEFAULT_STOP,
        session: requests.Session | None = None,
        sampling: dict | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.timeout = (connect_timeout, read_timeout)
        self.stop = list(stop)
        # Extra sampler fields (top_p, min_p, ...) already cut to what the provider accepts
        # (``chat.backends``); ``temperature`` and ``max_tokens`` come with each call.
        self.sampling = dict(sampling or {})
        self.headers = {"Accept": "application/json", "User-Agent": "CompanionHub"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.session = session or requests.Session()
        self.session.headers.update(self.headers)
        # The async calls share their loop's pool (``chat.aio_session``); these ride on each request.
        self.aio_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )

    def configured(
        self,
        *,
        model: str | None = None,
        sampling: dict | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> OpenAIChatClient:
        """This client (same session and pool) for another model, sampler settings or
        (connect, read) timeout.

        A shallow copy: the cached client per connection stays as it was, and
        a companion's model and preset ride on the copy for one step.
        """
        bound = copy.copy(self)
        if model:
            bound.model = model
        if sampling is not None:
            bound.sampling = dict(sampling)
        if timeout is not None:
            bound.timeout = timeout
        return bound

    def _body(self, messages: list[dict], *, max_tokens: int, temperature: float, stream: bool) -> dict:
        body: dict = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
        }
        for name, value in self.sampling.items():
            if name not in ("model", "messages", "max_tokens", "temperature", "stream", "stop"):
                body[name] = value
        stop = self.sampling.get("stop") or self.stop  # a preset's stop strings replace the defaults
        if stop:
            body["stop"] = list(stop)[:4]  # servers accept at most four
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _post(self, body: dict, *, stream: bool) -> requests.Response:
        try:
            response = self.session.post(self.url, json=body, timeout=self.timeout, stream=stream)
        except requests.RequestException as exc:
            raise _transport_error(exc) from exc
        if response.status_code >= 400:
            try:
                raise error_from_response(response)
            finally:
                response.close()
        return response

    def complete(self, messages: list[dict], *, max_tokens: int, temperature: float) -> Completion:
        """One answer, not streamed (the scene analysis uses this)."""
        response = self._post(
            self._body(messages, max_tokens=max_tokens, temperature=temperature, stream=False), stream=False
        )
        try:
            payload = response.json()
        except ValueError as exc:
            raise LLMError(
                RunError.BAD_RESPONSE, "The AI service sent a reply we could not read.", retryable=True
            ) from exc
        if not isinstance(payload, dict):
            raise LLMError(
                RunError.BAD_RESPONSE, "The AI service sent a reply we could not read.", retryable=True
            )
        if error := _error_from_payload(payload):
            raise error
        choices = payload.get("choices") or []
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = first.get("message") or {}
        think = _ThinkSplitter()
        visible, thought = think.feed(str(message.get("content") or ""))
        rest, unclosed = think.flush()
        text = strip_template_debris(visible + rest)
        usage = payload.get("usage") or {}
        estimated = not usage
        return Completion(
            text=text,
            finish_reason=first.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or estimate_tokens(_messages_chars(messages))),
            completion_tokens=int(usage.get("completion_tokens") or estimate_tokens(text)),
            usage_estimated=estimated,
            reasoning=_reasoning_of(message) + thought + unclosed,
        )

    def embed(self, texts: list[str], *, model: str, timeout: tuple[float, float]) -> object:
        """``POST {base_url}/embeddings``: the decoded JSON answer, checked by ``chat.embeddings``.

        Raises ``LLMError`` (with the HTTP ``status``) as every call here does.
        """
        try:
            response = self.session.post(
                self.base_url + "/embeddings", json={"model": model, "input": texts}, timeout=timeout
            )
        except requests.RequestException as exc:
            raise _transport_error(exc) from exc
        try:
            if response.status_code >= 400:
                raise error_from_response(response)
            try:
                return response.json()
            except ValueError as exc:
                raise LLMError(
                    RunError.BAD_RESPONSE, "The AI service sent embeddings we could not read.", retryable=True
                ) from exc
        finally:
            response.close()

    def stream_chat(
        self, messages: list[dict], *, max_tokens: int, temperature: float, avoid: Sequence[str] = ()
    ) -> ChatStream:
        """Start a streamed answer; iterate the returned stream for text pieces.

        ``avoid`` (earlier versions of the reply) is not sent: the server's sampling already
        gives a new version a different text, and no OpenAI-style field says "not these"."""
        body = self._body(messages, max_tokens=max_tokens, temperature=temperature, stream=True)
        response = self._post(body, stream=True)
        return ChatStream(response, prompt_chars=_messages_chars(messages))

    async def astream_chat(
        self, messages: list[dict], *, max_tokens: int, temperature: float, avoid: Sequence[str] = ()
    ) -> AsyncChatStream:
        """``stream_chat`` on an event loop (``chat.stream_loop``): returns once the answer's
        headers are in (or raises the same ``LLMError``); ``async for`` the pieces.

        The request goes through the running loop's one ``aiohttp`` session, with this
        client's key and timeouts (connect, and each read)."""
        body = self._body(messages, max_tokens=max_tokens, temperature=temperature, stream=True)
        try:
            response = await aio_session.session().post(
                self.url, json=body, headers=self.headers, timeout=self.aio_timeout
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _aio_transport_error(exc) from exc
        if response.status >= 400:
            try:
                raise error_from_status(
                    response.status,
                    await _error_text(response),
                    retry_after=response.headers.get("Retry-After"),
                )
            finally:
                response.close()
        return AsyncChatStream(response, prompt_chars=_messages_chars(messages))


def _reasoning_of(delta: dict) -> str:
    """The reasoning a delta (or a whole message) carries in its own fields."""
    return "".join(value for field in REASONING_FIELDS if isinstance(value := delta.get(field), str))


class _ThinkSplitter:
    """Route ``<think>…</think>`` spans of the content to the reasoning, the rest to the reply.

    A tag may arrive split across chunks, so a tail that could be the start of
    one is held back. A block still open when the stream ends is reasoning.
    """

    def __init__(self) -> None:
        self.pending = ""
        self.inside = False

    def feed(self, piece: str) -> tuple[str, str]:
        """Return ``(visible, reasoning)`` text that is now certain."""
        self.pending += piece
        parts: dict[bool, list[str]] = {False: [], True: []}
        while (index := self.pending.find(tag := THINK_CLOSE if self.inside else THINK_OPEN)) != -1:
            parts[self.inside].append(self.pending[:index])
            self.pending = self.pending[index + len(tag) :]
            self.inside = not self.inside
        keep = _partial_tail(self.pending, (THINK_CLOSE if self.inside else THINK_OPEN,))
        parts[self.inside].append(self.pending[: len(self.pending) - keep])
        self.pending = self.pending[len(self.pending) - keep :]
        return "".join(parts[False]), "".join(parts[True])

    def flush(self) -> tuple[str, str]:
        out, self.pending = self.pending, ""
        return ("", out) if self.inside else (out, "")


class _StopFilter:
    """Hold back text that may be the start of a template marker (or a leading role label),
    and cut at a marker: ``stopped`` then says the reply is over."""

    def __init__(self) -> None:
        self.pending = ""
        self.stopped = False
        self.started = False  # past the point where a leading "Assistant:" could be
        self.after_label = False  # the spaces after a dropped label go too

    def feed(self, piece: str) -> str:
        self.pending += piece
        cut = _cut_at_marker(self.pending)
        if len(cut) < len(self.pending):
            self.stopped = True
            self.pending = ""
            if not self.started:
                return strip_template_debris(cut)
            return cut.lstrip() if self.after_label else cut
        if not self.started:
            start = _role_label_end(self.pending)
            if start is None:
                return ""  # still possibly "Assistant:": wait for more
            self.pending = self.pending[start:]
            self.started, self.after_label = True, start > 0
        if self.after_label:
            self.pending = self.pending.lstrip()
            self.after_label = not self.pending
        # Keep back a tail that could still grow into a marker.
        keep = _partial_tail(self.pending, TEMPLATE_MARKERS)
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep :]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out if self.started else out[_role_label_end(out) or 0 :]


class ReplyDecoder:
    """The rules of a streamed answer, fed the body's bytes as they arrive, by any transport.

    ``feed(chunk)`` yields the visible text pieces the chunk made certain (raising
    ``LLMError`` where the stream says it failed, after the pieces before the failure);
    ``finished`` turns True once nothing more needs reading (``[DONE]``, or the model
    ended its turn with a template marker); ``finish()`` is called when the body ended
    or the reader stopped at ``finished``: it yields the held-back tail, raises
    ``incomplete`` for an answer that never said it was done, and sets ``result``.

    The sync ``ChatStream`` and the async ``AsyncChatStream`` both read through one of
    these, so the wire rules are written once.
    """

    def __init__(self, *, prompt_chars: str) -> None:
        self._prompt_chars = prompt_chars
        self._events = _SSEEvents()
        self._think = _ThinkSplitter()
        self._stop = _StopFilter()
        self._pieces: list[str] = []
        self._reasoning: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.done = False  # ``[DONE]`` was read: not merely the end of the bytes
        self.result: Completion | None = None

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    @property
    def finished(self) -> bool:
        return self.done or self._stop.stopped

    def failed(self, error: LLMError) -> LLMError:
        """``error`` with the text shown so far, for a reader that keeps it."""
        error.partial_text = error.partial_text or self.text
        return error

    def feed(self, chunk: bytes) -> Iterator[str]:
        if self.finished or not chunk:
            return
        for data in self._events.feed(chunk):
            yield from self._event(data, ended=True)
            if self.finished:
                return

    def finish(self) -> Iterator[str]:
        if not self.finished:
            for data, ended in self._events.end():
                yield from self._event(data, ended=ended)
        if not self._stop.stopped:
            visible, thought = self._think.flush()
            self._reasoning.append(thought)
            if tail := self._stop.feed(visible) + self._stop.flush():
                self._pieces.append(tail)
                yield tail
        if self._stop.stopped and not self.finish_reason:
            self.finish_reason = "stop"
        if not self.done and not self.finish_reason:
            raise self.failed(
                LLMError(RunError.INCOMPLETE, "The reply stopped before it finished.", retryable=True)
            )
        self.result = self._build_result()

    def _event(self, data: str, *, ended: bool) -> Iterator[str]:
        try:
            payload = _payload(data, ended=ended)
        except LLMError as exc:
            self.failed(exc)
            raise
        if isinstance(payload, _Done):
            self.done = True
            return
        if payload is None:  # a last event cut mid-way: the bytes end here
            return
        if error := _error_from_payload(payload):
            raise self.failed(error)
        if isinstance(payload.get("usage"), dict):
            self.usage = payload["usage"]
        for choice in payload.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._reasoning.append(_reasoning_of(delta))
                content = delta.get("content")
                if isinstance(content, str) and content and not self._stop.stopped:
                    visible, thought = self._think.feed(content)
                    self._reasoning.append(thought)
                    if shown := self._stop.feed(visible):
                        self._pieces.append(shown)
                        yield shown
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _build_result(self) -> Completion:
        text = self.text
        usage = self.usage or {}
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        estimated = not (isinstance(prompt, int) and isinstance(completion, int))
        return Completion(
            text=text,
            finish_reason=self.finish_reason,
            prompt_tokens=prompt if isinstance(prompt, int) else estimate_tokens(self._prompt_chars),
            completion_tokens=completion if isinstance(completion, int) else estimate_tokens(text),
            usage_estimated=estimated,
            reasoning=self.reasoning,
        )


class DecodedReply:
    """What a stream read through a ``ReplyDecoder`` knows so far: one set of accessors for the
    sync and async streams."""

    _decoder: ReplyDecoder

    @property
    def text(self) -> str:
        return self._decoder.text

    @property
    def reasoning(self) -> str:
        return self._decoder.reasoning

    @property
    def finish_reason(self) -> str | None:
        return self._decoder.finish_reason

    @property
    def usage(self) -> dict | None:
        return self._decoder.usage

    @property
    def result(self) -> Completion:
        if self._decoder.result is None:
            raise RuntimeError("the stream has not finished")
        return self._decoder.result


class AsyncStreamMixin:
    """``async with`` and ``async for`` for an async stream with ``aclose`` and ``pieces``."""

    async def aclose(self) -> None:
        raise NotImplementedError

    def pieces(self, heartbeat: Callable[[], Awaitable[None] | None] | None = None) -> AsyncIterator[str]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        return self.pieces()


class ChatStream(DecodedReply):
    """Iterate for visible text pieces; ``result`` holds the whole answer afterwards.

    ``pieces(heartbeat=...)`` iterates the same and calls ``heartbeat`` every
    ``HEARTBEAT_SECONDS`` while data arrives, visible or not (reasoning, empty
    deltas, keep-alives); an exception it raises ends the stream and closes it.
    ``close()`` drops the connection at once, which is how a cancelled reply
    stops the server generating; the first end-of-turn marker does the same.
    """

    def __init__(self, response: requests.Response, *, prompt_chars: str) -> None:
        self._response = response
        self._decoder = ReplyDecoder(prompt_chars=prompt_chars)
        self._closed = False

    def close(self) -> None:
        self._closed = True
        self._response.close()

    def __iter__(self) -> Iterator[str]:
        return self.pieces()

    def pieces(self, heartbeat: Callable[[], None] | None = None) -> Iterator[str]:
        decoder = self._decoder
        last_beat = time.monotonic()
        try:
            for chunk in _checked(_arrived(self._response)):
                for piece in decoder.feed(chunk):
                    yield piece
                    if self._closed:  # closed by the reader: end quietly, with no result
                        return
                if decoder.finished:
                    break  # the model ended its turn: stop reading (and the server generating) now
                if heartbeat is not None and time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    heartbeat()
        except LLMError as exc:
            decoder.failed(exc)
            raise
        finally:
            self._response.close()
        yield from decoder.finish()


class AsyncChatStream(DecodedReply, AsyncStreamMixin):
    """``ChatStream`` for an event loop: ``async for`` the visible text pieces (or
    ``pieces(heartbeat=...)``); ``result`` (a ``Completion``), ``text`` and
    ``reasoning`` as the sync stream has them, read through the same ``ReplyDecoder``.

    ``aclose()`` drops the upstream connection at once (the server sees the client
    go and stops generating); so does cancelling the task that reads, leaving the
    stream early, an error, and the model's end-of-turn marker. A reply read to its
    ``[DONE]`` hands its connection back to the loop's pool once the body's last
    bytes are in (``aclose`` then waits for that, at most ``DRAIN_SECONDS``).
    ``async with`` calls ``aclose`` too.
    """

    def __init__(self, response: aiohttp.ClientResponse, *, prompt_chars: str) -> None:
        self._response = response
        self._decoder = ReplyDecoder(prompt_chars=prompt_chars)
        self._closed = False
        self._draining: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        self._closed = True
        if self._draining is not None:
            await self._draining  # a finished reply: its connection goes back to the pool
        self._response.close()  # no-op once released

    async def pieces(
        self, heartbeat: Callable[[], Awaitable[None] | None] | None = None
    ) -> AsyncIterator[str]:
        """As ``ChatStream.pieces``; ``heartbeat`` may be a plain or an async function."""
        decoder, content = self._decoder, self._response.content
        last_beat = time.monotonic()
        whole = False  # read to the end of the body: the connection may serve another request
        drain = False  # read to [DONE]: the body's last bytes are on their way
        try:
            while True:
                try:
                    chunk = await content.readany()
                except TimeoutError as exc:
                    raise _stopped_sending() from exc
                except (aiohttp.ClientError, OSError) as exc:
                    # A dropped connection, a short Content-Length body, a broken gzip
                    # stream; and a response closed by the reader (``aclose``).
                    raise _cut_off() from exc
                if not chunk:
                    whole = True
                    break
                for piece in decoder.feed(chunk):
                    yield piece
                    if self._closed:  # closed by the reader: end quietly, with no result
                        return
                if decoder.finished:
                    whole = decoder.done and content.at_eof()
                    drain = decoder.done and not whole
                    break  # the model ended its turn: stop reading (and the server generating) now
                if heartbeat is not None and time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    if (beat := heartbeat()) is not None:
                        await beat
        except LLMError as exc:
            decoder.failed(exc)
            raise
        finally:
            if whole:
                self._response.release()
            elif drain:
                self._draining = task = asyncio.get_running_loop().create_task(
                    _release_after_body(self._response)
                )
                _DRAINING.add(task)  # the loop keeps only a weak reference to a task
                task.add_done_callback(_DRAINING.discard)
            else:
                self._response.close()
        for piece in decoder.finish():
            yield piece


_DRAINING: set[asyncio.Task[None]] = set()


async def _release_after_body(response: aiohttp.ClientResponse) -> None:
    """Read the little that follows ``[DONE]``, then hand the connection back to the pool."""
    try:
        left = READ_SIZE
        async with asyncio.timeout(DRAIN_SECONDS):
            while left > 0 and (chunk := await response.content.readany()):
                left -= len(chunk)
        if left > 0:
            response.release()
            return
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass
    finally:
        response.close()  # no-op once released; closes it on anything else, a cancel included


async def _error_text(response: aiohttp.ClientResponse) -> str:
    """The start of an error answer's body, as text; what arrived if reading it fails."""
    body = b""
    try:
        while len(body) < ERROR_BODY_LIMIT and (chunk := await response.content.readany()):
            body += chunk
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass
    try:
        return body[:ERROR_BODY_LIMIT].decode(response.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace")


def _arrived(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as they arrive, decoded (gzip, deflate), for every framing.

    ``read1`` returns what the socket has, up to ``READ_SIZE``, after at most
    one read: a chunked, a Content-Length and a close-delimited body all flow
    at once. ``b""`` is the end of the body.
    """
    while data := response.raw.read1(READ_SIZE, decode_content=True):
        yield data


def _checked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Turn failures in mid-body into ``LLMError``: quiet too long, or cut off."""
    try:
        yield from chunks
    except (urllib3.exceptions.ReadTimeoutError, requests.Timeout, TimeoutError) as exc:
        raise _stopped_sending() from exc
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        # A dropped connection, a short Content-Length body, a broken gzip stream; and a
        # response closed by the reader (a cancel), which ends the stream the same way.
        raise _cut_off() from exc


def _stopped_sending() -> LLMError:
    return LLMError(RunError.TIMEOUT, "The AI service stopped sending.", retryable=True)


def _cut_off() -> LLMError:
    return LLMError(RunError.INCOMPLETE, "The reply stopped before it finished.", retryable=True)
