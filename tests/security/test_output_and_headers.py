"""Untrusted text stays text, and every response carries the security headers."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from chat import conversations
from tests.chat.factories import add_exchange, make_chat, make_group_of
from tests.companions.factories import make_companion

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "[click](javascript:alert(3))",
    '"><svg onload=alert(4)>',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_user_text_names_and_model_output_render_as_text(client, user, payload):
    companion = make_companion(user, name=payload[:50], greeting=payload, current_action=payload[:200])
    greeted = conversations.conversation_start(user=user, companion=companion)  # the greeting
    chat = make_chat(companion, title=payload[:100])
    add_exchange(chat, companion, payload, f"*{payload}*", reasoning=payload)
    group = make_group_of(user, [companion, make_companion(user, name="Rin")], title=payload[:100])
    add_exchange(group, companion, payload, f"*{payload}*")
    client.force_login(user)
    for url in (
        reverse("chat:page", args=[companion.pk]),
        reverse("chat:conversation", args=[greeted.pk]),
        reverse("chat:chats", args=[companion.pk]),
        reverse("companions:list"),
        reverse("companions:detail", args=[companion.pk]),
        reverse("groups:list"),
        reverse("groups:page", args=[group.pk]),
        reverse("groups:edit", args=[group.pk]),
        reverse("chat:delete", args=[chat.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html and "<svg onload" not in html, url
        assert 'href="javascript:' not in html, url
    # The page's snapshot for the script is JSON inside a json_script tag: no closing tag can break out.
    for url in (reverse("chat:page", args=[companion.pk]), reverse("groups:page", args=[group.pk])):
        page = client.get(url).content.decode()
        snapshot = re.search(r'<script id="chat-snapshot" type="application/json">(.*?)</script>', page, re.S)
        assert snapshot and "</script" not in snapshot.group(1).lower()
        assert payload[:10] in json.loads(snapshot.group(1))["conversation"]["title"]


def test_the_chat_script_never_uses_inner_html():
    from pathlib import Path

    modules = sorted((Path(__file__).resolve().parents[2] / "static" / "js" / "chat").glob("*.js"))
    assert modules
    for module in modules:
        script = module.read_text()
        assert "innerHTML" not in script and "insertAdjacentHTML" not in script, module.name
        assert "eval(" not in script and "new Function" not in script, module.name


def check_headers(response):
    csp = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "img-src 'self'"):
        assert directive in csp
    # Scripts only from our origin; Django adds a nonce when a page has an inline script.
    assert re.search(r"script-src 'self'( 'nonce-[\w+/=-]+')?;", csp)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_pages_carry_the_security_headers(client):
    check_headers(client.get(reverse("home")))


def test_json_responses_carry_them_too(client, user):
    chat = make_chat(make_companion(user))
    client.force_login(user)
    response = client.get(reverse("chat:older", args=[chat.pk]), {"before": 1})
    assert response["Content-Type"] == "application/json"
    check_headers(response)


def test_session_cookie_is_httponly_and_lax(client, user):
    response = client.post(
        reverse("accounts:login"), {"username": "alice", "password": "correct-horse-battery-staple"}
    )
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_forms_carry_csrf_tokens(client, user):
    client.force_login(user)
    for url in (reverse("accounts:profile"), reverse("companions:wizard_start")):
        response = client.get(url, follow=True)
        assert b"csrfmiddlewaretoken" in response.content
