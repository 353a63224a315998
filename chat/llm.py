"""OpenAI-compatible Chat Completions over ``requests``, streaming with SSE.

One client for every server that speaks the protocol: OpenAI, Novita,
OpenRouter, Ollama, llama.cpp's llama-server, vLLM, LM Studio. The parts
those servers disagree on are handled here:

- SSE comment lines (``: OPENROUTER PROCESSING``) and blank keep-alives are skipped;
- chunks with missing or ``null`` ``choices`` are empty, not errors;
- ``reasoning`` / ``reasoning_content`` deltas never reach the visible reply;
- a top-level ``error`` object is a failure even on HTTP 200;
- usage is asked for (``stream_options.include_usage``) and estimated when absent.

Bytes are read as they arrive (``iter_content(chunk_size=None)``), so a token
is handed on as soon as its line is complete; nothing waits for a buffer to fill.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass

import requests

__all__ = [
    "DEFAULT_STOP",
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
# Sent as ``stop`` (servers accept at most four).
DEFAULT_STOP = ("<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>")


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


def estimate_tokens(text: str) -> int:
    """About four characters a token for English; good enough for a usage figure."""
    return (len(text) + 3) // 4 if text else 0


def _messages_chars(messages: list[dict]) -> str:
    return "".join(str(m.get("content") or "") for m in messages)


def strip_template_debris(text: str) -> str:
    """Cut the text at the first chat-template marker and drop what follows."""
    cut = len(text)
    for marker in TEMPLATE_MARKERS:
        index = text.find(marker)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]


# --- SSE ---------------------------------------------------------------------------


def _sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """Yield the data of each SSE event from byte chunks split anywhere."""
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
                    yield "\n".join(data_lines)
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
        yield "\n".join(data_lines)


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
    for data in _sse_data(chunks):
        if data.strip() == "[DONE]":
            return True
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise LLMError(
                "bad_response", "The AI service sent data we could not read.", retryable=True
            ) from exc
        if not isinstance(payload, dict):
            raise LLMError("bad_response", "The AI service sent data we could not read.", retryable=True)
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
        return LLMError("auth", f"HTTP {status}: {detail}", retryable=False, status=status)
    if status == 429:
        return LLMError(
            "rate_limited",
            f"HTTP 429: {detail}",
            retryable=True,
            retry_after=_retry_after(response),
            status=status,
        )
    if status in (408, 409) or status >= 500:
        return LLMError(
            "server",
            f"HTTP {status}: {detail}",
            retryable=True,
            retry_after=_retry_after(response),
            status=status,
        )
    return LLMError("bad_request", f"HTTP {status}: {detail}", retryable=False, status=status)


def _error_from_payload(payload: dict) -> LLMError | None:
    error = payload.get("error")
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else str(error)
    return LLMError("bad_response", f"error in response: {message}"[:300], retryable=True)


def _transport_error(exc: requests.RequestException) -> LLMError:
    if isinstance(exc, requests.Timeout):
        return LLMError("timeout", "The AI service did not answer in time.", retryable=True)
    if isinstance(exc, requests.ConnectionError):
        return LLMError(
            "connection", f"Could not reach the AI service: {type(exc).__name__}.", retryable=True
        )
    return LLMError("connection", f"Request to the AI service failed: {type(exc).__name__}.", retryable=True)


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
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = (connect_timeout, read_timeout)
        self.stop = list(stop)
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "CompanionHub"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def _body(self, messages: list[dict], *, max_tokens: int, temperature: float, stream: bool) -> dict:
        body: dict = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
        }
        if self.stop:
            body["stop"] = self.stop
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
                "bad_response", "The AI service sent a reply we could not read.", retryable=True
            ) from exc
        if not isinstance(payload, dict):
            raise LLMError("bad_response", "The AI service sent a reply we could not read.", retryable=True)
        if error := _error_from_payload(payload):
            raise error
        choices = payload.get("choices") or []
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = first.get("message") or {}
        text = strip_template_debris(str(message.get("content") or ""))
        usage = payload.get("usage") or {}
        estimated = not usage
        return Completion(
            text=text,
            finish_reason=first.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or estimate_tokens(_messages_chars(messages))),
            completion_tokens=int(usage.get("completion_tokens") or estimate_tokens(text)),
            usage_estimated=estimated,
        )

    def stream_chat(self, messages: list[dict], *, max_tokens: int, temperature: float) -> ChatStream:
        """Start a streamed answer; iterate the returned stream for text pieces."""
        body = self._body(messages, max_tokens=max_tokens, temperature=temperature, stream=True)
        response = self._post(body, stream=True)
        return ChatStream(response, prompt_chars=_messages_chars(messages))


class _StopFilter:
    """Hold back text that may be the start of a template marker, and cut at one."""

    longest = max(len(m) for m in TEMPLATE_MARKERS)

    def __init__(self) -> None:
        self.pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        self.pending += piece
        cut = strip_template_debris(self.pending)
        if len(cut) < len(self.pending):
            self.stopped = True
            self.pending = ""
            return cut
        # Keep back a tail that could still grow into a marker.
        hold = 0
        for size in range(1, min(self.longest, len(self.pending)) + 1):
            tail = self.pending[-size:]
            if any(marker.startswith(tail) for marker in TEMPLATE_MARKERS):
                hold = size
        out, self.pending = self.pending[: len(self.pending) - hold], self.pending[len(self.pending) - hold :]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class ChatStream:
    """Iterate for visible text pieces; ``result`` holds the whole answer afterwards.

    ``close()`` drops the connection at once, which is how a cancelled reply
    stops the server generating.
    """

    def __init__(self, response: requests.Response, *, prompt_chars: str) -> None:
        self._response = response
        self._prompt_chars = prompt_chars
        self._pieces: list[str] = []
        self._result: Completion | None = None
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self._closed = False

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    @property
    def result(self) -> Completion:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

    def close(self) -> None:
        self._closed = True
        self._response.close()

    def __iter__(self) -> Iterator[str]:
        stop = _StopFilter()
        saw_done = False
        try:
            chunks = self._response.iter_content(chunk_size=None)
            payloads = _SSEPayloads(_checked(chunks))
            for payload in payloads:
                if error := _error_from_payload(payload):
                    error.partial_text = self.text
                    raise error
                if isinstance(payload.get("usage"), dict):
                    self.usage = payload["usage"]
                for choice in payload.get("choices") or ():
                    if not isinstance(choice, dict):
                        continue
                    delta = choice.get("delta") or {}
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(content, str) and content and not stop.stopped:
                        visible = stop.feed(content)
                        if visible:
                            self._pieces.append(visible)
                            yield visible
                            if self._closed:  # closed by the reader: end quietly, with no result
                                return
                    if choice.get("finish_reason"):
                        self.finish_reason = choice["finish_reason"]
            saw_done = payloads.done  # not merely the end of the bytes
        except LLMError as exc:
            exc.partial_text = exc.partial_text or self.text
            raise
        except requests.RequestException as exc:
            # Mid-body: the connection dropped (incomplete) or went quiet (timeout).
            if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
                error = LLMError("timeout", "The AI service stopped sending.", retryable=True)
            else:
                error = LLMError("incomplete", "The reply stopped before it finished.", retryable=True)
            error.partial_text = self.text
            raise error from exc
        finally:
            self._response.close()
        tail = stop.flush()
        if tail:
            self._pieces.append(tail)
            yield tail
        if stop.stopped and not self.finish_reason:
            self.finish_reason = "stop"
        if not saw_done and not self.finish_reason:
            raise LLMError(
                "incomplete", "The reply stopped before it finished.", retryable=True, partial_text=self.text
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
        )


def _checked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Turn urllib3's mid-body failures into requests' exceptions."""
    try:
        yield from chunks
    except (requests.RequestException, OSError) as exc:
        if isinstance(exc, requests.RequestException):
            raise
        raise requests.ConnectionError(str(exc)) from exc
