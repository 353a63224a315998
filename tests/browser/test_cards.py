"""Character cards as a new user meets them: import a PNG card, chat, export it again."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from companions.cards import png_text_chunks
from tests.browser.conftest import shoot
from tests.browser.test_journey import register
from tests.companions.test_cards import LOREBOOK, b64, card_png, v2_card

pytestmark = pytest.mark.browser

REPLY = "*Seraphina smiles softly.* Rest now; the glade will keep you safe."


def test_import_a_card_chat_with_it_and_export_it(page, fake_backends):
    llm, _ = fake_backends
    llm.set_reply(REPLY)
    llm.completion_text = '{"outfit": "a green robe", "location": "in the glade", "action": "kneeling"}'
    llm.token_delay = 0.0
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)

    page.goto("/companions/")
    page.get_by_role("link", name="Import a character card").click()
    shoot(page, "card-import-desktop")
    card = card_png({"chara": b64(v2_card(character_book=LOREBOOK))}, size=(300, 300))
    page.get_by_label("Character card").set_input_files(
        {"name": "seraphina.png", "mimeType": "image/png", "buffer": card}
    )
    page.get_by_role("button", name="Import").click()

    expect(page.locator(".chat-title")).to_have_text("Seraphina")
    expect(page.locator(".messages")).to_contain_text("Seraphina is imported")
    expect(page.locator(".bubble.greeting")).to_contain_text(f"You're safe now, {name}.")
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
    data = json.loads(base64.b64decode(png_text_chunks(exported)["chara"]))["data"]
    assert data["name"] == "Seraphina"
    assert data["character_book"]["entries"][0]["keys"] == ["glade", "forest"]
