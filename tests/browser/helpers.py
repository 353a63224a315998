"""What the browser tests do over and over: send and wait, find bubbles, open a second tab,
and seed rows through the site's own shell."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def send(page, text, *, to="Ren"):
    """Send and wait for the whole turn: the user's bubble has an id and the composer is free again."""
    sent = page.locator(".chat-log .bubble.user[data-message-id]")
    before = sent.count()
    page.get_by_label(f"Message to {to}").fill(text)
    page.keyboard.press("Enter")
    expect(sent).to_have_count(before + 1)
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)


def bubbles(page, role=None):
    """The messages on the page (of ``role``), each with its id (the server's, or one it accepted)."""
    kind = f".{role}" if role else ""
    return page.locator(f".chat-log .bubble{kind}[data-message-id]")


def last(page, role):
    return bubbles(page, role).last


def texts(page, role=None) -> list[str]:
    """The text of every message on the page, as shown (emphasis without its asterisks)."""
    return bubbles(page, role).locator(".bubble-text").all_inner_texts()


def online(page) -> None:
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I), timeout=20_000)


def second_tab(page, errors: list[str]):
    """The same page in another tab of the same browser (same session), once its socket is open."""
    other = page.context.new_page()
    other.set_default_timeout(15_000)
    other.on("pageerror", lambda exc: errors.append(str(exc)))
    other.goto(page.url)
    online(other)
    return other


def action(bubble, name: str):
    """A message's action button (its bar shows on hover or focus)."""
    bubble.hover()
    return bubble.get_by_role("button", name=name, exact=True)


def seed(live_site, code: str, **names) -> str:
    """Runs ``code`` (formatted with ``names``) in the site's shell; the last word it prints."""
    return live_site.manage("shell", "-c", code.format(**names)).split()[-1]


# Run in the site's own shell: a group of Mika and Rin where one companion answers each turn.
SEED_PAIR = """
from accounts.models import User
from tests.chat.factories import make_group

user = User.objects.get(username={username!r})
print(make_group(user, "Mika", "Rin", title="Pair", replies_per_turn=1).pk)
"""
