"""Rows for tests: companions, images, a run in a chat."""

from __future__ import annotations

import io

from PIL import Image

from companions.models import Companion

VALID = {
    "style": "anime",
    "gender": "female",
    "age": 25,
    "ethnicity": "east_asian",
    "skin_tone": "fair",
    "hair_color": "pink",
    "hair_style": "long_wavy",
    "eye_color": "green",
    "body_type": "slim",
    "height": "average",
    "chest": "medium",
    "distinguishing_features": "a small star tattoo",
    "name": "Mika",
    "personality_traits": ["playful", "caring"],
    "hobbies": ["gaming", "music"],
    "occupation": "artist",
    "relationship": "friend",
    "backstory": "Grew up by the sea.",
    "greeting": "Hey you!",
    "visual_prompt": "soft pastel colours",
    "system_prompt": "",
}


def make_companion(owner, **fields) -> Companion:
    return Companion.objects.create(owner=owner, **{**VALID, **fields})


def png_bytes(width: int = 64, height: int = 48, color=(200, 80, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_run(companion, *, status: str = "running", said: str = "hi", answer: str | None = None, **fields):
    """A reply run of ``companion`` in a new one-to-one chat: the user's message (with its turn)
    and, when ``answer`` is given, the reply being written."""
    from chat.models import PipelineRun
    from tests.chat.factories import add_reply, add_user_message, make_chat

    chat = make_chat(companion)
    message = add_user_message(chat, said)
    reply = add_reply(chat, companion, answer) if answer is not None else None
    return PipelineRun.objects.create(
        conversation=chat, turn=message.turn, companion=companion, reply=reply, status=status, **fields
    )
