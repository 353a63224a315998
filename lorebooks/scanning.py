"""Which lorebook entries a turn brings in: SillyTavern's World Info rules, on plain values.

Users write and test their books in SillyTavern, so an entry fires here when it would fire
there (``checkWorldInfo`` in its ``public/scripts/world-info.js``). The rules, and where we
part from it on purpose:

* **Keys** match as substrings, ignoring case unless the entry is ``case_sensitive``
  (compared casefolded, so "STRASSE" finds "Straße"). With ``match_whole_words`` a key of one
  word must stand alone: the characters either side of it are not letters, digits or ``_``
  (SillyTavern's ``(?:^|\\W)key(?:$|\\W)``, but Unicode-aware: "ber" is not a whole word in
  "über"); a key of several words still matches as a substring, as there. ``{{char}}`` and
  ``{{user}}`` are filled in keys and content. A blank key never matches.
* **Regex keys**: a key written ``/pattern/flags`` (flags ``i``, ``s``, ``m``; ``g``, ``u``,
  ``y`` mean nothing for a yes/no test and are ignored) is a regular expression, and with
  ``use_regex`` every key is one (a bare pattern, case-insensitive unless the entry is
  ``case_sensitive``). As in SillyTavern, a ``/.../`` key's own flags decide its case and
  whole-word does not apply; a ``/`` inside it must be escaped, or the key is plain text.
  Patterns run on RE2 (``google-re2``), whose time is linear in the text, so a hostile
  pattern such as ``(a+)+$`` cannot stall a worker. What RE2 cannot run (backreferences,
  lookaround) or a pattern over ``MAX_PATTERN_CHARS`` makes that key never match: logged
  once while the pattern is cached, never raised. Compiled patterns are kept in a bounded
  LRU cache, so a turn compiles nothing it compiled before.
* **Secondary keys** (any entry that has them): after a primary key matched, ``AND_ANY``
  needs one of them, ``AND_ALL`` all, ``NOT_ANY`` none, ``NOT_ALL`` not all. With no
  secondary keys the primary match is enough. An unknown logic number reads as ``AND_ANY``
  (SillyTavern would never fire such an entry). ``constant`` entries need no key;
  ``enabled=False`` never fires; an entry whose content is blank is skipped.
* **What is scanned**: each book's ``scan_depth`` newest ``messages`` (at most
  ``MAX_SCAN_DEPTH``), plus ``always_scanned`` (the greeting, the summary) whatever the depth.
  A book with ``scan_depth`` 0 brings in its constant entries only: nothing is scanned for
  its keys, not ``always_scanned`` and not recursion (SillyTavern returns no text at depth
  0). Each text keeps its last ``MAX_MESSAGE_CHARS`` characters; texts are joined with a
  newline, a control character and a newline, so no key (not even ``night\\s+storm``)
  matches across two messages while ``^``/``$`` with ``m`` still find a message's start and
  end.
* **Recursion**: the text of entries that fired (unless ``prevent_recursion``) is scanned
  again for entries that have not fired, pass after pass, while new entries fire. Pass
  ``n`` (the first recursive pass is 1) looks only at entries of books whose
  ``recursion_depth`` is at least ``n`` and that are not ``exclude_recursion``, and never
  goes past ``MAX_RECURSION_DEPTH``; each entry fires at most once, so cycles end.
* **Probability**: an entry that triggered (constant ones too) goes in with
  ``probability`` percent chance, rolled once per scan on ``rng``; 100 never rolls, 0 never
  goes in. An entry that lost its roll is not rolled again by a later pass.
* **Budget**, in SillyTavern's order: books in the order given (the caller puts the chat's
  books before the character's), inside a book the highest ``order`` first, entries of the
  first pass before those found by recursion. Entries are taken in that order until one
  does not fit ``budget_tokens`` (or ``max_entries`` are in): it and every entry triggered
  after it go to ``over_budget`` (at most ``MAX_OVER_BUDGET`` listed), and recursion stops.
  A book's own ``token_budget`` closes that book the same way while the other books go on.
  So the budget drops the lowest ``order`` first, and a large entry is never overtaken by a
  smaller, lower one (the older engine in ``chat.lorebook`` skipped it and went on;
  SillyTavern stops). ``budget_tokens`` of 0 turns lorebooks off.
* **Output**: ``fired`` sorted by ``order`` (lower first; ties in book, then entry order) for
  insertion, each with its position (``before_char``, ``after_char`` or ``at_depth``, an
  unknown one read as ``before_char``), its depth for ``at_depth`` entries (0 otherwise)
  and a reason: ``constant``, ``key: <key>`` or ``recursion: <key>``.

Cost: per scan the texts are casefolded, split into words and encoded for RE2 once;
plain keys are substring tests, one-word whole-word keys are set lookups, and each key's
preparation (and regex compilation) is cached across turns.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import re2

from companionhub.macros import fill_macros

logger = logging.getLogger(__name__)

BEFORE_CHAR = "before_char"
AFTER_CHAR = "after_char"
AT_DEPTH = "at_depth"
POSITIONS = (BEFORE_CHAR, AFTER_CHAR, AT_DEPTH)

AND_ANY, NOT_ALL, NOT_ANY, AND_ALL = 0, 1, 2, 3
_LOGICS = (AND_ANY, NOT_ALL, NOT_ANY, AND_ALL)

MAX_FIRED = 50  # entries one prompt may carry
MAX_OVER_BUDGET = 50  # entries listed as left out (each costs a token count)
MAX_SCAN_DEPTH = 1000  # messages (SillyTavern's cap)
MAX_RECURSION_DEPTH = 10  # recursive passes
MAX_INSERT_DEPTH = 1000  # messages from the end, for ``at_depth``
MAX_MESSAGE_CHARS = 32_000  # of each scanned text (the longest imported message)
MAX_BOOK_ENTRIES = 5000  # entries of one book looked at
MAX_KEYS = 50  # per key list
MAX_KEY_CHARS = 200  # a plain key
MAX_PATTERN_CHARS = 500  # a regex key's pattern
PATTERN_CACHE_SIZE = 512
KEY_CACHE_SIZE = 8192
RE2_MAX_MEMORY = 4 << 20  # bytes per compiled pattern; a pattern needing more is refused

# Between two scanned texts: "\n" keeps "." and substrings from crossing, "\x01" (neither a
# word character nor a space) keeps "\s" and whole words from crossing.
SEPARATOR = "\n\x01\n"

_WORD = re.compile(r"\w+")
_WORD_CHAR = re.compile(r"\w")
_REGEX_KEY = re.compile(r"^/([\s\S]+?)/([gimsuy]*)$")
_UNESCAPED_SLASH = re.compile(r"(?:^|[^\\])/")


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
    max_entries: int = MAX_FIRED,
) -> ScanResult:
    """The entries of ``books`` this turn brings in, ordered by ``order`` (lower first).

    ``messages`` is the chat's text, oldest first (each book scans its own ``scan_depth`` of
    the newest); ``always_scanned`` (the greeting, the summary) is scanned whatever the
    depth; ``budget_tokens`` caps the tokens of everything fired (each book's own
    ``token_budget`` caps its share too), counted by ``count_tokens``; at most
    ``max_entries`` (never more than ``MAX_FIRED``) go in. ``rng`` rolls the probabilities
    (a fresh ``random.Random()`` when None). The rules are in the module docstring.
    """
    result = ScanResult()
    if budget_tokens <= 0:
        return result
    live = _prepare(books, char=char, user=user)
    if not live:
        return result
    ranks = _Scan(
        live,
        texts=_ChatTexts(messages, always_scanned),
        budget=budget_tokens,
        max_entries=max(0, min(max_entries, MAX_FIRED)),
        count_tokens=count_tokens,
        rng=rng if rng is not None else random.Random(),  # noqa: S311 - a story's dice, not a secret
        result=result,
    ).run()
    result.fired.sort(key=lambda fired: ranks[id(fired)])
    return result


def key_matches(
    key: str,
    text: str,
    *,
    case_sensitive: bool = False,
    match_whole_words: bool = False,
    use_regex: bool = False,
) -> bool:
    """Whether one key (macros already filled) matches ``text`` by the scan's rules.

    For an editor's "test this key" and for checks. ``text`` is taken whole (a scan cuts each
    message to ``MAX_MESSAGE_CHARS``); RE2 keeps even a long one linear.
    """
    prepared = _key(key.strip(), case_sensitive, match_whole_words, use_regex)
    return prepared is not None and prepared.hits(_Text(text))


def regex_key_unusable(key: str, *, use_regex: bool = False) -> bool:
    """True when ``key`` is a regex key the scan will never run (RE2 refuses it, or too long).

    Lets an editor or importer warn the user; a plain key is never "unusable".
    """
    parsed = _regex_source(key.strip(), use_regex=use_regex, case_sensitive=False)
    return parsed is not None and _compile(*parsed) is None


# --- preparing entries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Live:
    """An entry that can fire this scan, with what the scan needs worked out once."""

    book_index: int
    entry_index: int
    book: ScanBook
    entry: ScanEntry
    keys: tuple[_Key, ...]
    secondary: tuple[_Key, ...]
    logic: int
    text: str
    scan_depth: int
    recursion_depth: int
    probability: int


def _prepare(books: Sequence[ScanBook], *, char: str, user: str) -> list[_Live]:
    """The entries that could fire, in SillyTavern's order: books as given, highest order first."""
    live: list[_Live] = []
    for book_index, book in enumerate(books):
        scan_depth = _clamp(book.scan_depth, 0, MAX_SCAN_DEPTH)
        recursion_depth = _clamp(book.recursion_depth, 0, MAX_RECURSION_DEPTH)
        candidates = []
        for entry_index, entry in enumerate(book.entries[:MAX_BOOK_ENTRIES]):
            if not entry.enabled or not isinstance(entry.content, str):
                continue
            text = fill_macros(entry.content, char=char, user=user).strip()
            if not text:
                continue
            keys = _keys(entry.keys, entry, char, user)
            if not keys and not entry.constant:
                continue
            candidates.append(
                _Live(
                    book_index=book_index,
                    entry_index=entry_index,
                    book=book,
                    entry=entry,
                    keys=keys,
                    secondary=_keys(entry.secondary_keys, entry, char, user),
                    logic=entry.selective_logic if entry.selective_logic in _LOGICS else AND_ANY,
                    text=text,
                    scan_depth=scan_depth,
                    recursion_depth=recursion_depth,
                    probability=_clamp(entry.probability, 0, 100),
                )
            )
        candidates.sort(key=lambda item: (-item.entry.order, item.entry_index))
        live.extend(candidates)
    return live


def _keys(raw: Sequence[str], entry: ScanEntry, char: str, user: str) -> tuple[_Key, ...]:
    if not raw:
        return ()
    flags = (entry.case_sensitive, entry.match_whole_words, entry.use_regex)
    return _key_list(tuple(raw[:MAX_KEYS]), *flags, char, user)


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _key_list(
    raw: tuple[str, ...], case_sensitive: bool, whole_words: bool, use_regex: bool, char: str, user: str
) -> tuple[_Key, ...]:
    """An entry's key list prepared (one cache look-up a list, not one a key, on every turn)."""
    keys = []
    for value in raw:
        if not isinstance(value, str):
            continue
        key = _key(fill_macros(value, char=char, user=user).strip(), case_sensitive, whole_words, use_regex)
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


# --- keys -----------------------------------------------------------------------------------

_PLAIN, _WORD_KEY, _EDGED, _REGEX = range(4)


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: memo look-ups stay cheap
class _Key:
    """A key ready to test: what it was written as, how it matches, and against which form."""

    written: str
    kind: int
    needle: str
    folded: bool  # compared with the casefolded text
    pattern: re2._Regexp | None = None

    def hits(self, text: _Text) -> bool:
        if self.kind == _PLAIN:
            return self.needle in (text.folded if self.folded else text.text)
        if self.kind == _WORD_KEY:
            return self.needle in (text.folded_words if self.folded else text.words)
        if self.kind == _EDGED:
            return _edged(text.folded if self.folded else text.text, self.needle)
        assert self.pattern is not None
        return self.pattern.search(text.utf8) is not None


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _key(written: str, case_sensitive: bool, whole_words: bool, use_regex: bool) -> _Key | None:
    """A key prepared for matching, or None when it can never match (blank, too long, bad regex)."""
    if not written:
        return None
    source = _regex_source(written, use_regex=use_regex, case_sensitive=case_sensitive)
    if source is not None:
        pattern = _compile(*source)
        return None if pattern is None else _Key(written, _REGEX, written, False, pattern)
    if len(written) > MAX_KEY_CHARS:
        return None
    needle = written if case_sensitive else written.casefold()
    if whole_words and len(needle.split()) == 1:
        kind = _WORD_KEY if _WORD.fullmatch(needle) else _EDGED
        return _Key(written, kind, needle, not case_sensitive)
    return _Key(written, _PLAIN, needle, not case_sensitive)


def _regex_source(key: str, *, use_regex: bool, case_sensitive: bool) -> tuple[str, str] | None:
    """(pattern, flags) when ``key`` is a regex key, else None (a plain key).

    ``/pattern/flags`` as SillyTavern's ``parseRegexFromString`` reads it: a ``/`` inside must
    be escaped (RE2 reads ``\\/`` as ``/``). Under ``use_regex`` a key not so written is a
    bare pattern whose case follows the entry.
    """
    match = _REGEX_KEY.match(key)
    if match and not _UNESCAPED_SLASH.search(match.group(1)):
        return match.group(1), "".join(sorted(set(match.group(2)) & set("ism")))
    if use_regex:
        return key, "" if case_sensitive else "i"
    return None


@lru_cache(maxsize=PATTERN_CACHE_SIZE)
def _compile(pattern: str, flags: str) -> re2._Regexp | None:
    """The compiled pattern, or None (logged once while cached) when RE2 will not run it."""
    if len(pattern) > MAX_PATTERN_CHARS:
        logger.info("lorebook regex key ignored: pattern longer than %s characters", MAX_PATTERN_CHARS)
        return None
    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEMORY
    try:
        return re2.compile(f"(?{flags}){pattern}" if flags else pattern, options)
    except (re2.error, UnicodeError, TypeError, ValueError) as error:
        logger.info("lorebook regex key ignored: RE2 cannot run %r (%s)", pattern[:80], error)
        return None


def _edged(text: str, needle: str) -> bool:
    """``needle`` somewhere in ``text`` with no word character either side of it."""
    start = text.find(needle)
    while start != -1:
        end = start + len(needle)
        if (start == 0 or not _WORD_CHAR.match(text[start - 1])) and (
            end == len(text) or not _WORD_CHAR.match(text[end])
        ):
            return True
        start = text.find(needle, start + 1)
    return False


class _Text:
    """One scanned text in the forms keys are compared with, each made once, when first needed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.memo: dict[_Key, bool] = {}  # whether a key matches it (keys hash by identity)

    @cached_property
    def folded(self) -> str:
        return self.text.casefold()

    @cached_property
    def words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.text))

    @cached_property
    def folded_words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.folded))

    @cached_property
    def utf8(self) -> bytes:
        # RE2 matches bytes; handing it str would encode the text again for every pattern.
        return self.text.encode("utf-8", "replace")


class _ChatTexts:
    """The chat text each scan depth sees (with ``always_scanned``), made once per depth."""

    def __init__(self, messages: Sequence[str], always_scanned: Sequence[str]) -> None:
        self._messages = list(messages[-MAX_SCAN_DEPTH:])
        self._always = _pieces(always_scanned)
        self._by_depth: dict[int, _Text | None] = {}

    def at(self, depth: int) -> _Text | None:
        if depth <= 0:
            return None
        if depth not in self._by_depth:
            pieces = _pieces(self._messages[-depth:]) + self._always
            self._by_depth[depth] = _Text(SEPARATOR.join(pieces)) if pieces else None
        return self._by_depth[depth]


def _pieces(texts: Sequence[str]) -> list[str]:
    # A long text keeps its end: the newest part of a summary, the last words of a message.
    pieces = (text[-MAX_MESSAGE_CHARS:].strip() for text in texts if isinstance(text, str))
    return [piece for piece in pieces if piece]


# --- the scan ---------------------------------------------------------------------------------


class _Scan:
    """One scan's state: passes until nothing new fires, the budget is spent or recursion ends."""

    def __init__(
        self,
        live: list[_Live],
        *,
        texts: _ChatTexts,
        budget: int,
        max_entries: int,
        count_tokens: Callable[[str], int],
        rng: random.Random,
        result: ScanResult,
    ) -> None:
        self.live = live
        self.texts = texts
        self.budget = budget
        self.max_entries = max_entries
        self.count_tokens = count_tokens
        self.rng = rng
        self.result = result
        self.settled: set[int] = set()  # indexes in ``live``: fired, lost the roll, or left out
        self.used = 0
        self.book_used: dict[int, int] = {}
        self.closed_books: set[int] = set()
        self.overflowed = False
        self.recursed: list[_Text] = []  # the text each recursive pass added
        self.ranks: dict[int, tuple[int, int, int]] = {}  # id(fired): its place in the prompt

    def run(self) -> dict[int, tuple[int, int, int]]:
        """Scan pass after pass into ``result``; returns the sort key of each fired entry."""
        deepest = max(item.recursion_depth for item in self.live)
        for level in range(deepest + 1):  # level 0: the chat; then each recursive pass
            triggered = self._triggered(level)
            feed = self._take(triggered, recursive=level > 0)
            if self.overflowed or not feed:
                break
            # Each pass's new text is a text of its own: what earlier ones matched is memoised.
            self.recursed.append(_Text(SEPARATOR.join(feed)))
        return self.ranks

    def _triggered(self, level: int) -> list[tuple[int, _Live, str | None]]:
        """Entries not yet settled that fire on this pass, in budget order, with the key that did it.

        An entry still unsettled on pass ``level`` was looked at on every earlier pass and did
        not fire, so without secondary keys only the newest text can change that; an entry with
        secondary keys is judged on all the texts (earlier answers come from the memos).
        """
        found: list[tuple[int, _Live, str | None]] = []
        newest = self.recursed[-1] if level else None
        for index, item in enumerate(self.live):
            if index in self.settled:
                continue
            if level and (level > item.recursion_depth or item.entry.exclude_recursion):
                continue
            if item.entry.constant:
                found.append((index, item, None))
                continue
            if item.scan_depth == 0:
                continue  # constant entries only: not even recursion is scanned
            chat = self.texts.at(item.scan_depth)
            if item.secondary:
                texts = [chat, *self.recursed] if chat is not None else self.recursed
                key = self._fires(item, texts) if texts else None
            else:
                text = newest or chat
                key = next((k.written for k in item.keys if k.hits(text)), None) if text else None
            if key is not None:
                found.append((index, item, key))
        return found

    def _fires(self, item: _Live, texts: list[_Text]) -> str | None:
        primary = next((key for key in item.keys if self._hit(key, texts)), None)
        if primary is None:
            return None
        hits = (self._hit(key, texts) for key in item.secondary)
        if item.logic == AND_ALL:
            fires = all(hits)
        elif item.logic == NOT_ANY:
            fires = not any(hits)
        elif item.logic == NOT_ALL:
            fires = not all(hits)
        else:
            fires = any(hits)
        return primary.written if fires else None

    def _hit(self, key: _Key, texts: list[_Text]) -> bool:
        for text in texts:
            hit = text.memo.get(key)
            if hit is None:
                hit = text.memo[key] = key.hits(text)
            if hit:
                return True
        return False

    def _take(self, triggered: list[tuple[int, _Live, str | None]], *, recursive: bool) -> list[str]:
        """Roll, then take entries while they fit; returns the texts that feed the next pass."""
        feed: list[str] = []
        for ident, item, key in triggered:
            if not self._rolled(item.probability):
                self.settled.add(ident)
                continue
            if self.overflowed and len(self.result.over_budget) >= MAX_OVER_BUDGET:
                return feed  # left out, and not worth counting
            self.settled.add(ident)
            fired = self._fired(item, key, recursive=recursive)
            if self.overflowed or self._full(fired.tokens):
                self.overflowed = True
            elif item.book_index in self.closed_books or not self._fits_book(item, fired.tokens):
                self.closed_books.add(item.book_index)
            else:
                self.used += fired.tokens
                self.book_used[item.book_index] = self.book_used.get(item.book_index, 0) + fired.tokens
                self.result.fired.append(fired)
                self.ranks[id(fired)] = (fired.order, item.book_index, item.entry_index)
                if not item.entry.prevent_recursion:
                    feed.append(item.text)
                continue
            if len(self.result.over_budget) < MAX_OVER_BUDGET:
                self.result.over_budget.append(fired)
        return feed

    def _full(self, tokens: int) -> bool:
        return len(self.result.fired) >= self.max_entries or self.used + tokens > self.budget

    def _fits_book(self, item: _Live, tokens: int) -> bool:
        cap = item.book.token_budget
        return cap <= 0 or self.book_used.get(item.book_index, 0) + tokens <= cap

    def _rolled(self, probability: int) -> bool:
        if probability >= 100:
            return True
        if probability <= 0:
            return False
        return self.rng.random() * 100 <= probability

    def _fired(self, item: _Live, key: str | None, *, recursive: bool) -> Fired:
        entry = item.entry
        position = entry.position if entry.position in POSITIONS else BEFORE_CHAR
        reason = "constant" if key is None else f"{'recursion' if recursive else 'key'}: {key}"
        return Fired(
            book_id=item.book.book_id,
            book_name=item.book.name,
            uid=entry.uid,
            comment=entry.comment,
            text=item.text,
            position=position,
            depth=_clamp(entry.depth, 0, MAX_INSERT_DEPTH) if position == AT_DEPTH else 0,
            order=entry.order,
            tokens=max(0, int(self.count_tokens(item.text))),
            reason=reason,
        )
