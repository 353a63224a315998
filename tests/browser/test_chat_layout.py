"""The chat page as a chat app, in Chromium at desktop and phone size: the message box always in
view, the log at its newest message and staying there, "Jump to latest", the typing indicator,
the side panel's drawer, and what assistive technology needs. Every position is measured from
the DOM (getBoundingClientRect), never from a screenshot."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE
from tests.browser.helpers import last, online, seed, send
from tests.browser.test_journey import register

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": PHONE}

# A companion with a chat long enough to scroll at either size.
SEED_CHAT = """
from accounts.models import User
from tests.chat.factories import add_exchange, make_chat
from tests.companions.factories import make_companion

user = User.objects.get(username={username!r})
companion = make_companion(user, name="Ren")
chat = make_chat(companion, greeting="Hi! *waves*")
for i in range(10):
    said = "Question %d, with a few more words to fill the line." % i
    add_exchange(chat, companion, said, ("Answer %d *smiles* " % i) * 12)
print(chat.pk)
"""

# The log's geometry: where its newest message ends, how far its end is below the view.
GEOMETRY = """() => {
  const log = document.querySelector("[data-log]");
  const bubbles = log.querySelectorAll(".bubble");
  const box = log.getBoundingClientRect();
  const newest = bubbles[bubbles.length - 1].getBoundingClientRect();
  return {
    logTop: box.top, logBottom: box.bottom, newestBottom: newest.bottom,
    below: log.scrollHeight - log.scrollTop - log.clientHeight, scrollTop: log.scrollTop,
  };
}"""

# The message at the top of the view, and where it is.
READING = """() => {
  const log = document.querySelector("[data-log]");
  const top = log.getBoundingClientRect().top;
  const li = [...log.querySelectorAll(".bubble[id]")]
    .find((b) => b.getBoundingClientRect().bottom > top + 10);
  return { id: li.id, top: li.getBoundingClientRect().top - top };
}"""
READING_AGAIN = """(id) => document.getElementById(id).getBoundingClientRect().top
  - document.querySelector("[data-log]").getBoundingClientRect().top"""

# Waits two frames: whatever the page does after a change (observers, layout) has happened.
FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


@pytest.fixture(params=sorted(SIZES))
def long_chat(request, browser, site, live_site, fake_backends):
    """A new user's chat with Ren, ten exchanges long, open at one size; (page, llm, size name)."""
    llm, _ = fake_backends
    llm.reset()
    llm.token_delay = 0
    size = request.param
    phone = size == "phone"
    context = browser.new_context(viewport=SIZES[size], base_url=site, is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    name = f"l{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    chat_id = seed(live_site, SEED_CHAT, username=name)
    page.goto(f"/chat/c/{chat_id}/")
    try:
        online(page)
        yield page, llm, size
    finally:
        llm.first_byte_delay = 0
        llm.hold_after_tokens = None
        llm.release()
        context.close()
    assert not errors, errors


def at_newest(page) -> dict:
    page.evaluate(FRAMES)
    return page.evaluate(GEOMETRY)


def assert_newest_in_view(geometry: dict) -> None:
    assert geometry["below"] <= 2, geometry
    assert geometry["logTop"] < geometry["newestBottom"] <= geometry["logBottom"] + 1, geometry


def assert_composer_in_view(page, size: str) -> None:
    height = SIZES[size]["height"]
    for control in (page.get_by_label("Message to Ren"), page.get_by_role("button", name="Send")):
        box = control.bounding_box()
        assert box is not None
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (control, box, height)


def test_the_message_box_is_in_view_and_the_log_at_its_newest_message(long_chat):
    page, _, size = long_chat
    assert_composer_in_view(page, size)
    assert_newest_in_view(at_newest(page))
    # Only the log scrolls: the page itself does not, either way.
    root = "document.documentElement"
    assert page.evaluate(f"() => {root}.scrollHeight <= {root}.clientHeight + 1")
    assert page.evaluate(f"() => {root}.scrollWidth <= {root}.clientWidth + 1")


def test_after_a_reload_with_pictures_the_newest_message_is_in_view(long_chat):
    page, llm, size = long_chat
    llm.set_reply("Here is the beach. *smiles*")
    for text in ("A picture of the beach, please", "And one more"):
        page.get_by_label("Send with picture").check()
        send(page, text)
        expect(last(page, "assistant").locator(".bubble-image img")).to_be_visible(timeout=30_000)
    page.reload()
    online(page)
    expect(last(page, "assistant").locator(".bubble-actions")).to_have_count(1)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-log] img')].every((img) => img.complete)"
    )
    assert_newest_in_view(at_newest(page))
    assert_composer_in_view(page, size)


def test_new_words_do_not_move_a_reader_of_older_messages_and_jump_to_latest_works(long_chat):
    page, llm, _ = long_chat
    llm.set_reply(" ".join(f"word{i}" for i in range(30)))
    llm.token_delay = 0.1  # longer than the server's batching: every word goes out as it comes
    llm.hold_after(3)
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_hidden()
    page.get_by_label("Message to Ren").fill("Tell me a long story")
    page.keyboard.press("Enter")
    expect(page.locator(".bubble.streaming .bubble-text")).to_contain_text("word2")
    # The reader scrolls up to read: new words must leave the view where it is.
    page.evaluate("() => { document.querySelector('[data-log]').scrollTop = 200; }")
    page.evaluate(FRAMES)
    before = page.evaluate(GEOMETRY)["scrollTop"]
    reading = page.evaluate(READING)
    llm.release()
    expect(page.locator(".bubble.streaming .bubble-text")).to_contain_text("word20")
    assert page.evaluate(GEOMETRY)["scrollTop"] == before
    expect(jump).to_be_visible()
    # When the reply ends, the message being read is still where it was (the action bars that
    # come back may change the height of messages above it: the browser keeps the view).
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
    expect(last(page, "assistant").locator(".bubble-text")).to_contain_text("word29")
    page.evaluate(FRAMES)
    assert abs(page.evaluate(READING_AGAIN, reading["id"]) - reading["top"]) <= 1
    expect(jump).to_be_visible()

    jump.click()
    expect(jump).to_be_hidden()
    assert_newest_in_view(at_newest(page))


def test_a_typing_indicator_shows_before_the_first_word_and_actions_are_styled_while_streaming(long_chat):
    page, llm, _ = long_chat
    llm.set_reply("Hello *waves at you* there")
    llm.first_byte_delay = 1.5
    llm.token_delay = 0.1  # longer than the server's batching: every word goes out as it comes
    llm.hold_after(4)  # "Hello *waves at": an action begun, not yet closed
    page.get_by_label("Message to Ren").fill("Hi Ren")
    page.keyboard.press("Enter")
    typing = page.locator(".bubble.streaming [data-typing]")
    expect(typing).to_be_visible()
    expect(typing).to_have_text("Ren is typing…")
    assert page.locator(".bubble.streaming .bubble-text").inner_text() == ""
    # The words stream in: the indicator goes, the action reads as it will when finished.
    expect(page.locator(".bubble.streaming .bubble-text em")).to_have_text("waves at")
    expect(typing).to_have_count(0)
    llm.release()
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
    expect(last(page, "assistant").locator(".bubble-text em")).to_have_text("waves at you")
    expect(last(page, "assistant").locator(".sender-name")).to_have_text("Ren")


def test_the_side_panel_is_beside_the_chat_or_a_drawer(long_chat):
    page, _, size = long_chat
    panel = page.get_by_role("complementary", name="About this chat")
    toggle = page.get_by_role("button", name="Chat details")
    if size == "desktop":
        expect(panel).to_be_visible()
        expect(toggle).to_be_hidden()
        expect(panel.get_by_role("heading", name="Right now")).to_be_visible()
        return
    expect(panel).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(panel).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    close = panel.get_by_role("button", name="Close")
    expect(close).to_be_focused()
    expect(panel.get_by_role("heading", name="Right now")).to_be_visible()
    expect(panel.get_by_role("heading", name="Chats")).to_be_visible()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(toggle).to_be_focused()
    toggle.click()
    close.click()
    expect(panel).to_be_hidden()
    # Its links are reachable from the drawer.
    toggle.click()
    panel.get_by_role("link", name="Settings").click()
    expect(page).to_have_url(re.compile(r"/settings/"))


# An approximation of the accessible name of each visible control: enough to catch a control
# that has none.
UNNAMED = """() => [...document.querySelectorAll(".chat :is(button, input, textarea, select, summary)")]
  .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== "hidden")
  .filter((el) => el.type !== "hidden")
  .filter((el) => {
    const labelled = el.getAttribute("aria-labelledby");
    const name = el.getAttribute("aria-label")
      || (labelled && document.getElementById(labelled)?.textContent)
      || [...(el.labels || [])].map((l) => l.textContent).join(" ")
      || (el.matches("button, summary") && el.textContent)
      || el.title;
    return !(name && name.trim());
  })
  .map((el) => el.outerHTML.slice(0, 120))"""

# WCAG's contrast ratio of an element's text against the first opaque background behind it.
CONTRAST = """(el) => {
  const rgb = (value) => value.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = (c) => (c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
    const [R, G, B] = [r, g, b].map(linear);
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  let node = el;
  let back = null;
  while (node && node.nodeType === 1) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] === 1) { back = c; break; }
    node = node.parentElement;
  }
  back = back || [255, 255, 255];
  const [a, b] = [luminance(rgb(getComputedStyle(el).color)), luminance(back)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_controls_are_named_the_log_is_announced_and_actions_are_readable(long_chat):
    page, _, _ = long_chat
    assert page.evaluate(UNNAMED) == []
    log = page.locator("[data-log]")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(log).to_have_attribute("aria-label", "Conversation")
    for role in ("assistant", "user"):
        bubble = last(page, role)
        bubble.hover()
        for button in bubble.locator(".bubble-action:visible").all():
            assert button.evaluate(CONTRAST) >= 4.5, button.inner_text()
    # The delete confirmation stands out, and is as readable.
    delete = last(page, "user").get_by_role("button", name="Delete this message")
    delete.click()
    expect(delete).to_have_text("Delete?")
    assert delete.evaluate(CONTRAST) >= 4.5
    # Reachable by keyboard: the first message action takes focus and shows its bar.
    last(page, "assistant").get_by_role("button", name="Copy this message").focus()
    expect(last(page, "assistant").locator(".bubble-actions")).to_have_css("opacity", "1")
