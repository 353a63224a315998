"""A fake OpenAI-compatible audio server: speech (text to speech) and speech to text.

Speech, as the real wire format: ``POST /v1/audio/speech`` with ``{"model", "input",
"voice", "speed", "response_format"}`` answers with real WAV bytes (a sine tone from the
stdlib ``wave`` module, ``ms_per_char`` milliseconds per character of input, divided by the
speed, so tests can check the duration); ``GET /v1/audio/voices`` answers Kokoro-FastAPI's
``{"voices": [...]}`` (``voices = None`` answers 404, as OpenAI and openedai-speech do).

Speech to text: ``POST /v1/audio/transcriptions`` (OpenAI, faster-whisper-server, LocalAI)
and ``POST /inference`` (whisper.cpp's server): a multipart form with ``file``, ``model``,
``response_format`` and optional ``language`` -> ``{"text": transcript}``. A request without
``file`` is HTTP 400, as the real servers answer.

    with FakeAudioServer() as audio:
        audio.delay = 0.8                   # every answer this late (a real server's pace)
        audio.fail_next(status=500)         # or 401, or kind="garbage", "hang", "disconnect",
                                            # "no_text" (a transcription without text)
        client = OpenAISpeechClient(base_url=audio.base_url)

Failures: ``"hang"`` sleeps ``seconds`` and then drops a speech request, or answers a
transcription late. Every request is recorded with the time it arrived (``requests``,
``at``); ``speech_requests`` lists the synthesis calls, ``transcriptions`` the recordings
(with their form ``fields`` and ``file``). ``base_url`` ends in ``/v1``; ``origin`` has no
path (whisper.cpp's ``/inference`` is at the root).

Run by hand: ``python -m tests.fakes.audio_server --port 8880 --delay 0.5``.
"""

from __future__ import annotations

import argparse
import io
import math
import struct
import wave
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar

from tests.fakes.base import FakeHandler, FakeServer, serve_until_interrupted

__all__ = ["DEFAULT_TRANSCRIPT", "DEFAULT_VOICES", "FakeAudioServer", "parse_multipart", "sine_wav"]

DEFAULT_VOICES = ["af_bella", "af_sky", "am_adam"]
DEFAULT_TRANSCRIPT = "Hello, this is what I said."
SAMPLE_RATE = 16000


def sine_wav(milliseconds: int, *, rate: int = SAMPLE_RATE, frequency: float = 440.0) -> bytes:
    """A 16-bit mono WAV of a sine tone, ``milliseconds`` long (audible: not silence)."""
    frames = max(int(rate * milliseconds / 1000), 1)
    samples = (int(12000 * math.sin(2 * math.pi * frequency * n / rate)) for n in range(frames))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(text fields, files by field name) of a ``multipart/form-data`` body."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = {"filename": filename, "content_type": part.get_content_type(), "data": data}
        else:
            fields[name] = data.decode("utf-8", errors="replace")
    return fields, files


class _AudioHandler(FakeHandler):
    def do_GET(self) -> None:
        fake: FakeAudioServer = self.fake  # type: ignore[assignment]
        self.read_json()
        if self.path.rstrip("/") in ("/v1/audio/voices", "/audio/voices"):
            if fake.voices is None:
                self.send_error_json(404, "Not Found")
            else:
                self.send_json(200, {"voices": list(fake.voices)})
            return
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "tts-1", "object": "model"}]})
            return
        if self.path.split("?", 1)[0].rstrip("/") in ("", "/health", "/v1/health"):
            self.send_json(200, {"status": "ok"})
            return
        self.send_error_json(404, f"no route {self.path}")

    def do_POST(self) -> None:
        fake: FakeAudioServer = self.fake  # type: ignore[assignment]
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/audio/speech", "/audio/speech"):
            self._speech(fake, self.read_json())
            return
        if path.endswith(("/audio/transcriptions", "/inference")):
            self._transcribe(fake)
            return
        self.read_json()
        self.send_error_json(404, f"no route {self.path}")

    def _speech(self, fake: FakeAudioServer, body: Any) -> None:
        self.sleep(fake.delay)
        if fake.is_down:
            self.send_error_json(503, "The server is down.")
            return
        failure = fake.take_failure()
        if failure is not None:
            if failure["kind"] == "hang":
                self.sleep(failure["seconds"])
                self.drop_connection()
                return
            if failure["kind"] == "disconnect":
                self.drop_connection()
                return
            if failure["kind"] == "garbage":  # a proxy's error page with status 200
                self.send_bytes(200, b"<html><body>Bad gateway</body></html>", content_type="text/html")
                return
            self.send_error_json(failure["status"], f"HTTP {failure['status']}", body=failure["body"])
            return
        if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            self.send_error_json(401, "Incorrect API key provided.")
            return
        if not isinstance(body, dict) or not isinstance(body.get("input"), str) or not body["input"].strip():
            self.send_error_json(422, "input is required")
            return
        fmt = body.get("response_format", "mp3")
        if fmt != "wav":  # the fake has no encoder: it answers what it can, as a server would refuse
            self.send_error_json(400, f"response_format {fmt!r} is not supported here")
            return
        speed = float(body.get("speed") or 1.0)
        milliseconds = int(len(body["input"]) * fake.ms_per_char / max(speed, 0.25))
        self.send_bytes(200, sine_wav(milliseconds), content_type="audio/wav")

    # --- speech to text ------------------------------------------------------------

    def _transcribe(self, fake: FakeAudioServer) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        fields, files = (
            parse_multipart(content_type, raw) if content_type.startswith("multipart/") else ({}, {})
        )
        fake._record(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "json": None,
                "raw": raw,
                "fields": fields,
                "file": files.get("file"),
            }
        )
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
            return
        failure = fake.take_failure()
        self.sleep(fake.delay)
        if failure is not None:
            kind = failure["kind"]
            if kind == "status":
                self.send_error_json(
                    failure["status"],
                    f"The fake server failed with HTTP {failure['status']}.",
                    body=failure["body"],
                    retry_after=failure["retry_after"],
                )
                return
            if kind == "hang":
                self.sleep(failure["seconds"])
            elif kind == "garbage":
                self.send_bytes(200, b"<html>not json</html>", content_type="text/html")
                return
            elif kind == "no_text":
                self.send_json(200, {"segments": []})
                return
            elif kind == "disconnect":
                self.drop_connection()
                return
        if "file" not in files:
            self.send_error_json(400, "The form has no file field.")
            return
        self.send_json(200, {"text": fake.transcript})


class FakeAudioServer(FakeServer):
    """See the module's docstring."""

    handler_class: ClassVar[type[FakeHandler]] = _AudioHandler
    failure_kinds: ClassVar[frozenset[str]] = frozenset(
        {"status", "hang", "disconnect", "garbage", "no_text"}
    )

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.voices: list[str] | None = list(DEFAULT_VOICES)
        self.ms_per_char = 20  # milliseconds of tone per character of input
        self.api_key = ""  # set: speech requests without "Bearer <api_key>" get 401
        self.transcript: str = DEFAULT_TRANSCRIPT

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def reset(self) -> None:
        super().reset()
        self.delay = 0.0
        self.voices = list(DEFAULT_VOICES)
        self.transcript = DEFAULT_TRANSCRIPT

    @property
    def speech_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"].rstrip("/").endswith("/audio/speech")]

    @property
    def transcriptions(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if "fields" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8880)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--transcript", default=DEFAULT_TRANSCRIPT)
    args = parser.parse_args()
    server = FakeAudioServer(port=args.port)
    server.delay = args.delay
    server.transcript = args.transcript
    serve_until_interrupted(server, "Fake audio server")


if __name__ == "__main__":
    main()
