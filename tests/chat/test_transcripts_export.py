"""Exports of a conversation: SillyTavern JSONL, Markdown, our own JSON, and the file's name."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chat import transcripts
from chat.models import Conversation, Message, PipelineRun
from media.models import StoredImage
from tests.chat.factories import add_exchange, add_reply, add_user_message, make_chat, make_group

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 30, 21, 26, 5, 123000, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0.replace(minute=minute, second=0, microsecond=0)


@pytest.fixture
def chat(companion):
    conversation = make_chat(companion)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=T0)
    conversation.refresh_from_db()
    add_reply(conversation, companion, "Hey you!", alternatives=["Hello there."], created_at=at(26))
    said = add_user_message(conversation, "Where am I?", created_at=at(27))
    reply = add_reply(
        conversation,
        companion,
        "On the beach.",
        alternatives=["In a dream.", "At home."],
        reasoning="Keep it light.",
        created_at=at(28),
    )
    PipelineRun.objects.create(
        conversation=conversation,
        turn=said.turn,
        companion=companion,
        reply=reply,
        status="completed",
        analysis={"context": {"outfit": "a", "location": "b", "action": "c"},
                  "reply": {"outfit": "swimsuit", "location": "the beach", "action": "waving"}},
    )  # fmt: skip
    return conversation


def jsonl(conversation) -> list[dict]:
    return [json.loads(line) for line in transcripts.export_jsonl(conversation).decode().split("\n")]


def test_the_jsonl_header_names_the_user_the_companion_and_the_date(chat, user, companion):
    header = jsonl(chat)[0]
    assert header == {
        "user_name": user.name_for_companions,
        "character_name": companion.name,
        "create_date": "2026-11-30 @21h 26m 05s 123ms",
        "chat_metadata": {},
    }


def test_the_jsonl_has_one_line_per_message_the_greeting_first(chat, user, companion):
    lines = jsonl(chat)[1:]
    assert [(m["name"], m["is_user"], m["mes"]) for m in lines] == [
        (companion.name, False, "Hey you!"),
        (user.name_for_companions, True, "Where am I?"),
        (companion.name, False, "On the beach."),
    ]
    assert lines[1]["send_date"] == "November 30, 2026 9:27pm"
    assert "swipes" not in lines[1]


def test_a_reply_with_versions_has_swipes_with_the_shown_one_selected(chat):
    reply = jsonl(chat)[3]
    assert reply["swipes"] == ["In a dream.", "At home.", "On the beach."]
    assert reply["swipes"][reply["swipe_id"]] == reply["mes"] == "On the beach."
    assert len(reply["swipe_info"]) == 3
    assert reply["extra"] == {"reasoning": "Keep it light."}


def test_an_imported_swipe_position_comes_back(chat):
    reply = chat.messages.get(content="On the beach.")
    chat.transcript_origin = {"swipe_ids": {str(reply.pk): 0}}
    chat.save(update_fields=["transcript_origin"])
    line = jsonl(chat)[3]
    # The rotation is kept: after the shown version come the ones flipping would show next.
    assert line["swipe_id"] == 0
    assert line["swipes"] == ["On the beach.", "In a dream.", "At home."]


def test_an_imported_header_comes_back(chat):
    chat.transcript_origin = {
        "create_date": "2025-1-2 @03h 04m 05s 06ms",
        "chat_metadata": {"integrity": "x"},
    }
    chat.save(update_fields=["transcript_origin"])
    header = jsonl(chat)[0]
    assert header["create_date"] == "2025-1-2 @03h 04m 05s 06ms"
    assert header["chat_metadata"] == {"integrity": "x"}


def test_a_group_is_named_by_its_title_and_each_reply_by_its_speaker(user):
    group = make_group(user, "Mika", "Rin", title="Beach crew")
    mika, rin = group.companions.order_by("participations__position")
    add_user_message(group, "Hi all")
    add_reply(group, mika, "Hi!")
    add_reply(group, rin, "Yo.")
    lines = jsonl(group)
    assert lines[0]["character_name"] == "Beach crew"
    assert [m["name"] for m in lines[1:]] == [user.name_for_companions, "Mika", "Rin"]


def test_the_markdown_reads_as_a_transcript(chat, companion):
    text = transcripts.export_markdown(chat).decode()
    assert text.startswith(f"# Chat with {companion.name}")
    assert f"### {companion.name} — 2026-11-30 21:28 UTC (version 3 of 3)" in text
    assert "### Alice — 2026-11-30 21:27 UTC" in text
    assert "\nWhere am I?\n" in text


def test_the_json_names_its_format_and_keeps_versions_dates_and_scenes(chat, companion):
    image = StoredImage.objects.create(
        companion=companion, kind="generated", file="x.jpg", width=1, height=1, byte_size=1, original_size=1
    )
    reply = chat.messages.get(content="On the beach.")
    Message.objects.filter(pk=reply.pk).update(image=image, edited_at=at(30))
    document = json.loads(transcripts.export_json(chat))
    assert (document["format"], document["version"]) == ("companionhub.chat", 1)
    assert document["conversation"]["companions"] == [{"id": companion.pk, "name": companion.name}]
    assert document["conversation"]["kind"] == "direct"
    assert document["conversation"]["branched_from"] is None
    last = document["messages"][2]
    assert last["sender"] == {"id": companion.pk, "name": companion.name}
    assert last["versions"] == ["In a dream.", "At home.", "On the beach."]
    assert last["versions"][last["selected"]] == last["text"] == "On the beach."
    assert last["reasoning"] == "Keep it light."
    assert last["created_at"] == "2026-11-30T21:28:00Z"
    assert last["edited_at"] == "2026-11-30T21:30:00Z"
    assert last["image"] == {"id": str(image.pk)}
    assert last["state"] == {"outfit": "swimsuit", "location": "the beach", "action": "waving"}
    user_line = document["messages"][1]
    assert (user_line["role"], user_line["sender"], user_line["state"]) == ("user", None, None)


def test_the_json_names_the_message_a_branch_came_from(chat, user):
    from chat.conversations import conversation_branch

    target = chat.messages.get(content="Where am I?")
    branch = conversation_branch(user=user, conversation=chat, message_id=target.pk)
    document = json.loads(transcripts.export_json(branch))
    assert document["conversation"]["branched_from"] == {"conversation_id": chat.pk, "message_id": target.pk}
    assert [m["text"] for m in document["messages"]] == ["Hey you!", "Where am I?"]


def test_an_empty_chat_exports_only_its_header(companion):
    chat = make_chat(companion)
    assert len(jsonl(chat)) == 1
    assert json.loads(transcripts.export_json(chat))["messages"] == []


@pytest.mark.parametrize("fmt", ["jsonl", "md", "json"])
def test_the_file_name_is_safe_ascii(companion, fmt):
    chat = make_chat(companion, title='Ünïcode "quotes" / ../etc\\passwd 🐚')
    name = transcripts.export_filename(chat, fmt)
    assert name.isascii()
    assert name.endswith(f".{fmt}")
    assert not set(name) & set('"/\\;\r\n ')
    assert name.startswith(f"chat-{chat.pk}-unicode-quotes-etcpasswd-")


def test_an_unknown_format_has_no_file_name(companion):
    with pytest.raises(ValueError):
        transcripts.export_filename(make_chat(companion), "exe")


def test_a_long_chat_is_read_in_a_few_queries(companion, django_assert_max_num_queries):
    chat = make_chat(companion)
    for n in range(30):
        add_exchange(chat, companion, f"q{n}", f"a{n}")
    with django_assert_max_num_queries(6):
        transcripts.export_jsonl(chat)
