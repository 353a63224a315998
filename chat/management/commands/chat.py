"""``manage.py chat <companion_id> --token …``: the reference websocket client.

Connects like any third-party program would (API token, Origin header),
streams the reply to the terminal, and shows the protocol in ~100 lines.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from argparse import ArgumentParser
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin


class Command(BaseCommand):
    help = "Chat with a companion over the websocket protocol (docs/websocket.md)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("companion_id", type=int)
        parser.add_argument(
            "--url", default="ws://127.0.0.1:8000", help="ws:// or wss:// base URL of the site"
        )
        parser.add_argument("--token", required=True, help="a personal API token (profile page)")
        parser.add_argument("--message", help="send this one message, print the reply, and exit")

    def handle(
        self, *args: Any, companion_id: int, url: str, token: str, message: str | None, **options: Any
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise CommandError("--url must start with ws:// or wss://")
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
        done = threading.Event()
        with socket:
            reader = threading.Thread(
                target=self._read, args=(socket, done, message is not None), daemon=True
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

    def _read(self, socket: ClientConnection, done: threading.Event, once: bool) -> None:
        out = self.stdout
        reply = ""
        mine: set[str] = set()  # runs this client started: their "turn.started" needs no echo
        try:
            for raw in socket:
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "message.accepted":
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
                    if once:
                        done.set()
                        return
                elif kind == "error":
                    out.write(self.style.ERROR(f"\n[error {event['code']}: {event['message']}]"))
                    if once and event.get("code") != "image_failed":
                        done.set()
                        return
        except ConnectionClosed as exc:
            out.write(self.style.WARNING(f"\n[connection closed: {exc.rcvd.code if exc.rcvd else '?'}]"))
        finally:
            done.set()
