"""The same chat open in two tabs: whatever one does, the other shows, without a reload."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import SEED_PAIR, bubbles, last, second_tab, seed, send
from tests.browser.test_journey import register

pytestmark = pytest.mark.browser

FIXED = "I am Ren, smiles and I love the sea."  # the reply corrected in place, as shown


def test_the_other_tab_follows_sends_rewrites_edits_and_deletes(chat):
    page, llm = chat
    errors: list[str] = []
    other = second_tab(page, errors)

    llm.set_reply("*smiles* Hello from Ren.")
    send(page, "*waves* Hi from the desktop")
    expect(last(other, "user").locator(".bubble-text")).to_have_text("waves Hi from the desktop")
    expect(last(other, "user").locator(".bubble-text em")).to_have_text("waves")
    expect(last(other, "assistant").locator(".bubble-text")).to_have_text("smiles Hello from Ren.")
    expect(other.get_by_role("button", name="Send")).to_be_enabled()

    llm.set_reply("A second take.")
    last(page, "assistant").hover()
    last(page, "assistant").get_by_role("button", name="Write this reply again").click()
    expect(last(other, "assistant").locator(".bubble-text")).to_have_text("A second take.")
    expect(bubbles(other, "assistant")).to_have_count(2)  # the greeting, and the reply in its own bubble
    last(other, "assistant").hover()
    expect(last(other, "assistant").get_by_role("button", name="Show the other version")).to_have_text(
        "Versions: 2"
    )

    llm.set_reply("Answer to the edit.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    last(page, "user").hover()
    last(page, "user").get_by_role("button", name="Edit your last message").click()
    page.get_by_label("Message to Ren").fill("Hello, edited")
    page.keyboard.press("Enter")
    expect(last(other, "user").locator(".bubble-text")).to_have_text("Hello, edited")
    expect(last(other, "assistant").locator(".bubble-text")).to_have_text("Answer to the edit.")
    expect(other.locator(".chat-log .bubble[data-message-id]")).to_have_count(3)  # with the greeting

    # And the other way round: the second tab sends, the first one shows it.
    expect(other.get_by_role("button", name="Send")).to_be_enabled()
    llm.set_reply("Seen on both.")
    other.get_by_label("Message to Ren").fill("From the phone")
    other.keyboard.press("Enter")
    expect(last(page, "user").locator(".bubble-text")).to_have_text("From the phone")
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("Seen on both.")

    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    last(page, "user").hover()
    delete = last(page, "user").get_by_role("button", name="Delete this message")
    delete.click()
    delete.click()
    expect(other.locator(".chat-log .bubble.user", has_text="From the phone")).to_have_count(0)
    assert not errors, errors


def test_the_other_tab_of_a_group_counts_the_new_version_and_drops_a_deleted_reply(
    page, live_site, fake_backends
):
    llm, _ = fake_backends
    llm.reset()
    llm.token_delay = 0
    errors: list[str] = []
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    group_id = seed(live_site, SEED_PAIR, username=name)
    page.goto(f"/groups/{group_id}/")
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))
    other = second_tab(page, errors)

    llm.set_reply("First version from Rin.")
    page.get_by_label("Message to Pair").fill("Rin, how was your day?")
    page.keyboard.press("Enter")
    expect(last(other, "user").locator(".bubble-text")).to_have_text("Rin, how was your day?")
    reply = last(other, "assistant")
    expect(reply.locator(".bubble-text")).to_have_text("First version from Rin.", timeout=30_000)
    expect(reply.locator(".sender-name")).to_have_text("Rin")
    expect(page.locator("[data-send]")).to_be_enabled(timeout=30_000)

    llm.set_reply("Second version from Rin.")
    last(page, "assistant").hover()
    last(page, "assistant").get_by_role("button", name="Write this reply again").click()
    expect(reply.locator(".bubble-text")).to_have_text("Second version from Rin.", timeout=30_000)
    expect(bubbles(other, "assistant")).to_have_count(1)
    expect(other.locator("[data-send]")).to_be_enabled(timeout=30_000)
    reply.hover()
    expect(reply.get_by_role("button", name="Show the other version")).to_have_text("Versions: 2")

    # Deleting the reply in one tab takes it out of both, and out of the server's page.
    last(page, "assistant").hover()
    delete = last(page, "assistant").get_by_role("button", name="Delete this message")
    delete.click()
    expect(delete).to_have_text("Delete?")
    delete.click()
    expect(bubbles(other, "assistant")).to_have_count(0)
    expect(bubbles(page, "assistant")).to_have_count(0)
    other.reload()
    expect(bubbles(other, "assistant")).to_have_count(0)
    expect(bubbles(other, "user")).to_have_count(1)
    assert not errors, errors


def test_an_edit_overtaken_by_another_tab_keeps_the_draft_and_says_so(chat):
    page, llm = chat
    errors: list[str] = []
    llm.set_reply("Fine.")
    send(page, "First try")
    other = second_tab(page, errors)

    last(page, "user").hover()
    last(page, "user").get_by_role("button", name="Edit your last message").click()
    page.get_by_label("Message to Ren").fill("First try, fixed")
    other.get_by_label("Message to Ren").fill("Meanwhile, on the phone")
    other.keyboard.press("Enter")

    expect(last(page, "user").locator(".bubble-text")).to_have_text("Meanwhile, on the phone")
    expect(page.locator("[data-error]")).to_contain_text("changed in another tab")
    expect(page.get_by_label("Message to Ren")).to_have_value("First try, fixed")  # nothing typed is lost
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=20_000)
    expect(page.get_by_role("button", name="Send")).to_have_text("Send")  # no longer editing
    expect(bubbles(page, "user")).to_have_count(2)
    assert not errors, errors


def test_a_companion_message_corrected_in_place_shows_in_both_tabs(chat):
    """Edit a reply (not yours): nothing is written again, both tabs show the new words as edited."""
    page, llm = chat
    errors: list[str] = []
    llm.set_reply("I am Ren, *smiles* and I love the see.")
    send(page, "Who are you?")
    other = second_tab(page, errors)
    streams = sum(1 for r in llm.requests if (r["json"] or {}).get("stream"))

    page.get_by_label("Message to Ren").fill("Half a thought")  # a message being written waits
    reply = last(page, "assistant")
    reply.hover()
    reply.get_by_role("button", name="Edit this message").click()
    # The reply's words as written, asterisks and all; saving corrects it (no resend on offer).
    expect(page.get_by_label("Message to Ren")).to_have_value("I am Ren, *smiles* and I love the see.")
    expect(page.locator("[data-send]")).to_have_text("Save")
    expect(page.get_by_role("button", name="Save only")).to_be_hidden()
    page.get_by_label("Message to Ren").fill("I am Ren, *smiles* and I love the sea.")
    page.keyboard.press("Enter")

    for tab in (page, other):
        fixed = last(tab, "assistant")
        expect(fixed.locator(".bubble-text")).to_have_text(FIXED)
        expect(fixed.locator(".bubble-text em")).to_have_text("smiles")
        expect(fixed.locator("[data-edited-mark]")).to_have_text("edited")
        expect(last(tab, "user").locator(".bubble-text")).to_have_text("Who are you?")  # untouched
        expect(last(tab, "user").locator("[data-edited-mark]")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_have_text("Send")
    expect(page.get_by_label("Message to Ren")).to_have_value("Half a thought")
    # Corrected, not answered again: no new request reached the model, no new bubble.
    assert sum(1 for r in llm.requests if (r["json"] or {}).get("stream")) == streams
    expect(bubbles(other, "assistant")).to_have_count(2)

    # The greeting too can be corrected (it is a message like any other), from the other tab.
    greeting = bubbles(other, "assistant").first
    greeting.hover()
    greeting.get_by_role("button", name="Edit this message").click()
    other.get_by_label("Message to Ren").fill("Hi! *waves* Welcome back.")
    other.get_by_role("button", name="Save", exact=True).click()
    expect(bubbles(page, "assistant").first.locator(".bubble-text")).to_have_text("Hi! waves Welcome back.")
    expect(bubbles(page, "assistant").first.locator("[data-edited-mark]")).to_be_visible()

    # Your last message corrected without a new answer: "Save only".
    mine = last(page, "user")
    mine.hover()
    mine.get_by_role("button", name="Edit your last message").click()
    expect(page.locator("[data-send]")).to_have_text("Save and resend")
    page.get_by_label("Message to Ren").fill("Who are you, really?")
    page.get_by_role("button", name="Save only").click()
    expect(last(other, "user").locator(".bubble-text")).to_have_text("Who are you, really?")
    expect(last(other, "assistant").locator(".bubble-text")).to_have_text(FIXED)
    assert sum(1 for r in llm.requests if (r["json"] or {}).get("stream")) == streams

    # The server kept it all.
    page.reload()
    expect(bubbles(page).locator(".bubble-text")).to_have_text(
        ["Hi! waves Welcome back.", "Who are you, really?", FIXED]
    )
    expect(bubbles(page).locator("[data-edited-mark]")).to_have_count(3)
    assert not errors, errors
