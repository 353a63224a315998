"""The JSON object in a model's answer, however the model wrapped it.

Asked for "JSON only", models still wrap it in prose or code fences, use single quotes, or
leave trailing commas. The scene analysis (``chat.prompts.extract_state``) and the memory step
(``chat.memory_prompts.parse_facts``) read their answers through here.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Work is bounded whatever a model sends: only this much of the answer is read, and at most
# this many opening braces are tried as the start of the object.
MAX_ANSWER_CHARS = 20_000
MAX_STARTS = 50
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_decoder = json.JSONDecoder()


def _balanced_end(text: str, start: int) -> int | None:
    """The index after the brace that closes the one at ``start`` (quotes of either kind
    respected), or None when it never closes."""
    depth = 0
    quote: str | None = None
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def first_json_object(raw: str) -> dict[str, Any] | None:
    """The first JSON object in ``raw`` (nested objects and lists included), or None.

    Tried as written, then with single quotes made double, then without trailing commas.
    """
    text = (raw or "")[:MAX_ANSWER_CHARS]
    start = text.find("{")
    tries = 0
    while start != -1 and tries < MAX_STARTS:
        tries += 1
        try:
            parsed, _ = _decoder.raw_decode(text, start)
        except ValueError:
            parsed = None
            end = _balanced_end(text, start)
            candidate = text[start:end] if end is not None else ""
            double = candidate.replace("'", '"')
            for repaired in (
                double,
                _TRAILING_COMMA.sub(r"\1", candidate),
                _TRAILING_COMMA.sub(r"\1", double),
            ):
                try:
                    parsed = json.loads(repaired)
                except ValueError:
                    continue
                break
        if isinstance(parsed, dict):
            return parsed
        start = text.find("{", start + 1)
    return None
