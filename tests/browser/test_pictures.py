"""A picture's buttons in Chromium: paint again (with the percentage), use as profile picture, delete."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import SEED_PAIR, last, online, seed
from tests.browser.test_journey import register

pytestmark = pytest.mark.browser


def test_paint_again_use_as_profile_and_delete_a_picture(chat, fake_backends):
    page, llm = chat
    _, sd = fake_backends
    llm.set_reply("Here you go!")
    page.get_by_label("Send with picture").check()
    page.get_by_label("Message to Ren").fill("A picture, please")
    page.keyboard.press("Enter")
    picture = last(page, "assistant").locator(".bubble-image img")
    expect(picture).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=20_000)
    first_src = picture.get_attribute("src")

    # Paint again: the page shows how far the picture is, then the new picture in the same bubble.
    sd.delay = 2.6  # the SD client asks /sdapi/v1/progress about once a second
    try:
        last(page, "assistant").get_by_role("button", name="Paint again").click()
        expect(page.locator("[data-step]")).to_have_text(
            re.compile(r"Painting a picture… \d+%"), timeout=20_000
        )
        expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
    finally:
        sd.delay = 0
    expect(picture).to_be_visible()
    assert picture.get_attribute("src") != first_src
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("Here you go!")

    # Use as profile picture: the header shows it at once, and after a reload.
    last(page, "assistant").get_by_role("button", name="Use as profile picture").click()
    header = page.locator(".chat-head img.avatar")
    expect(header).to_have_attribute("src", re.compile(r"/media/"))
    page.reload()
    expect(page.locator(".chat-head img.avatar")).to_have_attribute("src", re.compile(r"/media/"))

    # Delete: asks once more, then the picture goes; the message stays, also after a reload.
    delete = last(page, "assistant").get_by_role("button", name="Delete picture")
    delete.click()
    expect(delete).to_have_text("Delete picture?")
    delete.click()
    expect(last(page, "assistant").locator(".bubble-image")).to_have_count(0)
    expect(last(page, "assistant").get_by_role("button", name="Paint again")).to_have_count(0)
    page.reload()
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("Here you go!")
    expect(last(page, "assistant").locator(".bubble-image")).to_have_count(0)
    expect(page.locator(".chat-head img.avatar")).to_have_attribute("src", re.compile(r"/media/"))


def test_a_group_reply_has_the_same_picture_buttons(page, live_site, fake_backends):
    """Paint again and the profile picture in a group: the picture is its painter's."""
    llm, _ = fake_backends
    llm.reset()
    llm.token_delay = 0
    llm.set_reply("A picture from Rin!")
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    group_id = seed(live_site, SEED_PAIR, username=name)
    page.goto(f"/groups/{group_id}/")
    online(page)

    page.get_by_label("Send with picture").check()
    page.get_by_label("Message to Pair").fill("Rin, show me the beach")
    page.keyboard.press("Enter")
    reply = last(page, "assistant")
    picture = reply.locator(".bubble-image img")
    expect(picture).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
    expect(reply.locator(".sender-name")).to_have_text("Rin")
    first_src = picture.get_attribute("src")

    reply.get_by_role("button", name="Paint again").click()
    expect(picture).not_to_have_attribute("src", first_src, timeout=30_000)
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
    expect(reply.locator(".bubble-text")).to_have_text("A picture from Rin!")

    # Rin's avatar in the head shows it; Mika's stays as it was.
    rin_id = reply.get_attribute("data-companion-id")
    reply.get_by_role("button", name="Use as profile picture").click()
    rin_head = page.locator(f'.chat-head [data-avatar-for="{rin_id}"] .avatar')
    expect(rin_head).to_have_attribute("src", re.compile(r"/media/"))
    expect(page.locator(".chat-head img.avatar")).to_have_count(1)
    page.reload()
    expect(rin_head).to_have_attribute("src", re.compile(r"/media/"))
    expect(page.locator(".chat-head img.avatar")).to_have_count(1)

    delete = last(page, "assistant").get_by_role("button", name="Delete picture")
    delete.click()
    delete.click()
    expect(last(page, "assistant").locator(".bubble-image")).to_have_count(0)
    page.reload()
    expect(last(page, "assistant").locator(".bubble-image")).to_have_count(0)
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("A picture from Rin!")
