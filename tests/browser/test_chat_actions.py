"""The chat's everyday tools in Chromium: versions, edit, copy, delete, continue, limits, reconnect."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import last, send

pytestmark = pytest.mark.browser


def test_regenerate_then_flip_back_edit_copy_and_delete(chat):
    page, llm = chat
    llm.set_reply("First version.")
    send(page, "Hi")
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("First version.")

    llm.set_reply("Second version.")
    last(page, "assistant").hover()
    last(page, "assistant").get_by_role("button", name="Write this reply again").click()
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("Second version.")
    versions = last(page, "assistant").get_by_role("button", name="Show the other version")
    expect(versions).to_have_text("Versions: 2")
    versions.click()
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("First version.")

    llm.set_reply("*smiles* Answer to the edit.")
    last(page, "user").hover()
    last(page, "user").get_by_role("button", name="Edit your last message").click()
    expect(page.get_by_label("Message to Ren")).to_have_value("Hi")
    expect(page.locator("[data-send]")).to_have_text("Save and resend")
    page.get_by_label("Message to Ren").fill("*waves* Hello again")
    page.keyboard.press("Enter")
    expect(last(page, "user").locator(".bubble-text")).to_have_text("waves Hello again")
    expect(last(page, "user").locator(".bubble-text em")).to_have_text("waves")
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("smiles Answer to the edit.")
    # Editing again starts from what was written, asterisks and all, not from what is shown.
    last(page, "user").hover()
    last(page, "user").get_by_role("button", name="Edit your last message").click()
    expect(page.get_by_label("Message to Ren")).to_have_value("*waves* Hello again")
    page.keyboard.press("Escape")
    expect(page.get_by_label("Message to Ren")).to_have_value("")
    expect(page.get_by_role("button", name="Send")).to_have_text("Send")
    # The greeting, the edited message and the answer to it: the first answer went.
    expect(page.locator(".chat-log .bubble[data-message-id]")).to_have_count(3)
    expect(last(page, "user").locator("[data-edited-mark]")).to_have_text("edited")

    last(page, "assistant").hover()
    last(page, "assistant").get_by_role("button", name="Copy this message").click()
    expect(last(page, "assistant").get_by_role("button", name="Copy this message")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "*smiles* Answer to the edit."

    user_bubble = last(page, "user")
    user_bubble.hover()
    delete = user_bubble.get_by_role("button", name="Delete this message")
    delete.click()
    expect(delete).to_have_text("Delete?")
    delete.click()
    expect(page.locator(".chat-log .bubble.user")).to_have_count(0)
    page.reload()
    expect(page.locator(".chat-log .bubble.user")).to_have_count(0)  # gone on the server too


def test_a_cut_reply_can_be_continued(chat):
    page, llm = chat
    # *Emphasis* is shown as italics but the server counts offsets in the text as
    # written: continuing must pick up from the latter.
    llm.set_reply("*leans in* " + " ".join(f"w{i}" for i in range(420)))  # over the 400-token default
    send(page, "Tell me everything")
    continue_button = page.get_by_role("button", name="Continue the reply")
    expect(continue_button).to_be_visible()
    body = last(page, "assistant").locator(".bubble-text")
    cut = body.inner_text()
    llm.set_reply(" and *winks* that is all.")
    continue_button.click()
    expect(body).to_have_text(cut + " and winks that is all.")
    expect(body.locator("em")).to_have_text(["leans in", "winks"])
    expect(continue_button).to_be_hidden()
    live = body.inner_html()
    page.reload()
    assert last(page, "assistant").locator(".bubble-text").inner_html() == live


def test_going_over_the_message_limit_says_so_and_keeps_the_text(chat):
    page, llm = chat
    llm.set_reply("ok")
    for n in range(12):
        send(page, f"message {n}")
    page.get_by_label("Message to Ren").fill("one too many")
    page.keyboard.press("Enter")
    expect(page.locator("[data-error]")).to_contain_text("faster than we allow")
    expect(page.get_by_label("Message to Ren")).to_have_value("one too many")  # nothing typed is lost
    expect(page.locator(".chat-log .bubble.user", has_text="one too many")).to_have_count(0)


def test_a_dropped_socket_reconnects_by_itself(chat, live_site):
    page, llm = chat
    live_site.stop_server()  # while it is down the page cannot reconnect, so the drop is visible
    try:
        expect(page.locator("[data-connection]")).to_have_text(re.compile("reconnecting", re.I))
    finally:
        live_site.start_server()
    expect(page.locator("[data-connection]")).to_have_text("Online", timeout=30_000)
    llm.set_reply("Still here.")
    send(page, "Are you back?")
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("Still here.")


def test_emoji_in_a_streamed_reply_do_not_garble_it(chat):
    # The server counts offsets in code points, the page's strings in UTF-16 units: an emoji early
    # in a reply must not shift every later batch of tokens.
    page, llm = chat
    llm.token_delay = 0.02  # many small batches, each placed by its offset
    words = " ".join(f"w{i}" for i in range(30))
    llm.set_reply(f"Hi 😊 there! *waves* 🌊🌊 {words} 🎉")
    send(page, "Say hi with emoji")
    body = last(page, "assistant").locator(".bubble-text")
    expect(body).to_have_text(f"Hi 😊 there! waves 🌊🌊 {words} 🎉")
    live = body.inner_html()
    page.reload()
    assert last(page, "assistant").locator(".bubble-text").inner_html() == live
