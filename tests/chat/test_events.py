"""Every server event's shape matches its TypedDict, and docs/websocket.md documents each type."""

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import get_type_hints

import pytest

from chat import events

NOW = datetime(2026, 11, 26, 9, 14, 3, tzinfo=UTC)
DOC = (Path(__file__).resolve().parents[2] / "docs" / "websocket.md").read_text()

MIKA = {"id": 2, "name": "Mika", "state": {}}
CONVERSATION = {"id": 1, "kind": "direct", "title": "", "companions": [MIKA], "branched_from": None}

SAMPLES = {
    "snapshot": events.snapshot(MIKA, None, CONVERSATION),
    "message.accepted": events.message_accepted("c", 1, "r"),
    "progress": events.progress("r", 10, "analyze_context"),
    "token": events.token("r", "Hi", 0),
    "state": events.state("r", "dress", "beach", "walking"),
    "image": events.image("r", 1, "/media/images/x.jpg"),
    "audio": events.audio("r", 1, 0, "/chat/audio/x/", 1200, last=False),
    "done": events.done("r", 1, {"prompt_tokens": 1, "completion_tokens": 2, "estimated": False}),
    "error": events.error("server", "Oops", run_id="r", retry_after=3),
    "pong": {"type": "pong"},
    "message.deleted": events.message_deleted(1),
    "message.updated": events.message_updated(1, "text", 2, edited=True),
    "conversation.branched": events.conversation_branched("c", 7, "/chat/c/7/"),
    "picture.removed": events.picture_removed(1),
    "companion.header": events.companion_header("/media/images/y.jpg", 7),
    "group.snapshot": events.group_snapshot(
        {"id": 1, "title": "Crew", "companions": [MIKA]},
        None,
        {"companion_id": 2, "sender": "Mika"},
        {**CONVERSATION, "kind": "group", "title": "Crew"},
    ),
    "turn.started": events.turn_started(
        "r", "regenerate", SimpleNamespace(pk=4, content="Hi", created_at=NOW), reply_id=5, versions=2
    ),
    "turn.speaker": events.turn_speaker("r", 2, "Mika", message_id=5),
    "turn.done": events.turn_done(1),
}

# Every run event also names its speaker (one-to-one chats too).
STAMP = {"companion_id": 2, "sender": "Mika"}
STAMPED = ["progress", "token", "state", "image", "audio", "done", "error"]


@pytest.mark.parametrize("kind", sorted(events.SERVER_EVENTS))
def test_each_event_has_its_documented_shape(kind):
    sample = SAMPLES[kind]
    assert sample["type"] == kind
    hints = get_type_hints(events.SERVER_EVENTS[kind])
    required = events.SERVER_EVENTS[kind].__required_keys__
    assert required <= set(sample) <= set(hints)


@pytest.mark.parametrize("kind", sorted({*events.SERVER_EVENTS, *events.CLIENT_FRAMES}))
def test_the_protocol_document_names_every_type(kind):
    assert f"`{kind}`" in DOC


@pytest.mark.parametrize("kind", STAMPED)
def test_run_events_may_name_their_speaker(kind):
    hints = get_type_hints(events.SERVER_EVENTS[kind])
    sample = {**SAMPLES[kind], **STAMP}
    assert set(STAMP) <= set(hints)
    assert set(STAMP).isdisjoint(events.SERVER_EVENTS[kind].__required_keys__)
    assert set(sample) <= set(hints)


def test_every_socket_accepts_every_frame():
    """One consumer serves every route: there is no smaller frame list for groups any more."""
    from chat.consumers import ConversationConsumer

    assert ConversationConsumer.client_frames is events.CLIENT_FRAMES
    assert not hasattr(events, "GROUP_CLIENT_FRAMES")


def test_snapshots_name_the_conversation():
    hints = get_type_hints(events.ConversationInfo)
    assert set(SAMPLES["snapshot"]["conversation"]) == set(hints)
    assert set(SAMPLES["group.snapshot"]["conversation"]) == set(hints)


def test_message_updated_says_edited_only_for_a_correction():
    assert "edited" not in events.message_updated(1, "text", 2)
    assert events.message_updated(1, "text", 1, edited=True)["edited"] is True


def test_error_omits_optional_fields():
    assert events.error("x", "y") == {"type": "error", "code": "x", "message": "y"}


def test_turn_speaker_names_the_reply_only_when_it_is_written_again():
    assert "message_id" not in events.turn_speaker("r", 2, "Mika")
    assert events.turn_speaker("r", 2, "Mika", message_id=5)["message_id"] == 5


def test_turn_started_names_the_message_and_refuses_an_unknown_kind():
    message = SimpleNamespace(pk=4, content="Hi", created_at=NOW)
    assert events.turn_started("r", "send", message) == {
        "type": "turn.started",
        "run_id": "r",
        "kind": "send",
        "user_message": {"id": 4, "content": "Hi", "created_at": "2026-11-26T09:14:03+00:00"},
        "reply_id": None,
    }
    with pytest.raises(ValueError):
        events.turn_started("r", "resend", message)


def test_progress_carries_the_pictures_percent_only_when_there_is_one():
    assert "percent" not in events.progress("r", 85, "generate_image")
    event = events.progress("r", 92, "generate_image", percent=50)
    assert event == {
        "type": "progress", "run_id": "r", "progress": 92, "step": "generate_image", "percent": 50
    }  # fmt: skip
    assert set(event) <= set(get_type_hints(events.ProgressEvent))


def test_a_repaint_names_the_reply_it_paints_again():
    message = SimpleNamespace(pk=4, content="Hi", created_at=NOW)
    assert events.turn_started("r", "repaint", message, reply_id=5)["reply_id"] == 5


def test_the_audio_events_keep_the_voice_contract():
    assert events.audio(None, 3, 2, "/chat/audio/u/", 900, last=True) == {
        "type": "audio",
        "run_id": None,
        "message_id": 3,
        "index": 2,
        "url": "/chat/audio/u/",
        "duration_ms": 900,
        "last": True,
    }
    assert events.audio_failed("Voice is off.", message_id=3, run_id="r") == {
        "type": "error",
        "code": "audio_failed",
        "message": "Voice is off.",
        "run_id": "r",
        "message_id": 3,
    }
