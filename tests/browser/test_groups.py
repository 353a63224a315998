"""A group chat as a new user meets it: two companions, one message, both replies stream in, named."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.browser.helpers import SEED_PAIR, seed
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
        expect(state.locator("[data-scene]")).to_contain_text(" is in the park, ")
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


# Run in the site's own shell: a group with Mika and Rin, and more than two pages of
# history, the oldest written by Aya, who has since left the group. Prints the group's id.
SEED_HISTORY = """
from accounts.models import User
from chat.models import Message
from tests.chat.factories import make_group_of
from tests.companions.factories import make_companion

user = User.objects.get(username={username!r})
mika, rin, aya = (make_companion(user, name=name) for name in ("Mika", "Rin", "Aya"))
group = make_group_of(user, [mika, rin], title="Long story")
rows = []
for n in range({count}):
    sender = None if n % 3 == 0 else (aya if n < 10 else (mika, rin)[n % 2])
    role = Message.Role.USER if sender is None else Message.Role.ASSISTANT
    text = "<img src=x onerror=alert(1)> *waves*" if n == 1 else f"message {{n}}"
    rows.append(Message(conversation=group, role=role, sender=sender, content=text))
Message.objects.bulk_create(rows)
print(group.pk)
"""


def test_scrolling_up_loads_older_group_messages(page, live_site):
    from chat.selectors import HISTORY_PAGE

    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    count = 2 * HISTORY_PAGE + 20
    group_id = seed(live_site, SEED_HISTORY, username=name, count=count)

    page.goto(f"/groups/{group_id}/")
    bubbles = page.locator(".chat-log .bubble[data-message-id]")
    expect(bubbles).to_have_count(HISTORY_PAGE)
    expect(bubbles.first.locator(".bubble-text")).to_have_text(f"message {count - HISTORY_PAGE}")
    log = page.locator("[data-log]")

    # Scrolling to the top loads the page before; the reader stays where they were.
    log.evaluate("el => { el.scrollTop = 0; }")
    expect(bubbles).to_have_count(2 * HISTORY_PAGE)
    assert log.evaluate("el => el.scrollTop") > 0
    expect(page.get_by_role("button", name="Load older messages")).to_be_visible()

    # The control loads the rest, and goes once there is nothing older.
    page.get_by_role("button", name="Load older messages").click()
    expect(bubbles).to_have_count(count)
    expect(page.locator("[data-older]")).to_have_count(0)

    first = bubbles.nth(0)
    expect(first).to_have_class(re.compile(r"\buser\b"))
    expect(first.locator(".bubble-sender")).to_have_count(0)
    expect(first.locator(".bubble-text")).to_have_text("message 0")
    # Older replies are named like the newer ones, Aya too though she has left the group.
    aya = bubbles.nth(1)
    expect(aya.locator(".sender-name")).to_have_text("Aya")
    expect(aya.locator(".bubble-sender .avatar-initial")).to_have_text("A")
    # Markup in a message is text: no element, the asterisks become emphasis.
    expect(aya.locator(".bubble-text")).to_have_text("<img src=x onerror=alert(1)> waves")
    expect(aya.locator(".bubble-text img")).to_have_count(0)
    expect(aya.locator(".bubble-text em")).to_have_text("waves")
    # An older page's reply by a member (every third message is the user's).
    mika = bubbles.nth(next(n for n in range(count - HISTORY_PAGE - 1, 10, -1) if n % 3))
    expect(mika.locator(".sender-name")).to_have_text(re.compile("^(Mika|Rin)$"))
    shoot(page, "group-older-desktop")


def test_write_the_last_group_reply_again_and_flip_back(page, live_site, fake_backends):
    llm, _ = fake_backends
    llm.reset()
    llm.token_delay = 0.02
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    group_id = seed(live_site, SEED_PAIR, username=name)
    page.goto(f"/groups/{group_id}/")
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))

    llm.set_reply("First version from Rin.")
    page.get_by_label("Message to Pair").fill("Rin, how was your day?")
    page.keyboard.press("Enter")
    reply = page.locator(".chat-log .bubble.assistant[data-message-id]").last
    expect(reply.locator(".bubble-text")).to_have_text("First version from Rin.", timeout=30_000)
    expect(page.locator("[data-send]")).to_be_enabled(timeout=30_000)
    # Only the latest reply offers "Again"; a group's messages offer the rest as a one-to-one chat's.
    user_bubble = page.locator(".chat-log .bubble.user[data-message-id]").last
    expect(user_bubble.get_by_role("button", name="Write this reply again")).to_have_count(0)
    expect(user_bubble.get_by_role("button", name="Edit your last message")).to_have_count(1)
    expect(reply.get_by_role("button", name="Edit this message")).to_have_count(1)
    expect(reply.get_by_role("button", name="Delete this message")).to_have_count(1)

    llm.set_reply("Second version, written again by Rin.")
    reply.hover()
    reply.get_by_role("button", name="Write this reply again").click()
    expect(page.locator(".chat-log .bubble.streaming")).to_have_count(1)
    expect(reply.locator(".bubble-text")).to_have_text(
        "Second version, written again by Rin.", timeout=30_000
    )
    expect(reply.locator(".sender-name")).to_have_text("Rin")
    expect(page.locator(".chat-log .bubble.assistant[data-message-id]")).to_have_count(1)  # in place
    expect(page.locator("[data-send]")).to_be_enabled(timeout=30_000)
    versions = reply.get_by_role("button", name="Show the other version")
    expect(versions).to_have_text("Versions: 2")

    versions.click()
    expect(reply.locator(".bubble-text")).to_have_text("First version from Rin.")
    # The server keeps the choice: after a reload the old text shows, with both versions.
    page.reload()
    reply = page.locator(".chat-log .bubble.assistant[data-message-id]").last
    expect(reply.locator(".bubble-text")).to_have_text("First version from Rin.")
    reply.hover()
    expect(reply.get_by_role("button", name="Show the other version")).to_have_text("Versions: 2")
    assert not errors, errors


def test_a_cut_group_reply_can_be_continued(page, live_site, fake_backends):
    llm, _ = fake_backends
    llm.reset()
    llm.token_delay = 0
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    group_id = seed(live_site, SEED_PAIR, username=name)
    page.goto(f"/groups/{group_id}/")
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))

    llm.set_reply(" ".join(f"w{i}" for i in range(420)))  # more than the 400-token default
    page.get_by_label("Message to Pair").fill("Mika, tell us everything")
    page.keyboard.press("Enter")
    continue_button = page.get_by_role("button", name="Continue the reply")
    expect(continue_button).to_be_visible(timeout=30_000)
    reply = page.locator(".chat-log .bubble.assistant[data-message-id]").last
    cut = reply.locator(".bubble-text").inner_text()

    llm.set_reply(" and that is all.")
    continue_button.click()
    expect(reply.locator(".bubble-text")).to_have_text(cut + " and that is all.", timeout=30_000)
    expect(reply.locator(".sender-name")).to_have_text("Mika")
    expect(continue_button).to_be_hidden()
    expect(page.locator(".chat-log .bubble.assistant[data-message-id]")).to_have_count(1)


def test_retry_a_failed_group_reply_then_edit_and_resend_the_last_message(page, live_site, fake_backends):
    llm, _ = fake_backends
    llm.reset()
    llm.token_delay = 0
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    group_id = seed(live_site, SEED_PAIR, username=name)
    page.goto(f"/groups/{group_id}/")
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))
    replies = page.locator(".chat-log .bubble.assistant[data-message-id]")

    # The model refuses Rin's reply once (a refusal the server does not retry by itself).
    llm.fail_next(status=400, only_stream=True)
    llm.set_reply("Sorry, I was miles away. Hello!")
    page.get_by_label("Message to Pair").fill("Rin, are you there?")
    page.keyboard.press("Enter")
    error = page.locator("[data-error]")
    expect(error).to_be_visible(timeout=30_000)
    expect(error).to_contain_text("Rin: ")
    expect(page.locator("[data-send]")).to_be_enabled(timeout=30_000)
    retry = page.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    expect(replies).to_have_count(0)

    retry.click()
    expect(error).to_be_hidden()
    expect(replies).to_have_count(1, timeout=30_000)
    expect(replies.last.locator(".sender-name")).to_have_text("Rin")
    expect(replies.last.locator(".bubble-text")).to_have_text(
        "Sorry, I was miles away. Hello!", timeout=30_000
    )
    expect(page.locator("[data-send]")).to_be_enabled(timeout=30_000)
    expect(retry).to_be_hidden()

    # Edit your last message and have it answered afresh: the old reply goes, Mika (named) answers.
    llm.set_reply("Mika here, answering the new question.")
    mine = page.locator(".chat-log .bubble.user[data-message-id]").last
    mine.hover()
    mine.get_by_role("button", name="Edit your last message").click()
    expect(page.get_by_label("Message to Pair")).to_have_value("Rin, are you there?")
    expect(page.locator("[data-send]")).to_have_text("Save and resend")
    page.get_by_label("Message to Pair").fill("Mika, are you there?")
    page.keyboard.press("Enter")
    expect(mine.locator(".bubble-text")).to_have_text("Mika, are you there?")
    expect(replies.last.locator(".bubble-text")).to_have_text(
        "Mika here, answering the new question.", timeout=30_000
    )
    expect(replies.last.locator(".sender-name")).to_have_text("Mika")
    expect(replies).to_have_count(1)
    expect(page.locator("[data-send]")).to_be_enabled(timeout=30_000)

    page.reload()
    expect(page.locator(".chat-log .bubble[data-message-id] .bubble-text")).to_have_text(
        ["Mika, are you there?", "Mika here, answering the new question."]
    )
    expect(page.locator(".chat-log .bubble.user [data-edited-mark]")).to_have_count(1)
    assert not errors, errors
