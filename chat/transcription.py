"""Speech to text over the OpenAI-compatible transcription API, with ``requests``.

One client for the servers that take a multipart recording and answer JSON:

- OpenAI's Whisper API, faster-whisper-server / Speaches, LocalAI and others:
  ``POST {base}/v1/audio/transcriptions`` (``TRANSCRIPTIONS_PATH``);
- whisper.cpp's ``whisper-server``: ``POST {base}/inference`` (``WHISPER_CPP_PATH``)
  with the same fields (it ignores ``model``: the server loads one at start).

The form is ``file`` (named with the extension of the sniffed container:
OpenAI tells formats apart by the file name), ``model``, ``response_format=json``
and, when known, ``language`` (ISO 639-1: giving it avoids a wrong guess on a
short recording); the answer is ``{"text": "..."}``.

A base URL is accepted with or without its ``/v1`` (``http://host:8000`` and
``http://host:8000/v1`` reach the same address), because the LLM settings
carry it and the audio servers' own documentation often leaves it out.

Failures are ``TranscriptionError`` with a ``code`` (the same words as the
LLM's: ``auth``, ``bad_request``, ``rate_limited``, ``server``, ``timeout``,
``connection``, ``bad_response``) and ``retryable``. Their text names the
status and at most a short excerpt of the server's error, which may echo the
key: callers scrub it (``chat.backends.scrub_key``) before it is logged.
"""

from __future__ import annotations

import requests

__all__ = [
    "EXTENSIONS",
    "MAX_TRANSCRIPT_CHARS",
    "TRANSCRIPTIONS_PATH",
    "WHISPER_CPP_PATH",
    "OpenAITranscriptionClient",
    "TranscriptionError",
    "endpoint_url",
]

TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
WHISPER_CPP_PATH = "/inference"
# A transcript longer than this is cut: two minutes of speech are about 2,000 characters.
MAX_TRANSCRIPT_CHARS = 20_000
# The file name's extension by content type (the sniffed one, never the browser's).
EXTENSIONS = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/flac": "flac",
}


class TranscriptionError(Exception):
    """A failed transcription. ``retryable`` says whether trying again later can help."""

    def __init__(self, code: str, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path``, without doubling a ``/v1`` the base already ends with."""
    base = base_url.rstrip("/")
    if path.startswith("/v1/") and base.endswith("/v1"):
        return base + path[len("/v1") :]
    return base + path


def _error_for_status(response: requests.Response) -> TranscriptionError:
    status = response.status_code
    detail = _server_message(response)
    message = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return TranscriptionError("auth", message, retryable=False, status=status)
    if status == 429:
        return TranscriptionError("rate_limited", message, retryable=True, status=status)
    if status >= 500 or status == 408:
        return TranscriptionError("server", message, retryable=True, status=status)
    return TranscriptionError("bad_request", message, retryable=False, status=status)


def _server_message(response: requests.Response) -> str:
    """The server's own error message, short: OpenAI's ``{"error": {"message"}}``, else text."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200].strip()
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str):
        return error[:200]
    return ""


class OpenAITranscriptionClient:
    """``transcribe(audio, content_type=..., language=...)`` -> the text the server heard."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        model: str = "whisper-1",
        path: str = TRANSCRIPTIONS_PATH,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.url = endpoint_url(base_url, path)
        self.model = model
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "CompanionHub"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def __repr__(self) -> str:  # never the key
        return f"<OpenAITranscriptionClient {self.url} model={self.model!r}>"

    def transcribe(self, audio: bytes, *, content_type: str, language: str | None = None) -> str:
        """The transcript of ``audio`` (a recording of ``content_type``), stripped; may be empty."""
        extension = EXTENSIONS.get(content_type, "bin")
        fields = {"model": self.model, "response_format": "json"}
        if language:
            fields["language"] = language
        try:
            response = self.session.post(
                self.url,
                data=fields,
                files={"file": (f"recording.{extension}", audio, content_type)},
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise TranscriptionError(
                "timeout", "The speech service did not answer in time.", retryable=True
            ) from exc
        except requests.RequestException as exc:
            # The exception's text holds the URL; its type says enough.
            raise TranscriptionError(
                "connection", f"Could not reach the speech service ({type(exc).__name__}).", retryable=True
            ) from None
        if response.status_code >= 400:
            raise _error_for_status(response)
        return _text_of(response)


def _text_of(response: requests.Response) -> str:
    try:
        payload = response.json()
    except ValueError as exc:
        raise TranscriptionError(
            "bad_response", "The speech service sent no JSON.", retryable=True, status=response.status_code
        ) from exc
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        raise TranscriptionError(
            "bad_response", "The speech service sent no text.", retryable=True, status=response.status_code
        )
    return text.strip()[:MAX_TRANSCRIPT_CHARS]
