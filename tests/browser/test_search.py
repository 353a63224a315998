"""Search in Chromium: a word from an old message of another conversation, found from the
header's box (opened with "/"), opens that conversation at the message, marked."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import seed
from tests.browser.test_journey import register

pytestmark = pytest.mark.browser

# Two chats with Mika: an old one whose 6th message (of 130: three pages back) speaks of the
# lighthouse, and a newer one the user is reading. Prints "<old chat>,<the message>,<newer chat>".
SEED_TWO_CHATS = """
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from chat.models import Message
from tests.chat.factories import make_chat
from tests.companions.factories import make_companion

user = User.objects.get(username={username!r})
mika = make_companion(user, name="Mika")
old = make_chat(mika, title="Summer by the sea")
start = timezone.now() - timedelta(days=40)
rows = []
for n in range(130):
    text = "She said the old lighthouse keeps <b>its</b> light on" if n == 5 else f"message {{n}}"
    sender = None if n % 2 == 0 else mika
    rows.append(Message(conversation=old, role="user" if sender is None else "assistant", sender=sender,
                        content=text, created_at=start + timedelta(minutes=n)))
made = Message.objects.bulk_create(rows)
new = make_chat(mika, title="Today")
Message.objects.create(conversation=new, role="assistant", sender=mika, content="Good morning!")
print(f"{{old.pk}},{{made[5].pk}},{{new.pk}}")
"""


def test_search_finds_an_old_message_in_another_chat_and_jumps_to_it(page, live_site):
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    old_id, message_id, new_id = seed(live_site, SEED_TWO_CHATS, username=name).split(",")
    page.goto(f"/chat/c/{new_id}/")
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I), timeout=20_000)
    expect(page.locator(f"#message-{message_id}")).to_have_count(0)

    # "/" outside a text field puts the cursor in the header's search box.
    page.locator("h1").click()
    page.keyboard.press("/")
    box = page.get_by_role("searchbox", name="Search your chats")
    expect(box).to_be_focused()
    box.fill("lighthou")
    box.press("Enter")

    hit = page.locator("[data-search-results] .search-hit")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark")).to_have_text("lighthouse")
    expect(hit).to_contain_text("Summer by the sea")
    expect(hit).to_contain_text("Mika")
    expect(hit.locator(".search-hit-text")).to_contain_text("<b>its</b>")  # shown as text
    hit.get_by_role("link").click()

    # The old chat opens; older pages load until the message is there, in view and marked.
    expect(page).to_have_url(re.compile(rf"/chat/c/{old_id}/#message-{message_id}$"))
    found = page.locator(f"#message-{message_id}")
    expect(found).to_have_class(re.compile(r"\bfound\b"), timeout=20_000)
    expect(found).to_have_attribute("aria-current", "true")
    expect(found).to_be_in_viewport()
    expect(page.locator(".bubble.found")).to_have_count(1)
    # The rest of the chat is still there: the newest message below, the oldest ones above.
    expect(page.locator(".chat-log .bubble[data-message-id]").last).to_have_text(re.compile("message 129"))
    expect(page.locator(".chat-log .bubble[data-message-id]").first).to_have_text(re.compile("message 0"))
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))
