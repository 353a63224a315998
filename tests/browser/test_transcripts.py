"""A SillyTavern chat brought in from the companion's page, read, continued, and exported again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import online, send, texts
from tests.chat.sillytavern import FIXTURE

pytestmark = pytest.mark.browser


def test_import_a_sillytavern_chat_and_export_it(chat):
    page, llm = chat
    llm.set_reply("Lead the way.")
    companion_id = page.locator("section.chat").get_attribute("data-companion-id")
    page.goto(f"/companions/{companion_id}/")
    page.get_by_role("link", name="Import a chat").click()
    expect(page.get_by_label("With")).to_have_value(companion_id)
    page.get_by_label("Chat file").set_input_files(
        {"name": "seraphina.jsonl", "mimeType": "application/jsonl", "buffer": FIXTURE.read_bytes()}
    )
    page.get_by_role("button", name="Import").click()

    expect(page.locator(".messages")).to_contain_text("The chat is imported: 7 messages.")
    online(page)
    assert texts(page) == [
        "Welcome to the glade, traveller.",
        "Where am I?",
        "In the Eldoria forest.",
        "Can you help me?",
        "Of course. Follow me.",
        "Thank you, Seraphina.",
        "Mind the roots.",
    ]
    send(page, "Onwards!")
    expect(page.locator(".chat-log .bubble.assistant .bubble-text").last).to_have_text("Lead the way.")

    page.get_by_text("Export", exact=True).click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="SillyTavern chat (.jsonl)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".jsonl")
    lines = [json.loads(line) for line in Path(download.path()).read_text().split("\n")]
    assert lines[0]["chat_metadata"]["integrity"] == "5b0b3b0e-2f1a-4c55-9a61-0d8f4a7c2e11"
    assert lines[3]["swipes"] == ["You are safe here.", "In the Eldoria forest.", "Somewhere between dreams."]
    assert lines[3]["swipe_id"] == 1
    assert [line["mes"] for line in lines[-2:]] == ["Onwards!", "Lead the way."]


def test_a_broken_file_shows_its_lines(page, site):
    from tests.browser.test_journey import register

    register(page, "transcriptbroken", screenshots=False)
    page.goto("/chat/import/")
    page.get_by_label("Chat file").set_input_files(
        {
            "name": "broken.jsonl",
            "mimeType": "application/jsonl",
            "buffer": b'{"user_name":"U"}\n{oops\n{"mes":5}',
        }
    )
    page.get_by_role("button", name="Import").click()
    problems = page.locator("[data-import-problems] li")
    expect(problems).to_have_text(["line 2: not JSON", "line 3: 'mes' should be text"])
