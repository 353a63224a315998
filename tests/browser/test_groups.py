"""A group chat as a new user meets it: two companions, one message, both replies stream in, named."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.browser.test_journey import create_companion, register

pytestmark = pytest.mark.browser

REPLY = "Hi there! *smiles* A picnic sounds perfect, I'll bring the lemonade and some sandwiches."


def test_create_a_group_and_watch_both_companions_reply(page, fake_backends):
    llm, _ = fake_backends
    llm.reset()
    llm.set_reply(REPLY)
    llm.completion_text = (
        '{"outfit": "summer dress", "location": "in the park", "action": "unpacking a basket"}'
    )
    llm.token_delay = 0.04
    register(page, f"u{uuid.uuid4().hex[:8]}", screenshots=False)
    create_companion(page, "Mika", screenshots=False)
    create_companion(page, "Rin", screenshots=False)

    page.get_by_role("link", name="Groups").click()
    page.get_by_role("link", name="+ New group").click()
    page.get_by_label("Title").fill("Picnic crew")
    page.get_by_label("Mika").check()
    page.get_by_label("Rin").check()
    page.get_by_role("button", name="Create group").click()

    expect(page.locator(".chat-title")).to_have_text("Picnic crew")
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))
    page.get_by_label("Message to Picnic crew").fill("Rin, shall we have a picnic?")
    page.keyboard.press("Enter")
    expect(page.locator(".chat-log .bubble.user").last).to_contain_text("shall we have a picnic?")

    replies = page.locator(".chat-log .bubble.assistant:not(.greeting)")
    # Rin was named, so Rin answers first; the words stream in under the name.
    expect(replies.first.locator(".sender-name")).to_have_text("Rin")
    expect(page.locator(".chat-log .bubble.streaming")).to_be_visible()
    shoot(page, "group-streaming-desktop")
    expect(replies).to_have_count(2, timeout=30_000)
    expect(replies.nth(1).locator(".sender-name")).to_have_text("Mika")
    plain = re.sub(r"\*([^*]+)\*", r"\1", REPLY)
    for n in range(2):
        expect(replies.nth(n).locator(".bubble-text")).to_have_text(plain, timeout=30_000)
    expect(page.locator("[data-run]")).to_be_hidden(timeout=30_000)
    expect(page.locator("[data-send]")).to_be_enabled()
    for state in page.locator("[data-companion-state]").all():
        expect(state.locator('[data-state="location"]')).to_have_text("in the park")
    shoot(page, "group-done-desktop")

    # After a reload the conversation is still there, from the server, names and all.
    page.reload()
    expect(page.locator(".chat-log .bubble.assistant .sender-name")).to_have_text(["Rin", "Mika"])


def test_an_imported_card_joins_a_group_and_both_companions_reply(page, fake_backends):
    """The issue's walk: import a card, chat with it, add it to a group with another companion."""
    from tests.companions.test_cards import b64, card_png, v2_card

    llm, _ = fake_backends
    llm.reset()
    llm.set_reply(REPLY)
    llm.completion_text = '{"outfit": "a green robe", "location": "in the glade", "action": "waving"}'
    llm.token_delay = 0.0
    register(page, f"u{uuid.uuid4().hex[:8]}", screenshots=False)
    create_companion(page, "Mika", screenshots=False)

    page.goto("/companions/import/")
    page.get_by_label("Character card").set_input_files(
        {"name": "seraphina.png", "mimeType": "image/png", "buffer": card_png({"chara": b64(v2_card())})}
    )
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".chat-title")).to_have_text("Seraphina")
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Connected|Online", re.I))
    page.get_by_label("Message to Seraphina").fill("Hello, Seraphina.")
    page.keyboard.press("Enter")
    plain = re.sub(r"\*([^*]+)\*", r"\1", REPLY)
    reply = page.locator(".chat-log .bubble.assistant:not(.greeting)").last.locator(".bubble-text")
    expect(reply).to_have_text(plain, timeout=30_000)

    page.get_by_role("link", name="Groups").click()
    page.get_by_role("link", name="+ New group").click()
    page.get_by_label("Title").fill("Glade and town")
    page.get_by_label("Seraphina").check()
    page.get_by_label("Mika").check()
    page.get_by_role("button", name="Create group").click()
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))
    page.get_by_label("Message to Glade and town").fill("Seraphina, meet Mika!")
    page.keyboard.press("Enter")

    replies = page.locator(".chat-log .bubble.assistant:not(.greeting)")
    expect(replies).to_have_count(2, timeout=30_000)
    expect(replies.locator(".sender-name")).to_have_text(["Seraphina", "Mika"])  # the one named goes first
    for n in range(2):
        expect(replies.nth(n).locator(".bubble-text")).to_have_text(plain, timeout=30_000)
    # The card's words reach the group prompt too.
    group_prompts = [
        r["json"]["messages"][0]["content"] for r in llm.requests if (r["json"] or {}).get("stream")
    ]
    assert any("Scenario:" in p and "group" in p.lower() for p in group_prompts)
