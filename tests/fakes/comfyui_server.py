"""A fake ComfyUI: its HTTP API and its progress websocket, on one port.

- ``GET /ws?clientId=<id>`` upgrades to a websocket (RFC 6455, text frames):
  ``status`` on connect, then for each queued prompt of that client
  ``execution_start``, ``executing`` (a node), ``progress`` (``value``/``max``)
  ``progress_steps`` times, ``executed``, and ``executing`` with
  ``node: null`` when done -- or ``execution_error``. Each message is
  ``{"type": ..., "data": {..., "prompt_id": ...}}`` as ComfyUI sends it.
- ``POST /prompt`` ``{"prompt": <workflow>, "client_id": ...}`` ->
  ``{"prompt_id", "number", "node_errors": {}}``; a workflow that still holds
  a ``{{placeholder}}`` or gives a non-number to a number input gets HTTP 400
  with ComfyUI's ``{"error": {...}, "node_errors": {...}}``.
- ``GET /history/<prompt_id>`` -> ``{prompt_id: {"prompt": [...], "outputs":
  {"9": {"images": [{"filename", "subfolder", "type": "output"}]}}, "status": {...}}}``.
- ``GET /view?filename=…&subfolder=…&type=output`` -> the PNG (the size the
  workflow's ``EmptyLatentImage`` or ``ImageScale`` asked for, else 512 x 512).
- ``POST /upload/image`` (multipart: ``image``, ``type``, ``overwrite``) ->
  ``{"name", "subfolder", "type"}``; ``uploads`` keeps what came.

``fail_next(kind=...)``: ``"status"`` (``POST /prompt`` answers HTTP
``status``), ``"bad_workflow"`` (400 with node errors), ``"execution_error"``,
``"no_outputs"`` (done, but the history lists no picture), ``"html"`` (``/view``
answers 200 with an HTML page), ``"view_status"`` (``/view`` answers
``status``), ``"hang"`` (the prompt never reports; ``seconds`` later it goes
on), ``"disconnect"`` (the socket is closed mid-prompt), ``"upload_status"``
(``/upload/image`` answers ``status``).

Run by hand: ``python -m tests.fakes.comfyui_server --port 8188``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email.parser
import email.policy
import hashlib
import itertools
import json
import queue
import re
import select
import socket
import threading
import time
import uuid
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tests.fakes.base import CLIENT_GONE, FakeHandler, FakeServer, serve_until_interrupted
from tests.fakes.sd_server import png_bytes

__all__ = ["FakeComfyUIServer"]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PLACEHOLDER = re.compile(r"\{\{.*?\}\}")
INT_INPUTS = {"seed", "steps", "width", "height", "batch_size"}
FLOAT_INPUTS = {"cfg", "denoise"}
_CLOSE = object()
# The failures each endpoint suffers; the others wait in the queue for theirs.
PROMPT_FAILURES = frozenset({"status", "bad_workflow", "execution_error", "no_outputs", "hang", "disconnect"})


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server frame (a server never masks)."""
    header = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        header += bytes([size])
    elif size < 2**16:
        header += bytes([126]) + size.to_bytes(2, "big")
    else:
        header += bytes([127]) + size.to_bytes(8, "big")
    return header + payload


def _read_exact(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ConnectionResetError("client gone")
        data += chunk
    return data


def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exact(conn, 2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(_read_exact(conn, 2), "big")
    elif size == 127:
        size = int.from_bytes(_read_exact(conn, 8), "big")
    mask = _read_exact(conn, 4) if second & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exact(conn, size)))
    return first & 0x0F, payload


def _bad_inputs(workflow: dict) -> dict:
    """ComfyUI's ``node_errors`` for what the fake can check: leftovers and wrong types."""
    errors: dict[str, Any] = {}
    for node_id, node in workflow.items():
        problems = []
        for name, value in (node.get("inputs") or {}).items():
            if isinstance(value, str) and PLACEHOLDER.search(value):
                problems.append(f"{name}: unfilled placeholder {value!r}")
            elif name in INT_INPUTS and (not isinstance(value, int) or isinstance(value, bool)):
                problems.append(f"{name}: Failed to convert an input value to a INT value")
            elif name in FLOAT_INPUTS and not isinstance(value, (int, float)):
                problems.append(f"{name}: Failed to convert an input value to a FLOAT value")
        if problems:
            errors[node_id] = {
                "errors": [
                    {"type": "invalid_input_type", "message": p, "details": p, "extra_info": {}}
                    for p in problems
                ],
                "dependent_outputs": [],
                "class_type": node.get("class_type"),
            }
    return errors


class _ComfyHandler(FakeHandler):
    @property
    def comfy(self) -> FakeComfyUIServer:
        return self.fake  # type: ignore[return-value]

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    def do_GET(self) -> None:
        path, query = self._route()
        if path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._record_request(b"")
            self._websocket(query.get("clientId", [""])[0])
            return
        self.read_json()
        fake = self.comfy
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
        elif path.startswith("/history/"):
            prompt_id = path.removeprefix("/history/")
            entry = fake.history.get(prompt_id)
            self.send_json(200, {prompt_id: entry} if entry else {})
        elif path == "/view":
            self._view(query)
        elif path in ("/system_stats", "/"):
            self.send_json(200, {"system": {"comfyui_version": "0.3.fake"}, "devices": []})
        else:
            self.send_error_json(404, f"Unknown path {self.path}")

    def do_POST(self) -> None:
        path, _ = self._route()
        fake = self.comfy
        if path == "/upload/image":
            self._upload()
            return
        body = self.read_json()
        if fake.is_down:
            self.send_error_json(503, "The server is down (fake).")
        elif path == "/prompt":
            self._prompt(body)
        else:
            self.send_error_json(404, f"Unknown path {self.path}")

    # --- /prompt ---

    def _prompt(self, body: Any) -> None:
        fake = self.comfy
        workflow = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(workflow, dict):
            self.send_json(
                400,
                {
                    "error": {"type": "invalid_prompt", "message": "Prompt has no properly connected outputs",
                              "details": "", "extra_info": {}},
                    "node_errors": {},
                },
            )  # fmt: skip
            return
        failure = fake.take_failure_at(PROMPT_FAILURES)
        kind = failure["kind"] if failure else None
        self.sleep(fake.delay)
        if kind == "status":
            self.send_error_json(failure["status"], f"The fake ComfyUI failed with HTTP {failure['status']}.",
                                 body=failure["body"])  # fmt: skip
            return
        node_errors = _bad_inputs(workflow)
        if kind == "bad_workflow" or node_errors:
            self.send_json(
                400,
                {
                    "error": {"type": "prompt_outputs_failed_validation",
                              "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
                    "node_errors": node_errors or {"3": {"errors": [], "class_type": "KSampler"}},
                },
            )  # fmt: skip
            return
        prompt_id = str(uuid.uuid4())
        number = next(fake._numbers)
        client_id = body.get("client_id", "")
        fake.prompts.append({"prompt_id": prompt_id, "client_id": client_id, "workflow": workflow})
        self.send_json(200, {"prompt_id": prompt_id, "number": number, "node_errors": {}})
        threading.Thread(
            target=fake._execute, args=(prompt_id, number, client_id, workflow, failure), daemon=True
        ).start()

    # --- /view and /upload/image ---

    def _view(self, query: dict[str, list[str]]) -> None:
        fake = self.comfy
        failure = fake.take_failure_at({"html", "view_status"})
        kind = failure["kind"] if failure else None
        if kind == "html":
            self.send_bytes(200, b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>",
                            content_type="text/html; charset=utf-8")  # fmt: skip
            return
        if kind == "view_status":
            self.send_error_json(failure["status"], "The fake ComfyUI could not read the file.")
            return
        filename = query.get("filename", [""])[0]
        subfolder = query.get("subfolder", [""])[0]
        folder_type = query.get("type", ["output"])[0]
        data = fake.files.get((folder_type, subfolder, filename))
        if data is None:
            self.send_bytes(404, b"404: Not Found", content_type="text/plain; charset=utf-8")
            return
        self.send_bytes(200, data, content_type="image/png")

    def _upload(self) -> None:
        fake = self.comfy
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self._record_request(raw)
        failure = fake.take_failure_at({"upload_status"})
        if failure:
            self.send_error_json(failure["status"], "The fake ComfyUI could not store the upload.")
            return
        content_type = self.headers.get("Content-Type", "")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields: dict[str, Any] = {}
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True), part.get_content_type())
        if "image" not in fields or not fields["image"][1]:
            self.send_bytes(400, b"", content_type="text/plain")
            return
        filename, data, mime = fields["image"]
        folder_type = (fields.get("type") or (None, b"input"))[1].decode() or "input"
        subfolder = (fields.get("subfolder") or (None, b""))[1].decode()
        fake.uploads.append({"filename": filename, "data": data, "content_type": mime, "type": folder_type})
        fake.files[(folder_type, subfolder, filename)] = data
        self.send_json(200, {"name": filename, "subfolder": subfolder, "type": folder_type})

    def _record_request(self, raw: bytes) -> None:
        self.fake._record(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "json": None,
                "raw": raw,
            }
        )

    # --- the websocket ---

    def _websocket(self, client_id: str) -> None:
        fake = self.comfy
        key = self.headers.get("Sec-WebSocket-Key", "")
        if fake.ws_reject_status:
            self.send_bytes(fake.ws_reject_status, b"refused", content_type="text/plain")
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()  # noqa: S324
        # Listening before the handshake is answered: the client queues its prompt as soon as it
        # has the 101, and the prompt's first messages must find this socket.
        outbox: queue.Queue = queue.Queue()
        client_id = client_id or uuid.uuid4().hex
        fake._sockets[client_id] = outbox
        self.close_connection = True
        conn = self.connection
        try:
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            self._ws_send({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                      "sid": client_id}})  # fmt: skip
            while not fake._stopping.is_set():
                readable, _, _ = select.select([conn], [], [], 0.02)
                if readable:
                    opcode, payload = _read_frame(conn)
                    if opcode == 0x8:  # close: answer it and end
                        self.wfile.write(_frame(payload[:2], 0x8))
                        self.wfile.flush()
                        return
                    if opcode == 0x9:
                        self.wfile.write(_frame(payload, 0xA))
                        self.wfile.flush()
                with contextlib.suppress(queue.Empty):
                    while True:
                        item = outbox.get_nowait()
                        if item is _CLOSE:
                            self.drop_connection()
                            return
                        self._ws_send(item)
        except CLIENT_GONE:
            return
        finally:
            fake._sockets.pop(client_id, None)

    def _ws_send(self, message: dict) -> None:
        self.wfile.write(_frame(json.dumps(message).encode()))
        self.wfile.flush()


class FakeComfyUIServer(FakeServer):
    """ComfyUI's ``/prompt``, ``/ws``, ``/history``, ``/view`` and ``/upload/image``.

    Settable: ``progress_steps`` (progress messages per prompt), ``step_delay``
    (seconds between them), ``delay``, ``ws_reject_status`` (refuse the
    websocket upgrade with this HTTP status). Records: ``requests``,
    ``prompts`` (``prompt_id``, ``client_id``, the filled ``workflow``),
    ``uploads``.
    """

    handler_class = _ComfyHandler
    failure_kinds: ClassVar[frozenset[str]] = frozenset(
        {"status", "bad_workflow", "execution_error", "no_outputs", "html", "view_status", "hang",
         "disconnect", "upload_status"}
    )  # fmt: skip

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.progress_steps = 4
        self.step_delay = 0.0
        self.ws_reject_status = 0
        self.prompts: list[dict] = []
        self.uploads: list[dict] = []
        self.history: dict[str, dict] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}
        self._sockets: dict[str, queue.Queue] = {}
        self._numbers = itertools.count(1)

    @property
    def base_url(self) -> str:
        return self.origin

    def reset(self) -> None:
        super().reset()
        self.prompts.clear()
        self.uploads.clear()

    def take_failure_at(self, kinds: frozenset[str] | set[str]) -> dict | None:
        """The first queued failure of one of ``kinds`` (consumes one); others stay queued."""
        with self._lock:
            for failure in self._failures:
                if failure["kind"] in kinds:
                    failure["times"] -= 1
                    if failure["times"] <= 0:
                        self._failures.remove(failure)
                    return dict(failure)
        return None

    def _send(self, client_id: str, message: Any) -> None:
        outbox = self._sockets.get(client_id)
        if outbox is not None:  # like ComfyUI: no socket, no messages
            outbox.put(message)

    def _execute(
        self, prompt_id: str, number: int, client_id: str, workflow: dict, failure: dict | None
    ) -> None:
        kind = failure["kind"] if failure else None
        stamp = lambda data: {**data, "prompt_id": prompt_id}  # noqa: E731
        self._send(
            client_id, {"type": "execution_start", "data": stamp({"timestamp": int(time.time() * 1000)})}
        )
        if kind == "hang":
            self._stopping.wait(failure["seconds"])
        sampler = next((n for n, node in workflow.items() if "seed" in node.get("inputs", {})), "3")
        self._send(
            client_id, {"type": "executing", "data": stamp({"node": sampler, "display_node": sampler})}
        )
        if kind == "execution_error":
            error = {
                "node_id": sampler,
                "node_type": "KSampler",
                "executed": [],
                "exception_message": "CUDA out of memory (fake)",
                "exception_type": "torch.OutOfMemoryError",
                "traceback": [],
                "current_inputs": {},
                "current_outputs": {},
                "timestamp": 0,
            }
            self._send(client_id, {"type": "execution_error", "data": stamp(error)})
            self.history[prompt_id] = {
                "prompt": [number, prompt_id, workflow, {}, []],
                "outputs": {},
                "status": {"status_str": "error", "completed": False, "messages": []},
            }
            return
        for step in range(1, self.progress_steps + 1):
            if self._stopping.wait(self.step_delay):
                return
            progress = {"value": step, "max": self.progress_steps, "node": sampler}
            self._send(client_id, {"type": "progress", "data": stamp(progress)})
            if kind == "disconnect" and step == 1:
                self._send(client_id, _CLOSE)
                return
        outputs: dict[str, Any] = {}
        if kind != "no_outputs":
            filename = f"companionhub_{number:05d}_.png"
            self.files[("output", "", filename)] = png_bytes(*self._size(workflow))
            save = next((n for n, node in workflow.items() if node.get("class_type") == "SaveImage"), "9")
            outputs[save] = {"images": [{"filename": filename, "subfolder": "", "type": "output"}]}
            self._send(client_id, {"type": "executed", "data": stamp({"node": save, "display_node": save,
                                                                      "output": outputs[save]})})  # fmt: skip
        self.history[prompt_id] = {
            "prompt": [number, prompt_id, workflow, {"client_id": client_id}, list(outputs)],
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": []},
            "meta": {},
        }
        self._send(client_id, {"type": "executing", "data": stamp({"node": None})})

    def _size(self, workflow: dict) -> tuple[int, int]:
        for node in workflow.values():
            if node.get("class_type") in ("EmptyLatentImage", "ImageScale"):
                inputs = node["inputs"]
                return int(inputs.get("width", 512)), int(inputs.get("height", 512))
        return 512, 512


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake ComfyUI until interrupted.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--step-delay", type=float, default=0.2, help="seconds between progress messages")
    args = parser.parse_args(argv)
    server = FakeComfyUIServer(args.host, args.port)
    server.step_delay = args.step_delay
    serve_until_interrupted(server, "Fake ComfyUI")


if __name__ == "__main__":
    main()
