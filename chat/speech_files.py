"""Where spoken clips live in storage, and which of those files rows still reference.

A clip's file is ``audio/<conversation id>/<random hex>.<wav|mp3|ogg>``: a
name we make, never input. ``media.orphans`` (which cannot import chat) learns
this shape and the lookup from ``chat.apps``, so an audio file left behind (a
worker killed between the file and its row, a failed delete after commit) is
reported and swept like a lost picture, and a referenced one never is.
"""

from __future__ import annotations

import re
import uuid

from chat.models import SpeechClip

FOLDER = "audio"
EXTENSIONS = ("wav", "mp3", "ogg")  # what chat.speech.audio_info detects
# ``[^/]+`` rather than the exact hex: storage may add a suffix to a name that exists already.
CLIP_NAME = re.compile(rf"{FOLDER}/[0-9]+/[^/]+\.(?:{'|'.join(EXTENSIONS)})")


def clip_storage_name(conversation_id: int, extension: str) -> str:
    """A new clip's storage name (``extension`` comes from the detected audio format)."""
    if extension not in EXTENSIONS:
        raise ValueError(f"not a clip extension: {extension!r}")
    return f"{FOLDER}/{conversation_id}/{uuid.uuid4().hex}.{extension}"


def is_clip_name(name: str) -> bool:
    """Is ``name`` (relative to the storage root) in the shape this site writes clips in?"""
    return CLIP_NAME.fullmatch(name) is not None


def clip_names_referenced(names: list[str]) -> set[str]:
    """Those of ``names`` that a ``SpeechClip`` row points at."""
    return set(SpeechClip.objects.filter(file__in=names).values_list("file", flat=True))
