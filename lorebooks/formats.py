"""Lorebook files: SillyTavern World Info JSON and a character card's ``character_book``.

Pure functions on plain JSON values (no database), so the card import, the lorebook pages
and the migration that moved card books into rows all read and write books the same way.

The formats, as SillyTavern reads and writes them (``public/scripts/world-info.js``,
``src/endpoints/characters.js``):

- World Info: ``{"entries": {"<uid>": {uid, key, keysecondary, comment, content, constant,
  vectorized, selective, selectiveLogic, addMemo, order, position, disable, excludeRecursion,
  preventRecursion, delayUntilRecursion, probability, useProbability, depth, group,
  groupOverride, groupWeight, scanDepth, caseSensitive, matchWholeWords, useGroupScoring,
  automationId, role, sticky, cooldown, delay, displayIndex, ...}}, ...}``. ``position``:
  0 before the character, 1 after it, 2/3 top/bottom of the Author's Note, 4 in the chat at
  ``depth``, 5/6 before/after the example messages, 7 an outlet. ``selectiveLogic``: 0 AND ANY,
  1 NOT ALL, 2 NOT ANY, 3 AND ALL.
- ``character_book`` (Character Card V2, V3 adds ``use_regex``): ``{name, description,
  scan_depth, token_budget, recursive_scanning, extensions, entries: [{keys, secondary_keys,
  content, extensions, enabled, insertion_order, case_sensitive, name, priority, id, comment,
  selective, constant, position: "before_char"|"after_char", use_regex}]}``; SillyTavern keeps
  its own fields in each entry's ``extensions`` (``position`` as its number, ``depth``,
  ``selectiveLogic``, ``probability``, ``exclude_recursion``, ``match_whole_words``, ...).

What a file says that has a column goes into the column; everything else (unknown fields,
SillyTavern-only fields such as ``group``, ``sticky``, ``role``, ``displayIndex``, the book's
``extensions``) is kept in ``extras`` with, for each mapped field, the value as written when
the column holds it differently (and which fields were absent). An export of the same format
starts from that and writes each column back, giving the value as written while the column
still holds what the import stored: so import -> export gives the same JSON, field by field.

What may differ after an import and an export of the same format, on purpose:

- a field edited here is exported as edited, in the file's spelling (an entry's position 2, 3,
  5, 6 or 7, which no column holds, is exported as 0, 1 or 4 once the position is changed);
- ``selective`` is written true once secondary keys are added to an entry that had none;
- key order inside objects (JSON objects are unordered);
- entries come out ordered by ``uid`` (World Info: an object keyed by uid; a card book: the
  list in its original order).

Exporting to the other format follows SillyTavern's own conversions (``convertCharacterBook``,
``convertWorldInfoToCharacterBook``): SillyTavern fields travel in the card entry's
``extensions`` under their snake_case names and back.

Keys written as ``/pattern/flags`` stay strings (the scanner reads them); at import each must
compile with RE2 (linear time, no backreferences or look-around), or the file is refused with
the entry named.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import re2
from django.utils.translation import gettext as _

from companionhub.errors import AppError

WORLD_INFO = "world_info"
CHARACTER_BOOK = "character_book"

BEFORE_CHAR, AFTER_CHAR, AT_DEPTH = "before_char", "after_char", "at_depth"
# SillyTavern's position numbers -> our column (the ones without a place of their own get the
# nearest: the Author's Note sits in the chat, the examples after the character).
POSITION_FROM_NUMBER = {
    0: BEFORE_CHAR,
    1: AFTER_CHAR,
    2: AT_DEPTH,
    3: AT_DEPTH,
    4: AT_DEPTH,
    5: AFTER_CHAR,
    6: AFTER_CHAR,
    7: AFTER_CHAR,
}
NUMBER_FOR_POSITION = {BEFORE_CHAR: 0, AFTER_CHAR: 1, AT_DEPTH: 4}
LOGIC_VALUES = (0, 1, 2, 3)
DEFAULT_DEPTH = 4
DEFAULT_ORDER = 100
MAX_DEPTH = 1000  # SillyTavern's MAX_SCAN_DEPTH
MAX_ORDER = 2**31 - 1
MAX_PROBLEMS_SHOWN = 5

# ST's own regex-key syntax (parseRegexFromString): ``/pattern/flags``.
REGEX_KEY = re.compile(r"^/([\s\S]+?)/([gimsuy]*)$")

# World Info field <-> card entry ``extensions`` name, for SillyTavern's fields without a
# column (convertWorldInfoToCharacterBook / convertCharacterBook).
WI_TO_CARD_EXTENSION = {
    "displayIndex": "display_index",
    "useProbability": "useProbability",
    "outletName": "outlet_name",
    "group": "group",
    "groupOverride": "group_override",
    "groupWeight": "group_weight",
    "delayUntilRecursion": "delay_until_recursion",
    "scanDepth": "scan_depth",
    "useGroupScoring": "use_group_scoring",
    "automationId": "automation_id",
    "role": "role",
    "vectorized": "vectorized",
    "sticky": "sticky",
    "cooldown": "cooldown",
    "delay": "delay",
    "matchPersonaDescription": "match_persona_description",
    "matchCharacterDescription": "match_character_description",
    "matchCharacterPersonality": "match_character_personality",
    "matchCharacterDepthPrompt": "match_character_depth_prompt",
    "matchScenario": "match_scenario",
    "matchCreatorNotes": "match_creator_notes",
    "triggers": "triggers",
    "ignoreBudget": "ignore_budget",
}
CARD_EXTENSION_TO_WI = {v: k for k, v in WI_TO_CARD_EXTENSION.items()}
# What SillyTavern writes for a new entry (newWorldInfoEntryTemplate), less the mapped fields.
WI_ENTRY_DEFAULTS: dict[str, Any] = {
    "vectorized": False,
    "selective": True,
    "addMemo": True,
    "ignoreBudget": False,
    "delayUntilRecursion": False,
    "useProbability": True,
    "outletName": "",
    "group": "",
    "groupOverride": False,
    "groupWeight": 100,
    "scanDepth": None,
    "useGroupScoring": None,
    "automationId": "",
    "role": 0,
    "sticky": None,
    "cooldown": None,
    "delay": None,
    "matchPersonaDescription": False,
    "matchCharacterDescription": False,
    "matchCharacterPersonality": False,
    "matchCharacterDepthPrompt": False,
    "matchScenario": False,
    "matchCreatorNotes": False,
    "triggers": [],
}


class LorebookRejected(AppError):
    """A lorebook file we cannot import, with a message for the user."""


@dataclass(frozen=True)
class Limits:
    """How much one import may bring (the settings' ``LOREBOOK_*``)."""

    max_entries: int = 5000
    entry_max_chars: int = 50_000
    max_keys: int = 100
    key_max_chars: int = 500


@dataclass
class ParsedEntry:
    """One entry, in ``LoreEntry``'s columns."""

    uid: int
    keys: list[str] = field(default_factory=list)
    secondary_keys: list[str] = field(default_factory=list)
    selective_logic: int = 0
    content: str = ""
    comment: str = ""
    constant: bool = False
    enabled: bool = True
    order: int = DEFAULT_ORDER
    position: str = BEFORE_CHAR
    depth: int = DEFAULT_DEPTH
    probability: int = 100
    case_sensitive: bool | None = None
    match_whole_words: bool | None = None
    use_regex: bool = False
    exclude_recursion: bool = False
    prevent_recursion: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedBook:
    """A book, in ``Lorebook``'s columns, with its entries."""

    name: str = ""
    description: str = ""
    scan_depth: int = 4
    token_budget: int = 0
    recursion_depth: int = 3
    case_sensitive: bool = False
    match_whole_words: bool = False
    source: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    entries: list[ParsedEntry] = field(default_factory=list)


ENTRY_COLUMNS = tuple(f for f in ParsedEntry.__dataclass_fields__ if f != "extras")
BOOK_COLUMNS = (
    "name",
    "description",
    "scan_depth",
    "token_budget",
    "recursion_depth",
    "case_sensitive",
    "match_whole_words",
)


# --- small helpers -----------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``True`` is not ``1``, ``1`` is not ``1.0``)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


_MISSING = object()


def _get(data: dict[str, Any], path: str) -> Any:
    head, _sep, tail = path.partition(".")
    if head not in data:
        return _MISSING
    if not tail:
        return data[head]
    inner = data[head]
    return _get(inner, tail) if isinstance(inner, dict) else _MISSING


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    head, _sep, tail = path.partition(".")
    if not tail:
        data[head] = value
        return
    if not isinstance(data.get(head), dict):
        data[head] = {}
    _set(data[head], tail, value)


def _without(data: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    rest = copy.deepcopy(data)
    for path in paths:
        head, _sep, tail = path.partition(".")
        if tail:
            if isinstance(rest.get(head), dict):
                rest[head].pop(tail, None)
        else:
            rest.pop(head, None)
    return rest


def _int(value: Any, default: int, low: int, high: int) -> int:
    """A number the file gave, as an integer within [low, high]; anything else the default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return max(low, min(high, int(value)))


def _bool(value: Any, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def regex_key(key: str) -> tuple[str, str] | None:
    """``(pattern, flags)`` when ``key`` is written ``/pattern/flags``, else None."""
    match = REGEX_KEY.match(key)
    return (match.group(1), match.group(2)) if match else None


def compile_regex_key(pattern: str, flags: str = "") -> Any:
    """``pattern`` compiled by RE2 (linear time) with JavaScript's ``i``/``m``/``s`` flags.

    Raises ``re2.error`` for what RE2 refuses (backreferences, look-around, bad syntax).
    """
    options = re2.Options()
    options.case_sensitive = "i" not in flags
    options.dot_nl = "s" in flags
    options.never_nl = False
    options.one_line = "m" not in flags
    options.max_mem = 8 << 20
    options.log_errors = False
    return re2.compile(pattern, options)


# --- a mapping: the file's field <-> a column --------------------------------------------

Writer = Callable[[ParsedEntry], Any]


@dataclass(frozen=True)
class Mapped:
    """A field of the file (``path``, dotted into ``extensions``) held by ``column``;
    ``write`` gives the file's value for the entry's columns."""

    path: str
    column: str
    write: Callable[[Any], Any]


def _remember(source: dict[str, Any], mapped: Iterable[Mapped], target: Any) -> dict[str, Any]:
    """``written``: for each mapped field the value as written where the column holds it
    differently, and ``{"stored": ...}`` alone where the file did not have the field."""
    written: dict[str, Any] = {}
    for m in mapped:
        stored = getattr(target, m.column)
        raw = _get(source, m.path)
        if raw is _MISSING:
            written[m.path] = {"stored": stored}
        elif not _same(raw, m.write(target)):
            written[m.path] = {"raw": raw, "stored": stored}
    return written


def _write_back(
    rest: dict[str, Any], written: dict[str, Any], mapped: Iterable[Mapped], target: Any
) -> dict[str, Any]:
    out = copy.deepcopy(rest)
    for m in mapped:
        kept = written.get(m.path)
        if isinstance(kept, dict) and _same(kept.get("stored"), getattr(target, m.column)):
            if "raw" in kept:
                _set(out, m.path, copy.deepcopy(kept["raw"]))
            continue  # absent in the file and still the default: not added
        _set(out, m.path, m.write(target))
    return out


def _pos_number(e: ParsedEntry) -> int:
    return NUMBER_FOR_POSITION.get(e.position, 0)


WI_ENTRY_MAP = (
    Mapped("uid", "uid", lambda e: e.uid),
    Mapped("key", "keys", lambda e: list(e.keys)),
    Mapped("keysecondary", "secondary_keys", lambda e: list(e.secondary_keys)),
    Mapped("selective", "secondary_keys", lambda e: bool(e.secondary_keys)),
    Mapped("selectiveLogic", "selective_logic", lambda e: e.selective_logic),
    Mapped("content", "content", lambda e: e.content),
    Mapped("comment", "comment", lambda e: e.comment),
    Mapped("constant", "constant", lambda e: e.constant),
    Mapped("disable", "enabled", lambda e: not e.enabled),
    Mapped("order", "order", lambda e: e.order),
    Mapped("position", "position", _pos_number),
    Mapped("depth", "depth", lambda e: e.depth),
    Mapped("probability", "probability", lambda e: e.probability),
    Mapped("caseSensitive", "case_sensitive", lambda e: e.case_sensitive),
    Mapped("matchWholeWords", "match_whole_words", lambda e: e.match_whole_words),
    Mapped("excludeRecursion", "exclude_recursion", lambda e: e.exclude_recursion),
    Mapped("preventRecursion", "prevent_recursion", lambda e: e.prevent_recursion),
)
CARD_ENTRY_MAP = (
    Mapped("id", "uid", lambda e: e.uid),
    Mapped("keys", "keys", lambda e: list(e.keys)),
    Mapped("secondary_keys", "secondary_keys", lambda e: list(e.secondary_keys)),
    Mapped("selective", "secondary_keys", lambda e: bool(e.secondary_keys)),
    Mapped("content", "content", lambda e: e.content),
    Mapped("comment", "comment", lambda e: e.comment),
    Mapped("constant", "constant", lambda e: e.constant),
    Mapped("enabled", "enabled", lambda e: e.enabled),
    Mapped("insertion_order", "order", lambda e: e.order),
    Mapped("position", "position", lambda e: BEFORE_CHAR if e.position == BEFORE_CHAR else AFTER_CHAR),
    Mapped("case_sensitive", "case_sensitive", lambda e: e.case_sensitive),
    Mapped("use_regex", "use_regex", lambda e: e.use_regex),
    Mapped("extensions.position", "position", _pos_number),
    Mapped("extensions.depth", "depth", lambda e: e.depth),
    Mapped("extensions.selectiveLogic", "selective_logic", lambda e: e.selective_logic),
    Mapped("extensions.probability", "probability", lambda e: e.probability),
    Mapped("extensions.case_sensitive", "case_sensitive", lambda e: e.case_sensitive),
    Mapped("extensions.match_whole_words", "match_whole_words", lambda e: e.match_whole_words),
    Mapped("extensions.exclude_recursion", "exclude_recursion", lambda e: e.exclude_recursion),
    Mapped("extensions.prevent_recursion", "prevent_recursion", lambda e: e.prevent_recursion),
)
WI_BOOK_MAP = (
    Mapped("name", "name", lambda b: b.name),
    Mapped("description", "description", lambda b: b.description),
)
CARD_BOOK_MAP = (
    Mapped("name", "name", lambda b: b.name),
    Mapped("description", "description", lambda b: b.description),
    Mapped("scan_depth", "scan_depth", lambda b: b.scan_depth),
    Mapped("token_budget", "token_budget", lambda b: b.token_budget),
    Mapped("recursive_scanning", "recursion_depth", lambda b: b.recursion_depth > 0),
)


# --- reading -----------------------------------------------------------------------------


class _Problems:
    """The problems found in a file: the first few are shown, all are counted."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, text: str) -> None:
        self.items.append(f"{where}: {text}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = "; ".join(self.items[:MAX_PROBLEMS_SHOWN])
        more = len(self.items) - MAX_PROBLEMS_SHOWN
        message = _("The lorebook has problems: %(problems)s.") % {"problems": shown}
        if more > 0:
            message += " " + _("And %(count)s more.") % {"count": more}
        raise LorebookRejected("invalid_entries", message)


def _entry_label(uid: Any) -> str:
    return _("entry %(uid)s") % {"uid": json.dumps(uid, ensure_ascii=False)[:40]}


def _keys(value: Any, name: str, where: str, limits: Limits, problems: _Problems) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):  # some tools write one comma-separated string
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        problems.add(where, _("%(field)s should be a list of text") % {"field": name})
        return None
    if len(value) > limits.max_keys:
        problems.add(
            where,
            _("%(field)s has %(count)s keys, at most %(limit)s are allowed")
            % {"field": name, "count": len(value), "limit": limits.max_keys},
        )
        return None
    ok = True
    for key in value:
        if len(key) > limits.key_max_chars:
            problems.add(
                where, _("a key is longer than %(limit)s characters") % {"limit": limits.key_max_chars}
            )
            ok = False
            continue
        parsed = regex_key(key)
        if parsed is not None:
            try:
                compile_regex_key(*parsed)
            except re2.error as exc:
                problems.add(
                    where,
                    _("the regular expression %(key)s cannot be used (%(reason)s)")
                    % {"key": key[:80], "reason": str(exc)[:120]},
                )
                ok = False
    return list(value) if ok else None


def _text(
    value: Any, name: str, where: str, limit: int, problems: _Problems, *, required: bool = False
) -> str | None:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        problems.add(where, _("%(field)s should be text") % {"field": name})
        return None
    if len(value) > limit:
        problems.add(
            where, _("%(field)s is longer than %(limit)s characters") % {"field": name, "limit": limit}
        )
        return None
    return value


def _all_patterns(keys: list[str]) -> bool:
    try:
        for key in keys:
            compile_regex_key(key)
    except re2.error:
        return False
    return True


def _read_entry(
    raw: dict[str, Any], fmt: str, uid: int, limits: Limits, problems: _Problems
) -> ParsedEntry | None:
    wi = fmt == WORLD_INFO
    where = _entry_label(uid)
    ext: dict[str, Any] = raw["extensions"] if isinstance(raw.get("extensions"), dict) else {}
    get = raw.get if wi else (lambda name, default=None: ext.get(name, default))
    keys = _keys(raw.get("key" if wi else "keys"), "key" if wi else "keys", where, limits, problems)
    secondary = _keys(
        raw.get("keysecondary" if wi else "secondary_keys"),
        "keysecondary" if wi else "secondary_keys",
        where,
        limits,
        problems,
    )
    content = _text(raw.get("content"), "content", where, limits.entry_max_chars, problems)
    comment = _text(raw.get("comment"), "comment", where, 100_000, problems)
    if keys is None or secondary is None or content is None or comment is None:
        return None
    if raw.get("selective") is False:
        secondary = []  # SillyTavern ignores secondary keys of a non-selective entry
    if wi:
        position_number = raw.get("position")
        enabled = not _bool(raw.get("disable"), False)
        order = raw.get("order")
        case_sensitive = _opt_bool(raw.get("caseSensitive"))
    else:
        position_number = ext.get("position")
        if (
            not isinstance(position_number, int)
            or isinstance(position_number, bool)
            or position_number not in POSITION_FROM_NUMBER
        ):
            position_number = (
                0 if raw.get("position") == BEFORE_CHAR else 1 if raw.get("position") == AFTER_CHAR else None
            )
        enabled = _bool(raw.get("enabled"), True)
        order = raw.get("insertion_order")
        case_sensitive = _opt_bool(ext.get("case_sensitive"))
        if case_sensitive is None:
            case_sensitive = _opt_bool(raw.get("case_sensitive"))
    position = (
        POSITION_FROM_NUMBER.get(position_number, BEFORE_CHAR)
        if isinstance(position_number, int) and not isinstance(position_number, bool)
        else BEFORE_CHAR
    )
    probability = _int(get("probability"), 100, 0, 100)
    if get("useProbability") is False:
        probability = 100  # SillyTavern ignores the probability then
    logic = get("selectiveLogic")
    # V3's use_regex makes every key a pattern; SillyTavern writes it on every entry it exports
    # (its keys are patterns only when written /.../), so there it is kept but not followed.
    sillytavern = isinstance(ext.get("position"), int)
    use_regex = (
        not wi and raw.get("use_regex") is True and not sillytavern and _all_patterns(keys + secondary)
    )
    return ParsedEntry(
        uid=uid,
        keys=keys,
        secondary_keys=secondary,
        selective_logic=logic if logic in LOGIC_VALUES and not isinstance(logic, bool) else 0,
        content=content,
        comment=comment[:500],
        constant=_bool(raw.get("constant"), False),
        enabled=enabled,
        order=_int(order, DEFAULT_ORDER, -MAX_ORDER, MAX_ORDER),
        position=position,
        depth=_int(get("depth"), DEFAULT_DEPTH, 0, MAX_DEPTH),
        probability=probability,
        case_sensitive=case_sensitive,
        match_whole_words=_opt_bool(get("matchWholeWords" if wi else "match_whole_words")),
        use_regex=use_regex,
        exclude_recursion=_bool(get("excludeRecursion" if wi else "exclude_recursion"), False),
        prevent_recursion=_bool(get("preventRecursion" if wi else "prevent_recursion"), False),
    )


def _with_extras(entry: ParsedEntry, raw: dict[str, Any], fmt: str) -> ParsedEntry:
    mapped = WI_ENTRY_MAP if fmt == WORLD_INFO else CARD_ENTRY_MAP
    entry.extras = {
        "format": fmt,
        "rest": _without(raw, [m.path for m in mapped]),
        "written": _remember(raw, mapped, entry),
    }
    return entry


def _uid_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < 2**31:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) < 2**31:
        return int(value)
    return None


def _finish_book(
    book: ParsedBook, raw: dict[str, Any], fmt: str, mapped: tuple[Mapped, ...], default_name: str
) -> ParsedBook:
    if not book.name:
        book.name = default_name[:200]
    book.extras = {
        "format": fmt,
        "rest": _without(raw, [*(m.path for m in mapped), "entries"]),
        "written": _remember(raw, mapped, book),
    }
    return book


def _check_size(entries: Any, limits: Limits) -> None:
    if len(entries) > limits.max_entries:
        raise LorebookRejected(
            "too_many_entries",
            _("The lorebook has %(count)s entries; at most %(limit)s are allowed.")
            % {"count": len(entries), "limit": limits.max_entries},
        )


def read_world_info(data: Any, *, limits: Limits | None = None, default_name: str = "") -> ParsedBook:
    """A SillyTavern World Info file (parsed JSON) as a book; raises ``LorebookRejected``."""
    limits = limits or Limits()
    if not isinstance(data, dict) or not isinstance(data.get("entries"), (dict, list)):
        raise LorebookRejected(
            "not_a_lorebook", _('This is not a World Info file: it has no "entries" object.')
        )
    entries = data["entries"]
    _check_size(entries, limits)
    items = (
        list(entries.items()) if isinstance(entries, dict) else [(str(i), e) for i, e in enumerate(entries)]
    )
    problems = _Problems()
    parsed: list[ParsedEntry] = []
    seen: set[int] = set()
    for name, raw in items:
        if not isinstance(raw, dict):
            problems.add(_entry_label(name), _("it is not an object"))
            continue
        uid = _uid_of(raw.get("uid", name))
        if uid is None:
            problems.add(_entry_label(raw.get("uid", name)), _("its uid should be a whole number"))
            continue
        if uid in seen:
            problems.add(_entry_label(uid), _("the uid is used twice"))
            continue
        seen.add(uid)
        entry = _read_entry(raw, WORLD_INFO, uid, limits, problems)
        if entry is not None:
            parsed.append(_with_extras(entry, raw, WORLD_INFO))
    problems.raise_if_any()
    book = ParsedBook(
        name=data["name"][:200] if isinstance(data.get("name"), str) else "",
        description=data["description"][:10_000] if isinstance(data.get("description"), str) else "",
        source="sillytavern",
        entries=parsed,
    )
    book = _finish_book(book, data, WORLD_INFO, WI_BOOK_MAP, default_name)
    if isinstance(entries, list):
        book.extras["entries_list"] = True
    return book


def read_character_book(data: Any, *, limits: Limits | None = None, default_name: str = "") -> ParsedBook:
    """A card's ``character_book`` (V2/V3) as a book; raises ``LorebookRejected``."""
    limits = limits or Limits()
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise LorebookRejected("not_a_lorebook", _('This is not a character book: it has no "entries" list.'))
    entries = data["entries"]
    _check_size(entries, limits)
    problems = _Problems()
    used = {
        uid
        for e in entries
        if isinstance(e, dict)
        and (uid := _uid_of(e.get("id"))) is not None
        and not isinstance(e.get("id"), str)
    }
    next_free = 0
    parsed: list[ParsedEntry] = []
    seen: set[int] = set()
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict):
            problems.add(_entry_label(index), _("it is not an object"))
            continue
        uid = _uid_of(raw.get("id")) if not isinstance(raw.get("id"), str) else None
        if (
            uid is None or uid in seen
        ):  # no id (or an unusable one): the next free number, as SillyTavern does
            while next_free in used or next_free in seen:
                next_free += 1
            uid = next_free
        seen.add(uid)
        entry = _read_entry(raw, CHARACTER_BOOK, uid, limits, problems)
        if entry is not None:
            entry = _with_extras(entry, raw, CHARACTER_BOOK)
            entry.extras["index"] = index
            parsed.append(entry)
    problems.raise_if_any()
    recursive = data.get("recursive_scanning")
    book = ParsedBook(
        name=data["name"][:200] if isinstance(data.get("name"), str) else "",
        description=data["description"][:10_000] if isinstance(data.get("description"), str) else "",
        scan_depth=_int(data.get("scan_depth"), 4, 0, MAX_DEPTH),
        token_budget=_int(data.get("token_budget"), 0, 0, 2**31 - 1),
        recursion_depth=0 if recursive is False else 3,
        source="card",
        entries=parsed,
    )
    return _finish_book(book, data, CHARACTER_BOOK, CARD_BOOK_MAP, default_name)


def detect(data: Any) -> Literal["world_info", "character_book", "card"] | None:
    """What a parsed JSON file is: a World Info file, a bare character book, a character card."""
    if not isinstance(data, dict):
        return None
    spec = data.get("spec")
    if (isinstance(spec, str) and spec.startswith("chara_card")) or (
        isinstance(data.get("data"), dict) and "name" in data["data"]
    ):
        return "card"
    if isinstance(data.get("entries"), dict):
        return "world_info"
    if isinstance(data.get("entries"), list):
        return "character_book"
    if "name" in data and ("first_mes" in data or "description" in data or "personality" in data):
        return "card"
    return None


def read_any(data: Any, *, limits: Limits | None = None, default_name: str = "") -> ParsedBook:
    """A World Info file or a bare character book; a card (or anything else) is refused."""
    kind = detect(data)
    if kind == "world_info":
        return read_world_info(data, limits=limits, default_name=default_name)
    if kind == "character_book":
        return read_character_book(data, limits=limits, default_name=default_name)
    if kind == "card":
        raise LorebookRejected(
            "is_card",
            _(
                "This is a character card, not a lorebook. Import it on the character card import page;"
                " its lorebook comes with it."
            ),
        )
    raise LorebookRejected(
        "not_a_lorebook",
        _("This is not a lorebook file: SillyTavern World Info JSON or a character book was expected."),
    )


# --- writing -----------------------------------------------------------------------------


def _extras_of(obj: Any, fmt: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    extras = obj.extras if isinstance(obj.extras, dict) else {}
    if extras.get("format") != fmt or not isinstance(extras.get("rest"), dict):
        return None
    written = extras.get("written")
    return extras["rest"], written if isinstance(written, dict) else {}


def _other_rest_as_wi(entry: ParsedEntry) -> dict[str, Any]:
    """A card entry's SillyTavern extensions under World Info names (convertCharacterBook)."""
    kept = _extras_of(entry, CHARACTER_BOOK)
    if kept is None:
        return {}
    rest = kept[0]
    ext = rest.get("extensions")
    if not isinstance(ext, dict):
        ext = {}
    wi: dict[str, Any] = {
        CARD_EXTENSION_TO_WI[k]: copy.deepcopy(v) for k, v in ext.items() if k in CARD_EXTENSION_TO_WI
    }
    others = {k: copy.deepcopy(v) for k, v in ext.items() if k not in CARD_EXTENSION_TO_WI}
    if others:
        wi["extensions"] = others
    return wi


def _other_rest_as_card(entry: ParsedEntry) -> dict[str, Any]:
    """A World Info entry's fields without a column as card extensions (convertWorldInfoToCharacterBook)."""
    kept = _extras_of(entry, WORLD_INFO)
    if kept is None:
        return {}
    rest = kept[0]
    ext: dict[str, Any] = dict(rest["extensions"]) if isinstance(rest.get("extensions"), dict) else {}
    for name, value in rest.items():
        if name in WI_TO_CARD_EXTENSION:
            ext[WI_TO_CARD_EXTENSION[name]] = copy.deepcopy(value)
    return ext


def _wi_entry(entry: ParsedEntry, display_index: int) -> dict[str, Any]:
    kept = _extras_of(entry, WORLD_INFO)
    if kept is not None:
        return _write_back(kept[0], kept[1], WI_ENTRY_MAP, entry)
    base = {**copy.deepcopy(WI_ENTRY_DEFAULTS), "displayIndex": display_index, **_other_rest_as_wi(entry)}
    base["addMemo"] = bool(entry.comment)
    return _write_back(base, {}, WI_ENTRY_MAP, entry)


def _card_entry(entry: ParsedEntry) -> dict[str, Any]:
    kept = _extras_of(entry, CHARACTER_BOOK)
    if kept is not None:
        return _write_back(kept[0], kept[1], CARD_ENTRY_MAP, entry)
    base: dict[str, Any] = {"extensions": _other_rest_as_card(entry), "name": entry.comment, "priority": 10}
    out = _write_back(base, {}, CARD_ENTRY_MAP, entry)
    if not entry.use_regex:
        out.pop("use_regex", None)  # a V3 field: written when it says something
    return out


def _sorted_entries(book: ParsedBook, fmt: str) -> list[ParsedEntry]:
    if fmt == CHARACTER_BOOK:

        def index(e: ParsedEntry) -> tuple[int, int]:
            kept = e.extras.get("index") if isinstance(e.extras, dict) else None
            return (kept if isinstance(kept, int) else 1 << 40, e.uid)

        return sorted(book.entries, key=index)
    return sorted(book.entries, key=lambda e: e.uid)


def to_world_info(book: ParsedBook) -> dict[str, Any]:
    """The book as a SillyTavern World Info file (as plain JSON values)."""
    entries = {str(e.uid): _wi_entry(e, i) for i, e in enumerate(_sorted_entries(book, WORLD_INFO))}
    kept = _extras_of(book, WORLD_INFO)
    if kept is not None:
        out = _write_back(kept[0], kept[1], WI_BOOK_MAP, book)
        out["entries"] = list(entries.values()) if book.extras.get("entries_list") else entries
        return out
    out = {"entries": entries, "name": book.name}
    if book.description:
        out["description"] = book.description
    return out


def to_character_book(book: ParsedBook) -> dict[str, Any]:
    """The book as a card's ``character_book`` (V2, read by V3 apps too)."""
    entries = [_card_entry(e) for e in _sorted_entries(book, CHARACTER_BOOK)]
    kept = _extras_of(book, CHARACTER_BOOK)
    if kept is not None:
        out = _write_back(kept[0], kept[1], CARD_BOOK_MAP, book)
    else:
        out = _write_back({"extensions": {}}, {}, CARD_BOOK_MAP, book)
        if not book.description:
            out.pop("description")
    out["entries"] = entries
    return out


def book_with(book: ParsedBook, **changes: Any) -> ParsedBook:
    """A copy of ``book`` with some columns changed (for callers that rename on import)."""
    return replace(book, **changes)
