"""``manage.py chat``, the reference client, against the real site: Daphne with its worker, the fake LLM."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest

from chat.management.commands.chat import AudioSaver, Command
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import SiteFailed, run_site, site_env

SETUP = """
from accounts.models import User
from accounts.tokens import token_create
from tests.companions.factories import make_companion
user = User.objects.create_user(username="cli", email="cli@example.com", password="x-cli-password-1")
companion = make_companion(user, name="Mika")
_, secret = token_create(user=user, name="terminal")
print(companion.pk, secret)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with FakeLLMServer() as llm:
        llm.set_reply("*waves* Hello from the terminal.")
        var = tmp_path_factory.mktemp("cli-site")
        env = site_env({"LLM_BASE_URL": llm.base_url, "LLM_MODEL": "fake-model"}, var_dir=var)
        with run_site(env, var_dir=var) as running:
            companion_id, secret = running.manage("shell", "-c", SETUP).split()[-2:]
            yield running, companion_id, secret


def test_one_message_streams_the_reply_and_its_cost(site):
    running, companion_id, secret = site
    out = running.manage("chat", companion_id, "--url", running.ws_url, "--token", secret, "--message", "Hi")
    assert "Connected to Mika" in out
    assert "*waves* Hello from the terminal." in out
    assert "[done: " in out and " tokens]" in out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--token", "chk_not-a-real-token"], "Could not connect"),
        (["--token", "x", "--url", "http://127.0.0.1:1"], "must start with ws:// or wss://"),
    ],
)
def test_a_bad_token_or_url_is_a_clear_error(site, args, said):
    running, companion_id, _ = site
    with pytest.raises(SiteFailed, match=said):
        running.manage("chat", companion_id, "--url", running.ws_url, *args, "--message", "Hi")


def test_another_users_companion_cannot_be_reached(site):
    running, companion_id, secret = site
    with pytest.raises(SiteFailed, match="Could not connect"):
        running.manage("chat", str(int(companion_id) + 1000), "--url", running.ws_url, "--token", secret)


def test_a_message_sent_elsewhere_is_shown_once_and_its_own_are_not_echoed():
    out = StringIO()
    command = Command(stdout=out)
    frames = [
        {"type": "message.accepted", "client_id": "c", "message_id": 1, "run_id": "mine"},
        {"type": "turn.started", "run_id": "mine", "kind": "send",
         "user_message": {"id": 1, "content": "typed here", "created_at": "…"}, "reply_id": None},
        {"type": "token", "run_id": "mine", "text": "Hi.", "offset": 0},
        {"type": "turn.started", "run_id": "theirs", "kind": "send",
         "user_message": {"id": 3, "content": "typed on the phone", "created_at": "…"}, "reply_id": None},
        {"type": "done", "run_id": "theirs", "message_id": 4,
         "usage": {"prompt_tokens": 5, "completion_tokens": 2, "estimated": False}, "finish_reason": "stop"},
    ]  # fmt: skip
    command._read([json.dumps(f) for f in frames], threading.Event(), once=True)
    text = out.getvalue()
    assert "typed here" not in text
    assert text.count("[from another tab, send: typed on the phone]") == 1
    assert "[done: 5+2 tokens]" in text


# --- --save-audio: a reply's clips, fetched with the token, saved in index order ---


class _ClipServer(BaseHTTPRequestHandler):
    """The site's clip URLs as the client sees them: owner-only (the token), WAV bytes."""

    token = "chk_clip-test"
    fetched: list[str] = []

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(404)
            self.end_headers()
            return
        _ClipServer.fetched.append(self.path)
        body = b"RIFF" + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def clip_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClipServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _ClipServer.fetched = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _audio(index: int, *, last: bool = False, url: str | None = None) -> dict:
    return {"type": "audio", "run_id": "mine", "message_id": 4, "index": index,
            "url": url or f"/chat/audio/{10 + index}/", "duration_ms": 900, "last": last}  # fmt: skip


DONE = {
    "type": "done",
    "run_id": "mine",
    "message_id": 4,
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "estimated": False},
    "finish_reason": "stop",
}


def _client(tmp_path, base: str, token: str = _ClipServer.token) -> tuple[Command, StringIO]:
    out = StringIO()
    command = Command(stdout=out)
    command.audio = AudioSaver(tmp_path / "clips", base, token)
    return command, out


def test_save_audio_saves_the_clips_in_index_order_with_the_token(tmp_path, clip_server):
    command, out = _client(tmp_path, clip_server)
    frames = [_audio(2, last=True), DONE, _audio(0), _audio(1)]  # clips in any order, some after "done"
    done = threading.Event()
    command._read([json.dumps(f) for f in frames], done, once=True)
    assert done.is_set()
    files = sorted((tmp_path / "clips").iterdir())
    assert [f.name for f in files] == ["reply-4-000.wav", "reply-4-001.wav", "reply-4-002.wav"]
    assert [f.read_bytes() for f in files] == [
        b"RIFF/chat/audio/10/",
        b"RIFF/chat/audio/11/",
        b"RIFF/chat/audio/12/",
    ]
    assert _ClipServer.fetched == ["/chat/audio/10/", "/chat/audio/11/", "/chat/audio/12/"]
    assert "[audio: 3 clips saved" in out.getvalue()


def test_save_audio_reports_a_clip_it_may_not_fetch(tmp_path, clip_server):
    command, out = _client(tmp_path, clip_server, token="chk_someone-else")
    command._read([json.dumps(_audio(0, last=True))], threading.Event(), once=True)
    assert "could not fetch /chat/audio/10/: HTTP 404" in out.getvalue()
    assert not (tmp_path / "clips").exists() or not list((tmp_path / "clips").iterdir())


def test_save_audio_never_sends_the_token_off_the_site(tmp_path, clip_server):
    command, out = _client(tmp_path, clip_server)
    command._read([json.dumps(_audio(0, last=True, url="//evil.example/x"))], threading.Event(), once=True)
    assert "refusing to fetch a clip from outside the site" in out.getvalue()
    assert _ClipServer.fetched == []


def test_a_failed_voice_is_reported_and_ends_the_wait_for_clips(tmp_path, clip_server):
    command, out = _client(tmp_path, clip_server)
    failed = {
        "type": "error",
        "code": "audio_failed",
        "message": "The voice failed.",
        "run_id": "mine",
        "message_id": 4,
    }
    done = threading.Event()
    command._read([json.dumps(DONE), json.dumps(failed)], done, once=True)
    assert done.is_set()
    assert "[voice failed, text only: The voice failed.]" in out.getvalue()
