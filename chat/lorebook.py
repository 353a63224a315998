"""Lorebooks: which entries of a card's ``character_book`` go into this turn's prompt.

A lorebook ("world info") is a list of entries, each with trigger words
(``keys``) and text (``content``). When a key turns up in the last few
messages, the entry's text is added to the system prompt, so a card can carry
far more background than would fit in every prompt. The format is Character
Card V2's (https://github.com/malfoyslastname/character-card-spec-v2), which
V3 keeps.

The book is stored as the user uploaded it, so its shape is not trusted: an
entry that is not what the spec describes is skipped on its own, and a bad
book means no lore, never a failed chat turn.

The rules, and why:

* Keys match as substrings (``"cat"`` fires on "caterpillar"), ignoring case
  unless the entry sets ``case_sensitive``. That is SillyTavern's default, and
  most cards are written and tested there; whole-word matching would also
  never fire in languages written without spaces. An entry whose
  ``extensions.match_whole_words`` is true (SillyTavern's per-entry switch)
  needs its keys as whole words (compared word by word, so punctuation and
  spacing between them do not matter).
* A ``selective`` entry needs a key from ``keys`` and one from
  ``secondary_keys`` (with no secondary keys, a primary key is enough, as in
  SillyTavern). A ``constant`` entry goes in whatever was said; an entry with
  ``enabled: false`` never does.
* Only the last ``scan_depth`` messages count (``DEFAULT_SCAN_DEPTH`` when the
  book does not say, at most ``MAX_SCAN_DEPTH``; 0 means constant entries
  only), and only of those the turn sends the LLM (``CHAT_HISTORY_MESSAGES``).
* The text is capped by a token budget: the book's ``token_budget``, but never
  more than the site's budget, so an uploaded card cannot make prompts larger
  than the operator allows; and by ``MAX_ENTRIES`` entries. When not all fit,
  the lowest ``priority`` entries are left out first; an entry too large for
  what is left is skipped, and smaller ones after it may still fit.
* What goes in is ordered by ``insertion_order`` (lower first) and placed
  before the character's description or after it, as ``position`` says
  (``before_char``, the default, or ``after_char``).

Left out: ``recursive_scanning`` (entry text triggering further entries); V3
regex keys (``use_regex``: running an uploaded pattern on a worker invites
catastrophic backtracking, so such entries fire only when constant); V3
``@@`` decorators and SillyTavern's extras (selective logic variants,
probability, insertion depth).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chat.llm import estimate_tokens
from companions.cards import fill_macros

BEFORE_CHAR = "before_char"
AFTER_CHAR = "after_char"

DEFAULT_SCAN_DEPTH = 4
MAX_SCAN_DEPTH = 100
MAX_ENTRIES = 20  # inserted in one prompt
# Bounds on the work one turn does on an uploaded book (cards may be up to IMAGE_MAX_BYTES).
MAX_BOOK_ENTRIES = 1000  # entries past this are not looked at
MAX_KEYS = 50  # per key list
MAX_KEY_CHARS = 200
MAX_CONTENT_CHARS = 50_000

_HUGE = 10**15
_WORD = re.compile(r"\w+")
_TRUE_WORDS = frozenset(("true", "yes", "on", "1"))
_FALSE_WORDS = frozenset(("false", "no", "off", "0"))


@dataclass(frozen=True)
class LoreEntry:
    """One entry's text as it goes into the prompt (names filled), and where it goes."""

    content: str
    position: str


@dataclass(frozen=True)
class _Entry:
    index: int
    keys: tuple[str, ...]
    secondary_keys: tuple[str, ...]
    content: str
    case_sensitive: bool
    whole_words: bool
    constant: bool
    insertion_order: float
    priority: float
    position: str


def select_entries(
    book: Any, *, recent_messages: Sequence[str], char: str, user: str, token_budget: int
) -> list[LoreEntry]:
    """The entries of ``book`` this turn brings in, in insertion order.

    ``recent_messages`` is the conversation's text, oldest first (the user's
    newest message last); ``token_budget`` is the site's cap on lore tokens.
    """
    budget = _budget(book, token_budget)
    if budget <= 0:
        return []
    scanned = _Scanned.of(_scanned_text(recent_messages, scan_depth(book)))
    entries = [
        entry for index, raw in enumerate(book_entries(book)) if (entry := _parse(index, raw, char, user))
    ]
    fired = [entry for entry in entries if entry.constant or _fires(entry, scanned)]
    kept = _fit(fired, char=char, user=user, budget=budget)
    return [LoreEntry(content=text, position=entry.position) for entry, text in kept]


def book_entries(book: Any) -> list[Any]:
    """The raw entries: ``book["entries"]``, or the book itself when it is a bare list."""
    entries = book.get("entries") if isinstance(book, dict) else book
    return entries[:MAX_BOOK_ENTRIES] if isinstance(entries, list) else []


def scan_depth(book: Any) -> int:
    """How many of the latest messages are scanned for keys."""
    depth = _whole_number(book.get("scan_depth")) if isinstance(book, dict) else None
    return DEFAULT_SCAN_DEPTH if depth is None else min(depth, MAX_SCAN_DEPTH)


def _budget(book: Any, site_budget: int) -> int:
    own = _whole_number(book.get("token_budget")) if isinstance(book, dict) else None
    return min(own, site_budget) if own else site_budget


def _scanned_text(messages: Sequence[str], depth: int) -> str:
    window = list(messages)[-depth:] if depth else []
    # A newline between messages keeps a key from matching across two of them.
    return "\n".join(m for m in window if isinstance(m, str))


def _parse(index: int, raw: Any, char: str, user: str) -> _Entry | None:
    """An entry in a shape the rules can use, or None when it cannot fire or has nothing to say."""
    if not isinstance(raw, dict) or not _flag(raw.get("enabled"), default=True):
        return None
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip() or len(content) > MAX_CONTENT_CHARS:
        return None
    constant = _flag(raw.get("constant"), default=False)
    keys = () if _flag(raw.get("use_regex"), default=False) else _keys(raw.get("keys"), char, user)
    if not keys and not constant:
        return None
    selective = _flag(raw.get("selective"), default=False)
    extensions = raw.get("extensions")
    if not isinstance(extensions, dict):
        extensions = {}
    return _Entry(
        index=index,
        keys=keys,
        secondary_keys=_keys(raw.get("secondary_keys"), char, user) if selective else (),
        content=content,
        case_sensitive=_flag(raw.get("case_sensitive"), default=False),
        whole_words=_flag(extensions.get("match_whole_words"), default=False),
        constant=constant,
        insertion_order=_number(raw.get("insertion_order")),
        priority=_number(raw.get("priority")),
        position=AFTER_CHAR if raw.get("position") == AFTER_CHAR else BEFORE_CHAR,
    )


def _keys(value: Any, char: str, user: str) -> tuple[str, ...]:
    """Usable keys: strings, not blank (a blank key would match everything), not absurdly long.

    A comma-separated string is read as a list, as some editors write it.
    """
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return ()
    keys = (fill_macros(k, char=char, user=user).strip() for k in value[:MAX_KEYS] if isinstance(k, str))
    return tuple(k for k in keys if k and len(k) <= MAX_KEY_CHARS)


@dataclass(frozen=True)
class _Scanned:
    """The scanned text in the forms keys are compared with, each made once per turn."""

    text: str
    folded: str
    words: str  # " word word ... ": whole-word keys are looked up as " key words "
    folded_words: str

    @classmethod
    def of(cls, text: str) -> _Scanned:
        folded = text.casefold()
        return cls(text, folded, _words(text), _words(folded))


def _words(text: str) -> str:
    # Plain substring tests on word lists, not a regex per key: a book may hold many thousands of keys.
    return f" {' '.join(_WORD.findall(text))} "


def _has_words(key: str, words: str) -> bool:
    key_words = _words(key)
    return bool(key_words.strip()) and key_words in words  # a key of punctuation alone has no words


def _fires(entry: _Entry, scanned: _Scanned) -> bool:
    if not _any_key_in(entry.keys, entry, scanned):
        return False
    return not entry.secondary_keys or _any_key_in(entry.secondary_keys, entry, scanned)


def _any_key_in(keys: Sequence[str], entry: _Entry, scanned: _Scanned) -> bool:
    if entry.whole_words:
        words = scanned.words if entry.case_sensitive else scanned.folded_words
        return any(_has_words(key if entry.case_sensitive else key.casefold(), words) for key in keys)
    if entry.case_sensitive:
        return any(key in scanned.text for key in keys)
    return any(key.casefold() in scanned.folded for key in keys)


def _fit(entries: list[_Entry], *, char: str, user: str, budget: int) -> list[tuple[_Entry, str]]:
    """The entries that fit the budget, highest priority first, returned in insertion order."""
    kept: list[tuple[_Entry, str]] = []
    left = budget
    for entry in sorted(entries, key=lambda e: (-e.priority, e.index)):
        if len(kept) == MAX_ENTRIES or left == 0:
            break
        text = fill_macros(entry.content, char=char, user=user).strip()
        cost = estimate_tokens(text)
        if text and cost <= left:
            kept.append((entry, text))
            left -= cost
    return sorted(kept, key=lambda pair: (pair[0].insertion_order, pair[0].index))


def _flag(value: Any, *, default: bool) -> bool:
    """A yes/no field: JSON booleans, numbers and "true"/"false" words; anything else is ``default``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
    return default


def _number(value: Any) -> float:
    """An ordering number (``insertion_order``, ``priority``); 0 when missing or not a finite number.

    JSON integers have no size limit and a huge one does not fit a float: it is clamped.
    """
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int):
        return float(max(-_HUGE, min(_HUGE, value)))
    return value if isinstance(value, float) and math.isfinite(value) else 0.0


def _whole_number(value: Any) -> int | None:
    """A count (``scan_depth``, ``token_budget``): a whole number >= 0, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None
