"""Character cards as a new user meets them: import cards (one or several), chat, export them again."""

from __future__ import annotations

import base64
import json
import re
import uuid
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from companions.cards import png_text_chunks
from tests.browser.conftest import shoot
from tests.browser.test_journey import register
from tests.companions.test_cards import LOREBOOK, b64, card_png, v2_card
from tests.companions.test_charx import make_charx

pytestmark = pytest.mark.browser

REPLY = "*Seraphina smiles softly.* Rest now; the glade will keep you safe."


def first_message(name: str) -> str:
    """The card's first_mes as shown to ``name`` (its *action* in italics, without asterisks)."""
    return f"Seraphina kneels beside you. You're safe now, {name}."


def test_import_a_card_chat_with_it_and_export_it(page, fake_backends):
    llm, _ = fake_backends
    llm.set_reply(REPLY)
    llm.completion_text = '{"outfit": "a green robe", "location": "in the glade", "action": "kneeling"}'
    llm.token_delay = 0.0
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)

    page.goto("/companions/")
    page.get_by_role("link", name="Import character cards").click()
    shoot(page, "card-import-desktop")
    card = card_png({"chara": b64(v2_card(character_book=LOREBOOK))}, size=(300, 300))
    page.get_by_label("Character cards").set_input_files(
        {"name": "seraphina.png", "mimeType": "image/png", "buffer": card}
    )
    page.get_by_role("button", name="Import").click()

    expect(page.locator(".chat-title")).to_have_text("Seraphina")
    expect(page.locator(".messages")).to_contain_text("Seraphina is imported")
    # The card's own scene, read from its scenario and first message at import.
    expect(page.locator("[data-scene]")).to_have_text(
        "Seraphina is in the glade, wearing a green robe, kneeling."
    )
    # The card's first message is the chat's first message, the companion's.
    greeting = page.locator(".chat-log .bubble[data-message-id]")
    expect(greeting).to_have_count(1)
    expect(greeting.first).to_have_class(re.compile(r"\bassistant\b"))
    expect(greeting.first.locator(".bubble-text")).to_have_text(first_message(name))
    expect(page.locator(".chat-head img.avatar")).to_be_visible()
    shoot(page, "card-imported-chat-desktop")

    expect(page.locator("[data-connection]")).to_have_text(re.compile("Connected|Online", re.I))
    page.get_by_label("Message to Seraphina").fill("Where am I?")
    page.keyboard.press("Enter")
    reply = page.locator(".chat-log .bubble.assistant:not(.greeting)").last.locator(".bubble-text")
    expect(reply).to_have_text(re.sub(r"\*([^*]+)\*", r"\1", REPLY), timeout=30_000)
    sent = next(r["json"] for r in reversed(llm.requests) if r["json"].get("stream"))["messages"]
    assert f"Scenario: {name} wakes up in Seraphina's glade" in sent[0]["content"]
    assert sent[-1] == {"role": "system", "content": "Stay gentle; never break character."}

    page.get_by_role("link", name="Settings").click()
    shoot(page, "card-settings-desktop")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export card (PNG)").click()
    download = download_info.value
    assert download.suggested_filename == "seraphina.png"
    exported = Path(download.path()).read_bytes()
    chunks = png_text_chunks(exported)
    data = json.loads(base64.b64decode(chunks["chara"]))["data"]
    assert data["name"] == "Seraphina"
    assert data["character_book"]["entries"][0]["keys"] == ["glade", "forest"]
    assert json.loads(base64.b64decode(chunks["ccv3"]))["spec"] == "chara_card_v3"


def test_import_several_cards_at_once_and_export_them_all(page, fake_backends):
    """One good PNG, one CHARX and one file that is no card: a report per file, then one zip of all."""
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    page.goto("/companions/import/")
    page.get_by_label("Character cards").set_input_files(
        [
            {"name": "seraphina.png", "mimeType": "image/png", "buffer": card_png({"chara": b64(v2_card())})},
            {"name": "bo.charx", "mimeType": "application/zip", "buffer": make_charx()},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just some notes"},
        ]
    )
    page.get_by_role("button", name="Import").click()
    results = page.get_by_label("Import results")
    expect(results.locator(".import-result.imported")).to_have_count(2)
    expect(results.locator(".import-result.refused")).to_contain_text("notes.txt")
    expect(results.locator(".import-result.refused")).to_contain_text("neither a PNG character card")
    shoot(page, "card-bulk-import-desktop")

    page.goto("/companions/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export all cards").click()
    download = download_info.value
    assert download.suggested_filename == "companion-cards.zip"
    with zipfile.ZipFile(download.path()) as archive:
        assert sorted(archive.namelist()) == ["seraphina-2.png", "seraphina.png"]


def test_swipe_the_greeting_of_a_card_with_alternate_greetings(page, fake_backends):
    """A new chat opens with the card's first message; its alternate greetings are versions of it,
    to flip through before the user has said anything, and the model hears the one chosen."""
    llm, _ = fake_backends
    llm.reset()
    llm.set_reply("Yes, awake at last.")
    llm.token_delay = 0.0
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    page.goto("/companions/import/")
    page.get_by_label("Character cards").set_input_files(
        {"name": "seraphina.png", "mimeType": "image/png", "buffer": card_png({"chara": b64(v2_card())})}
    )
    page.get_by_role("button", name="Import").click()
    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))

    greeting = page.locator(".chat-log .bubble.assistant[data-message-id]").first
    text = greeting.locator(".bubble-text")
    expect(text).to_have_text(first_message(name))
    greeting.hover()
    versions = greeting.get_by_role("button", name="Show the other version")
    expect(versions).to_have_text("Versions: 3")
    # Nothing to write again: the greeting answers no message of yours.
    expect(greeting.get_by_role("button", name="Write this reply again")).to_be_hidden()
    versions.click()
    expect(text).to_have_text("She hums a song.")
    expect(text.locator("em")).to_have_text("She hums a song.")
    versions.click()
    expect(text).to_have_text("Oh! You're awake.")

    page.reload()  # the server keeps the one shown
    greeting = page.locator(".chat-log .bubble.assistant[data-message-id]").first
    expect(greeting.locator(".bubble-text")).to_have_text("Oh! You're awake.")
    greeting.hover()
    expect(greeting.get_by_role("button", name="Show the other version")).to_have_text("Versions: 3")

    expect(page.locator("[data-connection]")).to_have_text(re.compile("Online", re.I))
    page.get_by_label("Message to Seraphina").fill("Where am I?")
    page.keyboard.press("Enter")
    reply = page.locator(".chat-log .bubble.assistant[data-message-id]").last
    expect(reply.locator(".bubble-text")).to_have_text("Yes, awake at last.", timeout=30_000)
    sent = next(r["json"] for r in reversed(llm.requests) if r["json"].get("stream"))["messages"]
    said = [m["content"] for m in sent if m["role"] in ("user", "assistant")]
    assert said[-2:] == ["Oh! You're awake.", "Where am I?"]
    assert not any("You're safe now" in m["content"] for m in sent if m["role"] == "assistant")

    # Still a version to flip after you have spoken; flipping back is kept too.
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=20_000)
    greeting.hover()
    greeting.get_by_role("button", name="Show the other version").click()
    expect(greeting.locator(".bubble-text")).to_have_text(first_message(name))
