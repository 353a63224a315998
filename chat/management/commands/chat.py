"""``manage.py chat <companion_id> --token …``: the reference websocket client.

Connects like any third-party program would (API token, Origin header),
streams the reply to the terminal, and shows the protocol in ~100 lines.
``--save-audio DIR`` also saves each reply's spoken clips ("audio" events),
fetched over HTTP with the same token, as files in index order.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import uuid
from argparse import ArgumentParser
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from django.core.management.base import BaseCommand, CommandError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

# How long a reply's first clip may take after its text is done before --message gives up on it
# (a companion without a voice sends none).
AUDIO_WAIT_SECONDS = 60
CLIP_MAX_BYTES = 20 * 1024 * 1024
# The close codes a refused socket gets right after its handshake (docs/websocket.md).
REFUSALS = {
    4401: "not signed in (is --token right?)",
    4404: "no such companion for this token",
    4429: "too many open sockets for this account",
}
EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/webm": "webm",
    "audio/flac": "flac",
    "audio/aac": "aac",
}


class AudioSaver:
    """A reply's clips, gathered as their events come (in any order) and saved in index order.

    ``base`` is the site's http(s) origin; clips are fetched with the token's
    ``Authorization: Bearer`` header, and only from the site's own paths.
    """

    def __init__(self, directory: Path, base: str, token: str) -> None:
        self.directory = directory
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.clips: dict[int, dict[int, str]] = {}  # message id -> {index: url}
        self.last: dict[int, int] = {}
        self.finished: set[int] = set()  # replies saved, or whose voice failed

    def add(self, event: dict[str, Any]) -> list[Path] | None:
        """Note one "audio" event; the files once the reply's clips are all here, else None."""
        message_id, index, url = event.get("message_id"), event.get("index"), event.get("url")
        if not isinstance(message_id, int) or not isinstance(index, int) or not isinstance(url, str):
            return None
        if not url.startswith("/") or url.startswith("//"):
            raise CommandError(f"refusing to fetch a clip from outside the site: {url!r}")
        self.clips.setdefault(message_id, {})[index] = url
        if event.get("last"):
            self.last[message_id] = index
        have = self.clips[message_id]
        if message_id not in self.last or len(have) <= self.last[message_id]:
            return None
        return self.save(message_id)

    def save(self, message_id: int) -> list[Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        saved = []
        for index, url in sorted(self.clips.pop(message_id).items()):
            response = self.session.get(self.base + url, timeout=30)
            if response.status_code != 200:
                raise CommandError(f"could not fetch {url}: HTTP {response.status_code}")
            if len(response.content) > CLIP_MAX_BYTES:
                raise CommandError(f"{url} is larger than {CLIP_MAX_BYTES} bytes")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            path = self.directory / f"reply-{message_id}-{index:03d}.{EXTENSIONS.get(kind, 'audio')}"
            path.write_bytes(response.content)
            saved.append(path)
        self.finished.add(message_id)
        return saved


class Command(BaseCommand):
    help = "Chat with a companion over the websocket protocol (docs/websocket.md)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("companion_id", type=int)
        parser.add_argument(
            "--url", default="ws://127.0.0.1:8000", help="ws:// or wss:// base URL of the site"
        )
        parser.add_argument("--token", required=True, help="a personal API token (profile page)")
        parser.add_argument("--message", help="send this one message, print the reply, and exit")
        parser.add_argument(
            "--save-audio",
            metavar="DIR",
            help="save each reply's spoken clips in DIR (reply-<message id>-<index>.<ext>)",
        )

    def handle(
        self,
        *args: Any,
        companion_id: int,
        url: str,
        token: str,
        message: str | None,
        save_audio: str | None = None,
        **options: Any,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise CommandError("--url must start with ws:// or wss://")
        site = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
        self.audio = AudioSaver(Path(save_audio), site, token) if save_audio else None
        origin = Origin(f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}")
        endpoint = f"{url.rstrip('/')}/ws/chat/{companion_id}/"
        try:
            socket = connect(
                endpoint,
                origin=origin,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=10,
            )
        except (InvalidStatus, OSError) as exc:
            raise CommandError(f"Could not connect to {endpoint}: {exc}") from exc
        try:
            first = socket.recv(timeout=30)  # the snapshot, or the refusal's close code
        except (ConnectionClosed, TimeoutError) as exc:
            socket.close()
            code = exc.rcvd.code if isinstance(exc, ConnectionClosed) and exc.rcvd else None
            reason = REFUSALS.get(code or 0, f"closed ({code})" if code else "no snapshot")
            raise CommandError(f"Could not connect to {endpoint}: {reason}") from exc
        done = threading.Event()
        with socket:
            reader = threading.Thread(
                target=self._read,
                args=(itertools.chain([first], socket), done, message is not None),
                daemon=True,
            )
            reader.start()
            if message is not None:
                self._send(socket, message)
                done.wait(timeout=600)
                return
            self.stdout.write(
                "Type a message and press Enter. '/image …' asks for a picture, '/quit' leaves."
            )
            for line in sys.stdin:
                line = line.strip()
                if line == "/quit" or done.is_set():
                    break
                if line:
                    self._send(socket, line)

    def _send(self, socket: ClientConnection, line: str) -> None:
        want_image = line.startswith("/image")
        content = line.removeprefix("/image").strip() if want_image else line
        frame = {
            "type": "message.send",
            "content": content,
            "image": want_image,
            "client_id": uuid.uuid4().hex,
        }
        socket.send(json.dumps(frame))

    audio: AudioSaver | None = None

    def _read(self, socket: Iterable[str | bytes], done: threading.Event, once: bool) -> None:
        out = self.stdout
        reply = ""
        mine: set[str] = set()  # runs this client started: their "turn.started" needs no echo
        waiting_for: int | None = None  # --message: the reply whose clips are still to come
        try:
            for raw in socket:
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "audio" and self.audio is not None:
                    saved = self.audio.add(event)
                    if saved:
                        out.write(f"\n[audio: {len(saved)} clips saved: {', '.join(p.name for p in saved)}]")
                    if once and waiting_for is not None and waiting_for in self.audio.finished:
                        done.set()
                        return
                elif kind == "error" and event.get("code") == "audio_failed":
                    out.write(self.style.WARNING(f"\n[voice failed, text only: {event.get('message', '')}]"))
                    if self.audio is not None and isinstance(event.get("message_id"), int):
                        self.audio.finished.add(event["message_id"])
                        if once and waiting_for == event["message_id"]:
                            done.set()
                            return
                elif kind == "message.accepted":
                    mine.add(event["run_id"])
                elif kind == "turn.started" and event["run_id"] not in mine:
                    said = event["user_message"]["content"]
                    out.write(f"\n[from another tab, {event['kind']}: {said}]")
                    reply = ""
                elif kind == "snapshot":
                    state = event["companion"]["state"]
                    out.write(
                        f"Connected to {event['companion']['name']} — {state['action']}, {state['location']}."
                    )
                elif kind == "token":
                    reply = reply[: event["offset"]] + event["text"]
                    out.write(event["text"], ending="")
                    out.flush()
                elif kind == "state":
                    out.write(f"\n[now: {event['outfit']}; {event['location']}; {event['action']}]")
                elif kind == "image":
                    out.write(f"[picture: {event['url']}]")
                elif kind == "done":
                    usage = event["usage"]
                    out.write(f"[done: {usage['prompt_tokens']}+{usage['completion_tokens']} tokens]")
                    reply = ""
                    if once and self.audio is not None and event["message_id"] not in self.audio.finished:
                        waiting_for = event["message_id"]  # its clips may still be on their way
                        threading.Timer(AUDIO_WAIT_SECONDS, self._gave_up, (waiting_for, done)).start()
                    elif once:
                        done.set()
                        return
                elif kind == "error":
                    out.write(self.style.ERROR(f"\n[error {event['code']}: {event['message']}]"))
                    if once and event.get("code") != "image_failed":
                        done.set()
                        return
        except CommandError as exc:
            out.write(self.style.ERROR(f"\n[audio: {exc}]"))
        except ConnectionClosed as exc:
            out.write(self.style.WARNING(f"\n[connection closed: {exc.rcvd.code if exc.rcvd else '?'}]"))
        finally:
            done.set()

    def _gave_up(self, message_id: int, done: threading.Event) -> None:
        """--message: no clip of the reply came in time (its companion may have no voice)."""
        if self.audio is not None and not self.audio.clips.get(message_id):
            self.stdout.write(self.style.WARNING("\n[audio: none came for this reply]"))
            done.set()
