"""A reasoning model's thinking in Chromium: kept out of the reply, shown only on demand."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import last, send
from tests.fakes.llm_server import DEFAULT_REPLY_TOKENS

pytestmark = pytest.mark.browser

THOUGHT = "<img src=x onerror=alert(1)> They greet me; greet back."


def test_reasoning_is_a_collapsed_disclosure_under_the_reply(chat):
    page, llm = chat
    llm.reply_tokens = ["<think>", THOUGHT, "</think>", "Hello", " *waves*", "!"]
    try:
        send(page, "Hi")
        for where in ("streamed", "reloaded"):  # the script after "done", then the page itself
            if where == "reloaded":
                page.reload()
            reply = last(page, "assistant")
            expect(reply.locator(".bubble-text")).to_have_text("Hello waves!")
            disclosure = reply.locator("details.reasoning")
            expect(disclosure.locator("summary")).to_have_text("Show reasoning")
            expect(disclosure.locator(".reasoning-text")).to_be_hidden()  # collapsed until asked
            disclosure.locator("summary").click()
            expect(disclosure.locator(".reasoning-text")).to_have_text(THOUGHT)  # as text, not markup
            expect(reply.locator(".reasoning img, .bubble-text img")).to_have_count(0)  # the avatar is one
        expect(last(page, "user").locator("details.reasoning")).to_have_count(0)
    finally:
        llm.reply_tokens = list(DEFAULT_REPLY_TOKENS)
