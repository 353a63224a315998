"""Card placeholders (``{{char}}``, ``{{user}}``, ...) filled in, for every app that shows card text.

Character cards and lorebooks are written for any user and any character name, so
the names go in when the text is used (a prompt, a page, a lorebook scan), never
into what is stored or exported. One implementation here, below every app, so
``companions`` (cards) and ``lorebooks`` (which may not import ``companions``) fill
them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_MACROS = (
    (re.compile(r"\{\{\s*char\s*\}\}|<BOT>", re.IGNORECASE), "char"),
    (re.compile(r"\{\{\s*user\s*\}\}|<USER>", re.IGNORECASE), "user"),
    (re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE), "original"),
)


def fill_macros(text: str, *, char: str, user: str) -> str:
    """Card placeholders filled: ``{{char}}``/``<BOT>``, ``{{user}}``/``<USER>``; ``{{original}}`` removed."""
    if not text or ("{" not in text and "<" not in text):
        return text
    names = {"char": char, "user": user, "original": ""}
    for pattern, key in _MACROS:
        text = pattern.sub(_literally(names[key]), text)
    return text


def _literally(value: str) -> Callable[[re.Match[str]], str]:
    """A replacement ``re.sub`` puts in as is: a string would be read for backslash escapes."""
    return lambda _match: value
