"""A new user's whole journey, in Chromium, against the real server and a real worker."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE, shoot

pytestmark = pytest.mark.browser

REPLY = (
    "Oh, the beach! *grabs a towel* I'll wear my red sundress, let's go right now, the sun is lovely today."
)
ANALYSIS = (
    '{"outfit": "red sundress", "location": "at the beach", "action": "walking on the sand", '
    '"wants_image": false}'
)


def picture_file() -> dict:
    out = io.BytesIO()
    Image.radial_gradient("L").resize((900, 600)).convert("RGB").save(out, format="PNG")
    return {"name": "me.png", "mimeType": "image/png", "buffer": out.getvalue()}


def pick_every_choice(page) -> None:
    """Click the first chip of every choice group, and the first option of every select, left empty."""
    for fieldset in page.locator("fieldset.choice-field").all():
        if fieldset.locator("input:checked").count() == 0:
            fieldset.locator("label.chip").first.click()
    for select in page.locator("select").all():
        if not select.input_value():
            select.select_option(index=1)


def register(page, name: str, *, screenshots: bool = True) -> None:
    snap = shoot if screenshots else (lambda *_: None)
    page.goto("/")
    snap(page, "landing-desktop")
    page.get_by_role("link", name="Create an account").first.click()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.locator("#id_password1").fill("a-long-secret-pass")
    page.locator("#id_password2").fill("a-long-secret-pass")
    snap(page, "register-desktop")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".messages")).to_contain_text("Welcome")
    # A new account starts at making its first companion: the wizard or a card import.
    first = page.get_by_test_id("first-companion")
    expect(first.get_by_role("heading", name="Create your first companion")).to_be_visible()
    expect(first.get_by_role("link", name="Start the wizard")).to_be_visible()
    expect(first.get_by_role("link", name="Import a card")).to_be_visible()


def create_companion(page, name: str, *, screenshots: bool = True) -> None:
    snap = shoot if screenshots else (lambda *_: None)
    page.goto("/companions/")
    snap(page, "companions-empty-desktop")
    page.get_by_role("link", name="+ New companion").first.click()
    for step in range(1, 5):
        expect(page.locator(".steps .current")).to_contain_text(str(step))
        pick_every_choice(page)
        if page.locator("#id_age").count() and not page.locator("#id_age").input_value():
            page.locator("#id_age").fill("27")
        if page.locator("#id_name").count():
            page.locator("#id_name").fill(name)
            page.locator("#id_greeting").fill("Hi! *waves*")
        snap(page, f"wizard-step{step}-desktop")
        page.get_by_role("button", name="Next →").click()
    page.locator("input[type=file]").set_input_files(picture_file())
    expect(page.locator("canvas.crop-preview")).to_be_visible()
    snap(page, "wizard-step5-desktop")
    page.get_by_role("button", name="Create companion").click()
    expect(page.locator(".chat-title")).to_have_text(name)


def assistant_bubbles(page):
    return page.locator(".chat-log .bubble.assistant:not(.greeting)")


def test_the_whole_journey(page, site, fake_backends):
    llm, _ = fake_backends
    llm.set_reply(REPLY)
    llm.completion_text = ANALYSIS
    llm.token_delay = 0.08
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name)
    create_companion(page, "Mika")

    # Chat: the reply streams in, the progress bar moves, the state panel changes, a picture arrives.
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Connected|Online", re.I))
    page.get_by_label("Send with picture").check()
    page.get_by_label("Message to Mika").fill("Shall we go to the beach?")
    page.keyboard.press("Enter")
    expect(page.locator(".chat-log .bubble.user").last).to_contain_text("Shall we go to the beach?")
    streaming = page.locator(".chat-log .bubble.assistant.streaming")
    expect(streaming).to_be_visible()
    expect(page.locator("[data-run]")).to_be_visible()
    first_text = streaming.inner_text()
    expect(streaming).not_to_have_text(first_text)  # more tokens arrived
    shoot(page, "chat-streaming-desktop")
    expect(assistant_bubbles(page).last.locator(".bubble-text")).to_have_text(
        re.sub(r"\*([^*]+)\*", r"\1", REPLY)
    )
    expect(page.locator("[data-scene]")).to_contain_text(" is at the beach, ")
    expect(assistant_bubbles(page).last.locator(".bubble-image img")).to_be_visible(timeout=30_000)
    expect(page.locator("[data-run]")).to_be_hidden()
    shoot(page, "chat-done-desktop")

    # Reload in the middle of a reply: the reply so far comes back and goes on.
    llm.set_reply(" ".join(f"word{i}" for i in range(80)))
    llm.token_delay = 0.05
    page.get_by_label("Send with picture").uncheck()
    page.get_by_label("Message to Mika").fill("Tell me a long story")
    page.keyboard.press("Enter")
    expect(page.locator(".chat-log .bubble.assistant.streaming")).to_contain_text("word5")
    page.reload()
    expect(assistant_bubbles(page).last.locator(".bubble-text")).to_have_text(
        " ".join(f"word{i}" for i in range(80)), timeout=30_000
    )

    # Gallery.
    page.goto("/companions/gallery/")
    expect(page.locator(".gallery-grid img")).to_have_count(1)
    shoot(page, "gallery-desktop")

    # Settings.
    page.goto("/companions/")
    shoot(page, "companions-desktop")
    page.get_by_role("link", name="Mika").first.click()
    page.get_by_role("link", name="Settings").click()
    shoot(page, "settings-desktop")
    page.get_by_role("link", name="Identity & look").click()  # opens the folded section
    page.get_by_role("textbox", name="Name", exact=True).fill("Mika Two")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".messages")).to_be_visible()

    # Wipe memory, then delete.
    page.get_by_role("link", name="Wipe memory…").click()
    page.get_by_role("button", name="Wipe memory").click()
    page.goto("/companions/")
    expect(page.locator(".companion-card")).to_contain_text("Mika Two")
    page.locator(".companion-card a").first.click()
    expect(page.locator(".chat-log .bubble.user")).to_have_count(0)
    # A fresh chat, which opens with the greeting.
    expect(page.locator(".chat-log .bubble[data-message-id] .bubble-text")).to_have_text(["Hi! waves"])
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Delete companion…").click()
    page.get_by_role("button", name="Delete Mika Two").click()
    expect(page.locator(".empty-state")).to_be_visible()


def test_pages_at_phone_width(browser, site, fake_backends):
    llm, _ = fake_backends
    llm.set_reply("Hi from a small screen!")
    llm.token_delay = 0.05
    context = browser.new_context(viewport=PHONE, base_url=site, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/")
    shoot(page, "landing-phone")
    page.goto("/accounts/register/")
    shoot(page, "register-phone")
    register(page, f"p{uuid.uuid4().hex[:8]}", screenshots=False)
    page.goto("/companions/")
    shoot(page, "companions-empty-phone")
    page.get_by_role("link", name="+ New companion").first.click()
    for step in range(1, 5):
        expect(page.locator(".steps .current")).to_contain_text(str(step))  # the step's page, not the last
        pick_every_choice(page)
        if page.locator("#id_age").count() and not page.locator("#id_age").input_value():
            page.locator("#id_age").fill("27")
        if page.locator("#id_name").count():
            page.locator("#id_name").fill("Mika")
        shoot(page, f"wizard-step{step}-phone")
        page.get_by_role("button", name="Next →").click()
    shoot(page, "wizard-step5-phone")
    page.get_by_role("button", name="Create companion").click()
    page.get_by_label("Message to Mika").fill("Hello!")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".chat-log .bubble.assistant.streaming")).to_be_visible()
    shoot(page, "chat-streaming-phone")
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=20_000)
    page.goto("/companions/")
    shoot(page, "companions-phone")
    page.goto("/companions/gallery/")
    shoot(page, "gallery-phone")
    page.goto("/companions/")
    page.locator(".companion-card a").first.click()
    # On a phone the chat's links are in its side panel, a drawer.
    page.get_by_role("button", name="Chat details").click()
    page.get_by_role("link", name="Settings").click()
    shoot(page, "settings-phone")
    context.close()


def test_the_wizard_works_with_the_keyboard_alone(page):
    """No mouse: focus moves by keyboard, choices are picked with Space and arrows, Enter submits."""
    register(page, f"k{uuid.uuid4().hex[:8]}", screenshots=False)
    page.goto("/companions/new/")
    for step in range(1, 5):
        expect(page.locator(".steps .current")).to_contain_text(str(step))
        for fieldset in page.locator("fieldset.choice-field").all():
            if fieldset.locator("input:checked").count() == 0:
                fieldset.locator("input").first.focus()
                page.keyboard.press("Space")
                assert fieldset.locator("input:checked").count() == 1
        for select in page.locator("select").all():
            if not select.input_value():
                select.focus()
                page.keyboard.press("ArrowDown")
        if page.locator("#id_age").count() and not page.locator("#id_age").input_value():
            page.locator("#id_age").focus()
            page.keyboard.type("27")
        if page.locator("#id_name").count():
            page.locator("#id_name").focus()
            page.keyboard.type("Kei")
        page.get_by_role("button", name="Next →").focus()
        page.keyboard.press("Enter")
    page.get_by_role("button", name="Create companion").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".chat-title")).to_have_text("Kei")


def test_admin_companion_list(browser, live_site):
    name = f"mod{uuid.uuid4().hex[:6]}"
    live_site.manage(
        "shell",
        "-c",
        "from accounts.models import User; User.objects.create_superuser("
        f"username='{name}', email='{name}@example.com', password='a-long-secret-pass')",
    )
    context = browser.new_context(viewport=DESKTOP, base_url=live_site.base_url)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/companions/companion/")
    page.locator("#id_username").fill(name)
    page.locator("#id_password").fill("a-long-secret-pass")
    page.locator("input[type=submit]").click()
    expect(page.locator("#result_list")).to_be_visible()
    shoot(page, "admin-companions-desktop")
    context.close()
