"""``manage.py chat``, the reference client, against the real site: Daphne with its worker, the fake LLM."""

from __future__ import annotations

import json
import threading
from io import StringIO

import pytest

from chat.management.commands.chat import Command
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
