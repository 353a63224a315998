"""A fake OpenAI-compatible audio server: ``/v1/audio/speech`` and ``/v1/audio/voices``.

It speaks the real wire format: ``POST /v1/audio/speech`` with ``{"model",
"input", "voice", "speed", "response_format"}`` answers with real WAV bytes
(a sine tone from the stdlib ``wave`` module, ``ms_per_char`` milliseconds per
character of input, divided by the speed, so tests can check the duration);
``GET /v1/audio/voices`` answers Kokoro-FastAPI's ``{"voices": [...]}``
(``voices = None`` answers 404, as OpenAI and openedai-speech do).

    with FakeAudioServer() as tts:
        tts.delay = 0.8                     # every answer this late (a real server's pace)
        tts.fail_next(status=500)           # or 401, or kind="garbage" (200 with HTML), "hang"
        client = OpenAISpeechClient(base_url=tts.base_url)

Every request is recorded with the time it arrived (``requests``, ``at``) and
``speech_requests`` lists the synthesis calls. Dispatch is one branch per
path, so other endpoints (transcriptions) are one more branch.

Run by hand: ``python -m tests.fakes.audio_server --port 8880 --delay 0.5``.
"""

from __future__ import annotations

import argparse
import io
import math
import struct
import wave
from typing import Any, ClassVar

from tests.fakes.base import FakeHandler, FakeServer, serve_until_interrupted

__all__ = ["DEFAULT_VOICES", "FakeAudioServer", "sine_wav"]

DEFAULT_VOICES = ["af_bella", "af_sky", "am_adam"]
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
        self.send_error_json(404, f"no route {self.path}")

    def do_POST(self) -> None:
        fake: FakeAudioServer = self.fake  # type: ignore[assignment]
        path = self.path.rstrip("/")
        if path in ("/v1/audio/speech", "/audio/speech"):
            self._speech(fake, self.read_json())
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


class FakeAudioServer(FakeServer):
    handler_class: ClassVar[type[FakeHandler]] = _AudioHandler
    failure_kinds: ClassVar[frozenset[str]] = frozenset({"status", "hang", "disconnect", "garbage"})

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.voices: list[str] | None = list(DEFAULT_VOICES)
        self.ms_per_char = 20  # milliseconds of tone per character of input
        self.api_key = ""  # set: requests without "Bearer <api_key>" get 401

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def reset(self) -> None:
        super().reset()
        self.delay = 0.0
        self.voices = list(DEFAULT_VOICES)

    @property
    def speech_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"].rstrip("/").endswith("/audio/speech")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8880)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeAudioServer(port=args.port)
    server.delay = args.delay
    serve_until_interrupted(server, "Fake audio server")


if __name__ == "__main__":
    main()
