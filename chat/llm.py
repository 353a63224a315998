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

import copy
import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass

import requests
import urllib3.exceptions

from chat.errors import RunError

__all__ = [
    "DEFAULT_STOP",
    "HEARTBEAT_SECONDS",
    "ChatStream",
    "Completion",
    "LLMError",
    "OpenAIChatClient",
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


def _partial_tail(text: str, tags: Iterable[str]) -> int:
    """The length of the longest end of ``text`` that could grow into one of ``tags``."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:size]):
                longest = size
                break
    return longest


# --- SSE ---------------------------------------------------------------------------


def _sse_data(chunks: Iterable[bytes]) -> Iterator[tuple[str, bool]]:
    """Yield ``(data, ended)`` for each SSE event from byte chunks split anywhere.

    ``ended`` is False for a last event the body stopped in the middle of (no
    newline after it): it may be whole, or cut mid-token by a dropped connection.
    """
    buffer = b""
    data_lines: list[str] = []
    for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline == -1:
                break
            line = buffer[:newline].rstrip(b"\r").decode("utf-8", errors="replace")
            buffer = buffer[newline + 1 :]
            if not line:  # blank line: end of an event
                if data_lines:
                    yield "\n".join(data_lines), True
                    data_lines = []
                continue
            if line.startswith(":"):  # comment / keep-alive
                continue
            field, _, value = line.partition(":")
            if field == "data":
                data_lines.append(value[1:] if value.startswith(" ") else value)
    tail = buffer.rstrip(b"\r").decode("utf-8", errors="replace")
    if tail.startswith("data:"):
        data_lines.append(tail[5:].lstrip(" "))
    if data_lines:
        yield "\n".join(data_lines), not tail


class _Done(Exception):
    pass


def parse_sse(chunks: Iterable[bytes]) -> Iterator[dict]:
    """JSON payloads of an SSE stream, stopping at ``[DONE]``.

    Raises ``LLMError(bad_response)`` for a payload that is not a JSON object.
    """
    yield from _parse_sse(chunks)


class _SSEPayloads:
    """``parse_sse`` that remembers whether the stream ended with ``[DONE]``."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.done = False

    def __iter__(self) -> Iterator[dict]:
        self.done = yield from _parse_sse(self.chunks)


def _parse_sse(chunks: Iterable[bytes]) -> Generator[dict, None, bool]:
    """The payloads; returns True at ``[DONE]``, False when the bytes simply end."""
    for data, ended in _sse_data(chunks):
        if data.strip() == "[DONE]":
            return True
        try:
            payload = json.loads(data)
        except ValueError as exc:
            if not ended:  # the connection closed mid-event: a cut-off reply, not garbage
                return False
            raise LLMError(
                RunError.BAD_RESPONSE, "The AI service sent data we could not read.", retryable=True
            ) from exc
        if not isinstance(payload, dict):
            raise LLMError(
                RunError.BAD_RESPONSE, "The AI service sent data we could not read.", retryable=True
            )
        yield payload
    return False


# --- errors ------------------------------------------------------------------------


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _error_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)[:200]
        if isinstance(error, str):
            return error[:200]
    return str(body)[:200]


def error_from_response(response: requests.Response) -> LLMError:
    status = response.status_code
    detail = _error_detail(response)
    if status in (401, 403):
        return LLMError(RunError.AUTH, f"HTTP {status}: {detail}", retryable=False, status=status)
    if status == 429:
        return LLMError(
            RunError.RATE_LIMITED,
            f"HTTP 429: {detail}",
            retryable=True,
            retry_after=_retry_after(response),
            status=status,
        )
    if status in (408, 409) or status >= 500:
        return LLMError(
            RunError.SERVER,
            f"HTTP {status}: {detail}",
            retryable=True,
            retry_after=_retry_after(response),
            status=status,
        )
    return LLMError(RunError.BAD_REQUEST, f"HTTP {status}: {detail}", retryable=False, status=status)


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
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "CompanionHub"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

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


class ChatStream:
    """Iterate for visible text pieces; ``result`` holds the whole answer afterwards.

    ``pieces(heartbeat=...)`` iterates the same and calls ``heartbeat`` every
    ``HEARTBEAT_SECONDS`` while data arrives, visible or not (reasoning, empty
    deltas, keep-alives); an exception it raises ends the stream and closes it.
    ``close()`` drops the connection at once, which is how a cancelled reply
    stops the server generating; the first end-of-turn marker does the same.
    """

    def __init__(self, response: requests.Response, *, prompt_chars: str) -> None:
        self._response = response
        self._prompt_chars = prompt_chars
        self._pieces: list[str] = []
        self._reasoning: list[str] = []
        self._result: Completion | None = None
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self._closed = False

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    @property
    def result(self) -> Completion:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

    def close(self) -> None:
        self._closed = True
        self._response.close()

    def __iter__(self) -> Iterator[str]:
        return self.pieces()

    def pieces(self, heartbeat: Callable[[], None] | None = None) -> Iterator[str]:
        think, stop = _ThinkSplitter(), _StopFilter()
        saw_done = False
        last_beat = time.monotonic()
        try:
            payloads = _SSEPayloads(_checked(_arrived(self._response)))
            for payload in payloads:
                if error := _error_from_payload(payload):
                    raise error
                if isinstance(payload.get("usage"), dict):
                    self.usage = payload["usage"]
                for choice in payload.get("choices") or ():
                    if not isinstance(choice, dict):
                        continue
                    delta = choice.get("delta")
                    if isinstance(delta, dict):
                        self._reasoning.append(_reasoning_of(delta))
                        content = delta.get("content")
                        if isinstance(content, str) and content and not stop.stopped:
                            visible, thought = think.feed(content)
                            self._reasoning.append(thought)
                            if shown := stop.feed(visible):
                                self._pieces.append(shown)
                                yield shown
                                if self._closed:  # closed by the reader: end quietly, with no result
                                    return
                    if choice.get("finish_reason"):
                        self.finish_reason = choice["finish_reason"]
                if stop.stopped:
                    break  # the model ended its turn: stop reading (and the server generating) now
                if heartbeat is not None and time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    heartbeat()
            saw_done = payloads.done  # not merely the end of the bytes
        except LLMError as exc:
            exc.partial_text = exc.partial_text or self.text
            raise
        finally:
            self._response.close()
        if not stop.stopped:
            visible, thought = think.flush()
            self._reasoning.append(thought)
            tail = stop.feed(visible) + stop.flush()
            if tail:
                self._pieces.append(tail)
                yield tail
        if stop.stopped and not self.finish_reason:
            self.finish_reason = "stop"
        if not saw_done and not self.finish_reason:
            raise LLMError(
                RunError.INCOMPLETE,
                "The reply stopped before it finished.",
                retryable=True,
                partial_text=self.text,
            )
        self._result = self._build_result()

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
        raise LLMError(RunError.TIMEOUT, "The AI service stopped sending.", retryable=True) from exc
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        # A dropped connection, a short Content-Length body, a broken gzip stream; and a
        # response closed by the reader (a cancel), which ends the stream the same way.
        raise LLMError(RunError.INCOMPLETE, "The reply stopped before it finished.", retryable=True) from exc
