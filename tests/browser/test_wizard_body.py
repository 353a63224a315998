"""The wizard and the settings page ask body questions that suit the chosen gender only."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.test_journey import pick_every_choice, register

pytestmark = pytest.mark.browser


def choose(page, label: str) -> None:
    page.locator("label.chip", has_text=re.compile(f"^{label}$")).click()


def test_no_chest_question_for_a_man(page):
    register(page, f"u{uuid.uuid4().hex[:8]}", screenshots=False)
    page.goto("/companions/new/")
    chest = page.get_by_role("group", name="Chest / breasts")

    choose(page, "Man")  # step 1: style and gender
    pick_every_choice(page)
    page.get_by_role("button", name="Next →").click()
    page.locator("#id_age").fill("30")  # step 2: look
    pick_every_choice(page)
    page.get_by_role("button", name="Next →").click()
    expect(page.get_by_role("group", name="Height")).to_be_visible()  # step 3: body
    expect(chest).to_have_count(0)

    page.get_by_role("button", name="← Back").click()
    page.get_by_role("button", name="← Back").click()
    choose(page, "Woman")
    page.get_by_role("button", name="Next →").click()
    page.get_by_role("button", name="Next →").click()
    expect(chest).to_be_visible()
    pick_every_choice(page)
    page.get_by_role("button", name="Next →").click()
    page.locator("#id_name").fill("Kai")
    page.locator("#id_greeting").fill("Hi!")
    pick_every_choice(page)
    page.get_by_role("button", name="Next →").click()
    page.get_by_role("button", name="Create companion").click()
    expect(page.locator(".chat-title")).to_have_text("Kai")

    # The settings page has the gender and the question on one page: the script hides it.
    companion_id = re.search(r"/(\d+)/$", page.url).group(1)
    page.goto(f"/companions/{companion_id}/settings/")
    page.locator("#identity > summary").click()  # the sections start folded
    chest = page.get_by_role("group", name="Chest / breasts")
    expect(chest).to_be_visible()
    choose(page, "Man")
    expect(chest).to_be_hidden()
    choose(page, "Woman")
    expect(chest).to_be_visible()
