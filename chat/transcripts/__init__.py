"""A conversation to and from files: SillyTavern chat JSONL, Markdown, our own JSON.

``from chat import transcripts``, then ``transcripts.export_jsonl(conversation)``
and its siblings; formats and limits are in the README ("Chat import and export").
"""

from chat.transcripts.exports import (
    FORMAT_NAME,
    FORMAT_VERSION,
    FORMATS,
    export_filename,
    export_json,
    export_jsonl,
    export_markdown,
)

__all__ = [
    "FORMATS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "export_filename",
    "export_json",
    "export_jsonl",
    "export_markdown",
]
