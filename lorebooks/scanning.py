"""Which lorebook entries a turn brings in: SillyTavern's World Info rules, on plain values.

INTERFACE (skeleton): the dataclasses and ``scan``'s signature are the contract the chat
pipeline codes against; the rules are to be written here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

BEFORE_CHAR = "before_char"
AFTER_CHAR = "after_char"
AT_DEPTH = "at_depth"

AND_ANY, NOT_ALL, NOT_ANY, AND_ALL = 0, 1, 2, 3


@dataclass(frozen=True)
class ScanEntry:
    """One entry as the scanner needs it (``lorebooks.selectors.scan_books`` makes these)."""

    uid: int
    keys: tuple[str, ...]
    content: str
    secondary_keys: tuple[str, ...] = ()
    selective_logic: int = AND_ANY
    comment: str = ""
    constant: bool = False
    enabled: bool = True
    order: int = 100
    position: str = BEFORE_CHAR
    depth: int = 4
    probability: int = 100
    case_sensitive: bool = False
    match_whole_words: bool = False
    use_regex: bool = False
    exclude_recursion: bool = False
    prevent_recursion: bool = False


@dataclass(frozen=True)
class ScanBook:
    """A book's entries and its scan settings."""

    book_id: int
    name: str
    entries: tuple[ScanEntry, ...]
    scan_depth: int = 4
    recursion_depth: int = 3
    token_budget: int = 0  # 0: the caller's budget alone


@dataclass(frozen=True)
class Fired:
    """An entry that goes into the prompt: its text with ``{{char}}``/``{{user}}`` filled."""

    book_id: int
    book_name: str
    uid: int
    comment: str
    text: str
    position: str
    depth: int
    order: int
    tokens: int
    reason: str  # "constant", "key: <key>", "recursion: <key>"


@dataclass
class ScanResult:
    fired: list[Fired] = field(default_factory=list)
    # Entries that triggered but did not fit the budget (shown in the prompt view).
    over_budget: list[Fired] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(f.tokens for f in self.fired)


def scan(
    books: Sequence[ScanBook],
    *,
    messages: Sequence[str],
    always_scanned: Sequence[str] = (),
    char: str,
    user: str,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    rng: random.Random | None = None,
) -> ScanResult:
    """The entries of ``books`` this turn brings in, ordered by ``order`` (lower first).

    ``messages`` is the chat's text, oldest first (each book scans its own ``scan_depth`` of
    the newest); ``always_scanned`` (the greeting, the summary) is scanned whatever the
    depth; ``budget_tokens`` caps the tokens of everything fired (each book's own
    ``token_budget`` caps its share too), counted by ``count_tokens``.
    """
    raise NotImplementedError
