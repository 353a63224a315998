"""Many chats with one companion, in Chromium: New chat, the chat list, Branch here, and the
plain forms that do the same without JavaScript."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.browser.helpers import action, bubbles, last, online, send, texts

pytestmark = pytest.mark.browser

GREETING = "Hi! waves"  # the chat fixture's companion says "Hi! *waves*"
CHAT_PAGE = re.compile(r"/chat/c/(\d+)/$")


def chat_id(page) -> int:
    match = CHAT_PAGE.search(page.url)
    assert match, page.url
    return int(match.group(1))


def chat_list(page):
    return page.locator("[data-chat-list] .chat-list-item")


def test_two_chats_with_one_companion_each_keep_their_own_history(chat):
    page, llm = chat
    companion_url = page.url  # /chat/<companion id>/: the latest chat
    llm.set_reply("First chat, first answer.")
    send(page, "Hello in the first chat")
    first = page.locator("[data-chat-list] [aria-current=page]").get_attribute("href")

    # New chat: a fresh conversation that opens with the greeting alone.
    page.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(CHAT_PAGE)
    online(page)
    second_id = chat_id(page)
    assert texts(page) == [GREETING]
    llm.set_reply("Second chat, first answer.")
    send(page, "Hello in the second chat")
    assert texts(page) == [GREETING, "Hello in the second chat", "Second chat, first answer."]
    # Only this chat's history reached the model.
    sent = next(r["json"] for r in reversed(llm.requests) if (r["json"] or {}).get("stream"))["messages"]
    assert not any("first chat" in str(m["content"]) for m in sent)

    # The list (as the server draws it): both chats, newest first, this one marked, the last
    # words of each.
    page.reload()
    expect(chat_list(page)).to_have_count(2)
    current = chat_list(page).first
    expect(current).to_have_class(re.compile(r"\bcurrent\b"))
    expect(current.locator("a")).to_have_attribute("aria-current", "page")
    expect(current.locator(".chat-list-last")).to_have_text("Second chat, first answer.")
    expect(chat_list(page).nth(1).locator(".chat-list-last")).to_have_text("First chat, first answer.")
    shoot(page, "chat-list-desktop")

    # To the first chat with the keyboard alone: Tab reaches the list's links, Enter opens one.
    page.get_by_label("Message to Ren").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == first:
            break
    else:
        pytest.fail("Tab never reached the first chat in the list")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(first) + "$"))
    online(page)
    assert texts(page) == [GREETING, "Hello in the first chat", "First chat, first answer."]
    llm.set_reply("First chat, second answer.")
    send(page, "Back in the first chat")
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("First chat, second answer.")

    # And back by a click; the second chat is as it was.
    page.locator(f'[data-chat-id="{second_id}"] a').click()
    online(page)
    assert texts(page) == [GREETING, "Hello in the second chat", "Second chat, first answer."]

    # The companion's own address opens the chat that was active last (the first one now).
    page.goto(companion_url)
    expect(last(page, "user").locator(".bubble-text")).to_have_text("Back in the first chat")

    # Rename a chat from the list; the list and the page head show the title.
    page.locator(f'[data-chat-id="{second_id}"] a').click()
    page.get_by_text("Rename or delete this chat").click()
    page.get_by_label("Title of this chat").fill("Beach plans")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("[data-chat-title]")).to_contain_text("Beach plans")
    expect(page.locator(f'[data-chat-id="{second_id}"] .chat-list-title')).to_have_text("Beach plans")

    # Delete it: the first chat and its history stay.
    page.get_by_text("Rename or delete this chat").click()
    page.get_by_role("link", name="Delete this chat…").click()
    page.get_by_role("button", name="Delete this chat").click()
    expect(page.locator(".messages")).to_contain_text("deleted")
    expect(page.locator(".chat-list-item")).to_have_count(1)
    page.goto(companion_url)
    assert texts(page) == [
        GREETING,
        "Hello in the first chat",
        "First chat, first answer.",
        "Back in the first chat",
        "First chat, second answer.",
    ]


def test_branch_from_a_middle_message_and_go_on_in_both_chats(chat):
    page, llm = chat
    for n in (1, 2, 3):
        llm.set_reply(f"Answer {n}.")
        send(page, f"Question {n}")
    original = page.url
    original_href = page.locator("[data-chat-list] [aria-current=page]").get_attribute("href")
    whole = [GREETING, "Question 1", "Answer 1.", "Question 2", "Answer 2.", "Question 3", "Answer 3."]
    assert texts(page) == whole
    # With JavaScript the message's action bar does it; the plain "More" forms stay out of sight.
    expect(page.locator("[data-message-more]").first).to_be_hidden()

    # Branch here on the first answer: a new chat holding everything up to it.
    action(bubbles(page, "assistant").nth(1), "Branch here").click()
    expect(page).to_have_url(CHAT_PAGE)
    online(page)
    assert texts(page) == [GREETING, "Question 1", "Answer 1."]
    note = page.locator("[data-branched-from]")
    expect(note).to_contain_text("Branched from")
    expect(note.get_by_role("link", name="an earlier chat")).to_have_attribute(
        "href", re.compile(re.escape(original_href) + r"#message-\d+$")
    )
    expect(page.locator("[data-chat-title]")).to_contain_text("(branch)")
    expect(page.locator(".chat-list-item")).to_have_count(2)

    # The branch goes its own way: the model hears only its history.
    llm.set_reply("Branch answer.")
    send(page, "A different second question")
    branch = [GREETING, "Question 1", "Answer 1.", "A different second question", "Branch answer."]
    assert texts(page) == branch
    sent = next(r["json"] for r in reversed(llm.requests) if (r["json"] or {}).get("stream"))["messages"]
    history = [m["content"] for m in sent if m["role"] in ("user", "assistant")]
    assert "Question 2" not in history and "Answer 1." in history

    # The original is untouched, and goes on as well.
    note.get_by_role("link", name="an earlier chat").click()
    online(page)
    assert texts(page) == whole
    expect(page.locator("[data-branched-from]")).to_have_count(0)
    llm.set_reply("Answer 4.")
    send(page, "Question 4")
    assert texts(page) == [*whole, "Question 4", "Answer 4."]
    page.goto(original)  # the companion's latest chat: the original, spoken in last
    assert texts(page)[-1] == "Answer 4."


def test_branch_and_correct_without_javascript(browser, site, chat):
    """The server's plain forms under "More" do what the action bar does, with scripts off."""
    page, llm = chat
    llm.set_reply("An answer with a typo: teh end.")
    send(page, "Tell me something")
    url = page.url
    session = page.context.storage_state()
    plain = browser.new_context(base_url=site, storage_state=session, java_script_enabled=False)
    try:
        nojs = plain.new_page()
        nojs.goto(url)
        reply = nojs.locator(".chat-log .bubble.assistant[data-message-id]").last
        reply.locator("summary", has_text="More").click()
        reply.get_by_role("link", name="Correct…").click()
        nojs.get_by_label("Correct this message").fill("An answer with a typo: the end.")
        nojs.get_by_role("button", name="Save correction").click()
        reply = nojs.locator(".chat-log .bubble.assistant[data-message-id]").last
        expect(reply.locator(".bubble-text")).to_have_text("An answer with a typo: the end.")
        expect(reply.locator("[data-edited-mark]")).to_have_text("edited")

        mine = nojs.locator(".chat-log .bubble.user[data-message-id]").last
        mine.locator("summary", has_text="More").click()
        mine.get_by_role("link", name="Branch here…").click()
        nojs.get_by_role("button", name="Branch here").click()
        expect(nojs).to_have_url(CHAT_PAGE)
        expect(nojs.locator(".messages")).to_contain_text("A new chat goes on from that message")
        expect(nojs.locator(".chat-log .bubble[data-message-id] .bubble-text")).to_have_text(
            [GREETING, "Tell me something"]
        )
        expect(nojs.locator("[data-branched-from]")).to_be_visible()
    finally:
        plain.close()
    # The tab with scripts saw the correction as it happened.
    expect(last(page, "assistant").locator(".bubble-text")).to_have_text("An answer with a typo: the end.")
