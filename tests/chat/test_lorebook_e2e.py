"""A SillyTavern World Info file, end to end: imported, attached to a companion, firing in real
chat turns (a key, a recursive entry, a regex key with AND ALL secondary keys placed at its
depth), and exported back to the same file.

Real worker and broker, the fake LLM; the prompt is read from what the fake was sent.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from companions.services import companion_set_lorebooks
from lorebooks.services import lorebook_import
from tests.lorebooks.samples import world_info

pytestmark = pytest.mark.django_db(transaction=True)


def eldoria() -> dict:
    """The sample file with the recursive link allowed and the regex entry always firing."""
    data = world_info()
    data["entries"]["1"]["excludeRecursion"] = False
    data["entries"]["2"]["probability"] = 100
    return data


def sent_messages(fake) -> list[dict]:
    return next(r["json"] for r in reversed(fake.requests) if r["json"].get("stream"))["messages"]


async def say(client, text: str, client_id: str) -> None:
    await client.send({"type": "message.send", "content": text, "client_id": client_id})
    await client.receive_until("done")


async def test_a_world_info_file_fires_in_chat_and_exports_back(
    worker, use_fake_llm, connect, companion, user
):
    data = eldoria()
    book = await sync_to_async(lorebook_import)(user, json.dumps(data).encode())
    await sync_to_async(companion_set_lorebooks)(companion=companion, lorebooks=[book])
    client = await connect(companion.pk, user=user)

    await say(client, "Tell me about the kingdom.", "m1")
    system = sent_messages(use_fake_llm)[0]["content"]
    assert "Eldoria is a kingdom of rivers" in system  # its key
    assert "Veyra's harbour is guarded by the Shadowfang." in system  # recursion: Eldoria's text names Veyra
    # Constant; SillyTavern's Author's Note position has no column of ours: it goes in at its depth.
    assert "The year is 1203" in json.dumps(sent_messages(use_fake_llm))
    assert "The moon has two faces" not in system  # disabled
    assert "wolves made of smoke" not in json.dumps(sent_messages(use_fake_llm))  # secondary keys missing

    await say(client, "I saw shadow fangs last night: a wolf made of smoke!", "m2")
    messages = sent_messages(use_fake_llm)
    depth_entry = [
        i for i, m in enumerate(messages) if "Shadowfang are wolves made of smoke." in m["content"]
    ]
    assert len(depth_entry) == 1  # the regex key and both secondary keys (AND ALL)
    index = depth_entry[0]
    assert messages[index]["role"] == "system" and index > 0  # @depth: in the chat, not the system prompt
    assert messages[-1]["content"].startswith("I saw shadow fangs")
    assert len(messages) - index - 1 == 2  # two messages from the end, as its depth says

    await say(client, "What about the moon at night?", "m3")
    assert "The moon has two faces" not in json.dumps(sent_messages(use_fake_llm))


def test_the_attached_book_exports_as_the_file_it_was(client, user):
    data = eldoria()
    book = lorebook_import(user, json.dumps(data).encode())
    client.force_login(user)
    response = client.get(reverse("lorebooks:export", args=[book.pk, "world-info"]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    exported = json.loads(b"".join(response.streaming_content) if response.streaming else response.content)
    assert exported == data
