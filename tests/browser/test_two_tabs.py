"""The same chat open in two tabs: whatever one does, the other shows, without a reload."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_actions import last, send
from tests.browser.test_groups import SEED_PAIR
from tests.browser.test_journey import register

pytestmark = pytest.mark.browser


def second_tab(page, errors: list[str]):
    other = page.context.new_page()
    other.set_default_timeout(15_000)
    other.on("pageerror", lambda exc: errors.append(str(exc)))
    other.goto(page.url)
    expect(other.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))
    return other


def bubbles(page, role):
    return page.locator(f".chat-log .bubble.{role}[data-message-id]")


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
    expect(bubbles(other, "assistant")).to_have_count(1)  # written into the same bubble
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
    expect(other.locator(".chat-log .bubble[data-message-id]")).to_have_count(2)

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
    group_id = live_site.manage("shell", "-c", SEED_PAIR.format(username=name)).split()[-1]
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
