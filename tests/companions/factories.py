"""Rows for tests: companions, images, messages."""

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
