"""The character editor in a browser: edit an alternate greeting and a lorebook entry from settings."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.test_journey import register
from tests.companions.test_cards import LOREBOOK, v2_card

pytestmark = pytest.mark.browser


def test_edit_a_greeting_and_a_lorebook_entry_from_the_settings_page(page):
    register(page, f"u{uuid.uuid4().hex[:8]}", screenshots=False)
    page.goto("/companions/import/")
    card = v2_card(character_book=LOREBOOK, description="d" * 10_000)
    page.get_by_label("Character cards").set_input_files(
        {"name": "seraphina.json", "mimeType": "application/json", "buffer": json.dumps(card).encode()}
    )
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".chat-title")).to_have_text("Seraphina")
    page.get_by_role("link", name="Settings").click()

    # The long description is whole, with its limit counted live.
    description = page.get_by_label("Description (backstory)")
    expect(description).to_have_value("d" * 10_000)
    expect(page.locator("#id_backstory + .char-count")).to_have_text("10,000 / 50,000 characters")

    # Greetings: change the first alternate greeting, add another.
    page.get_by_role("link", name="Greetings", exact=True).click()
    first = page.get_by_role("textbox", name="Alternate greeting 1")
    first.fill("*She waves from the river bank.*")
    page.locator("#greetings").get_by_role("button", name="+ Add another").first.click()
    boxes = page.locator("#greetings textarea[name='card-alternate_greetings']")
    boxes.last.fill("Back so soon? 🌙")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".messages")).to_contain_text("Settings saved")
    page.get_by_role("link", name="Greetings", exact=True).click()
    expect(page.get_by_role("textbox", name="Alternate greeting 1")).to_have_value(
        "*She waves from the river bank.*"
    )
    values = [box.input_value() for box in boxes.all()]
    assert "Back so soon? 🌙" in values

    # Lorebook: edit the card's entry, come back to the section, see it.
    page.get_by_role("link", name="Lorebook", exact=True).click()
    entries = page.get_by_test_id("card-book-entry")
    expect(entries).to_have_count(len(LOREBOOK["entries"]))
    entries.first.get_by_role("link", name="Edit").click()
    page.get_by_label("Content", exact=True).fill("The glade hides behind a waterfall.")
    page.get_by_role("button", name="Save entry").click()
    expect(page).to_have_url(re.compile(r"/settings/#lorebook$"))
    expect(page.locator("#lorebook")).to_have_attribute("open", "")
    expect(page.locator("#lorebook")).to_contain_text("The glade hides behind a waterfall.")
