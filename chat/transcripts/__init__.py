"""A conversation to and from files: SillyTavern chat JSONL, Markdown, our own JSON.

``from chat import transcripts``, then ``transcripts.export_jsonl(conversation)``
and its siblings, or ``transcripts.conversation_import(user=..., data=...,
companion=...)``; formats and limits are in the README ("Chat import and export").
"""

from chat.models import Conversation
from chat.transcripts.exports import (
    FORMAT_NAME,
    FORMAT_VERSION,
    FORMATS,
    export_filename,
    export_json,
    export_jsonl,
    export_markdown,
)
from chat.transcripts.imports import ImportResult, conversation_import
from chat.transcripts.reading import TranscriptRejected, read_transcript

_EXPORTERS = {"jsonl": export_jsonl, "md": export_markdown, "json": export_json}


def export(conversation: Conversation, fmt: str) -> bytes:
    """The conversation in format ``fmt`` (a key of ``FORMATS``)."""
    return _EXPORTERS[fmt](conversation)


__all__ = [
    "FORMATS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ImportResult",
    "TranscriptRejected",
    "conversation_import",
    "export",
    "export_filename",
    "export_json",
    "export_jsonl",
    "export_markdown",
    "read_transcript",
]
