"""A fake OpenAI-compatible audio server: speech to text.

- ``POST /v1/audio/transcriptions`` (OpenAI, faster-whisper-server, LocalAI) and
  ``POST /inference`` (whisper.cpp's server): a multipart form with ``file``,
  ``model``, ``response_format`` and optional ``language`` -> ``{"text": transcript}``.
  A request without ``file`` is HTTP 400, as the real servers answer.

Settable: ``transcript`` (the text every recording "says"), ``delay``.
``fail_next(kind=...)``: ``"status"`` (default: an OpenAI-style error with
``status``), ``"hang"`` (sleeps ``seconds``, then answers), ``"garbage"``
(HTTP 200 with a body that is not JSON), ``"no_text"`` (HTTP 200 JSON without
``text``), ``"disconnect"`` (closes the socket without an answer).

Records: ``requests`` (as every fake) with, for a transcription, ``fields``
(the form's text fields) and ``file`` (``{"filename", "content_type", "data"}``);
``transcriptions`` lists only those.

``base_url`` has no path: clients add ``/v1/audio/...`` (or ``/inference``).

Run by hand: ``python -m tests.fakes.audio_server --port 8880``.
"""

from __future__ import annotations

import argparse
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar

from tests.fakes.base import FakeHandler, FakeServer, serve_until_interrupted

__all__ = ["DEFAULT_TRANSCRIPT", "FakeAudioServer", "parse_multipart"]

DEFAULT_TRANSCRIPT = "Hello, this is what I said."


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
        self.read_json()
        path = self.path.split("?", 1)[0].rstrip("/")
        if self.fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
        elif path in ("", "/health", "/v1/health"):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_error_json(404, f"Unknown path {self.path}")

    def do_POST(self) -> None:
        fake: FakeAudioServer = self.fake  # type: ignore[assignment]
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith(("/audio/transcriptions", "/inference")):
            self._transcribe(fake)
            return
        self.read_json()
        self.send_error_json(404, f"Unknown path {self.path}")

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

    handler_class = _AudioHandler
    failure_kinds: ClassVar[frozenset[str]] = frozenset(
        {"status", "hang", "garbage", "no_text", "disconnect"}
    )

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.transcript: str = DEFAULT_TRANSCRIPT

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def transcriptions(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if "fields" in r]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8880)
    parser.add_argument("--transcript", default=DEFAULT_TRANSCRIPT)
    args = parser.parse_args(argv)
    server = FakeAudioServer(args.host, args.port)
    server.transcript = args.transcript
    serve_until_interrupted(server, "Fake audio server")


if __name__ == "__main__":
    main()
