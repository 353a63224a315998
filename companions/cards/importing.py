"""A parsed card -> a companion's column values and its ``config["card"]`` block.

What is kept where, so that an export gives back the card that came in:

- ``name``, ``description``, ``first_mes``, ``system_prompt`` -> columns
  (``name``, ``backstory``, ``greeting``, ``system_prompt``); the other texts
  and the greeting lists -> ``config["card"]``. Stored text is trimmed of
  surrounding white space and ``\\r\\n`` (what prompts and forms want), never
  cut: a card with text over the limits (``companions.limits``) is refused,
  naming the field. The value exactly as written is kept in ``originals``
  whenever it differs, and exported while the stored value is unchanged.
- ``character_book`` -> a lorebook of the importer's (``lorebooks.formats`` reads it,
  keeping what its columns do not hold), the companion's ``card_book``; the export writes it
  back from there. A book that cannot be read as one (over the lorebook limits, a bad
  pattern) is kept as written with the extras instead, and the owner is told why.
- ``extensions`` (less our own), the data fields we do not
  use (``unknown``: V3's ``assets``, dates, ``source``, ... and anything new)
  and the top-level fields beside ``data`` (``outer``) -> kept as they are;
  with ``originals``, together capped at ``CARD_EXTRAS_MAX_BYTES``.
- ``absent``: the known fields the card did not have, so an export does not
  add them while they are still empty.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _

from companions import catalogue
from companions.cards.charx import embedded_path, is_embedded, main_icon_path
from companions.cards.fields import (
    COLUMN_FOR,
    COMPOSABLE,
    CONFIG_TEXT_LIMITS,
    DEFAULT_LOOK,
    EXTRAS,
    FIELD_LABELS,
    HUB_EXTENSION,
    HUB_FIELDS,
    KNOWN_FIELDS,
    LIST_FIELDS,
    LIST_ITEM_LIMITS,
    MAX_LIST_ITEMS,
)
from companions.cards.prose import composed_digest
from companions.cards.reading import CardRejected, ParsedCard
from lorebooks import formats as lorebook_formats


@dataclass(frozen=True)
class ImportedCard:
    """What a card becomes: column values, the ``config["card"]`` block, whether its look was
    left to stand-ins, the extras (``EXTRAS``) left out for being over the size limit, and how many embedded
    assets (a CHARX's sprites, backgrounds, sounds) were not kept."""

    values: dict[str, Any]
    card_config: dict[str, Any]
    look_defaulted: bool = True
    left_out: list[str] = field(default_factory=list)
    assets_not_kept: int = 0
    # The card's ``character_book`` as a lorebook to store, or why it could not be one.
    book: lorebook_formats.ParsedBook | None = None
    book_problem: str = ""


def normalized_text(value: Any) -> str:
    """How a card's text is stored: as text, ``\\r\\n`` as ``\\n``, without surrounding white space."""
    if value is None:
        return ""
    return str(value).replace("\r\n", "\n").strip()


def normalized_list(value: Any) -> list[str]:
    """How a card's list of texts is stored: each item trimmed, empty ones left out."""
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
        raise CardRejected("bad_field", _("The card's %(field)s should be text.") % {"field": repr(name)})
    return normalized_text(value)


def _strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CardRejected(
            "bad_field", _("The card's %(field)s should be a list of text.") % {"field": repr(name)}
        )
    return normalized_list(value)


def stored_digest(value: Any) -> str:
    """A fingerprint of a stored value, to tell later whether the companion still holds it."""
    return composed_digest(json.dumps(value, ensure_ascii=False, sort_keys=True))


def as_written(raw: Any, stored: Any) -> dict[str, Any]:
    """An ``originals`` entry: the card's value as written, for as long as ``stored`` is unchanged."""
    return {"value": raw, "digest": stored_digest(stored)}


def _count(n: int) -> str:
    return number_format(n, force_grouping=True)


def check_length(text: str, limit: int, name: str, *, item: bool = False) -> str:
    """``text`` as it is, or ``CardRejected`` naming the field when it is over ``limit``: never cut."""
    if len(text) <= limit:
        return text
    if item:
        message = _(
            "Too long: one of the card's %(field)s (%(length)s characters; at most %(limit)s are allowed)."
            " Nothing was imported: shorten it and import the card again."
        )
    else:
        message = _(
            "Too long: the card's %(field)s (%(length)s characters; at most %(limit)s are allowed)."
            " Nothing was imported: shorten it and import the card again."
        )
    params = {"field": FIELD_LABELS.get(name, name), "length": _count(len(text)), "limit": _count(limit)}
    raise CardRejected("too_long", message % params)


def check_items(items: list[str], name: str) -> list[str]:
    """A list field's items as they are, or ``CardRejected`` when there are too many or one is too long."""
    limit = MAX_LIST_ITEMS[name]
    if len(items) > limit:
        raise CardRejected(
            "too_many",
            _(
                "Too many: the card's %(field)s (%(count)s; at most %(limit)s are allowed)."
                " Nothing was imported: remove some and import the card again."
            )
            % {"field": FIELD_LABELS.get(name, name), "count": _count(len(items)), "limit": _count(limit)},
        )
    for text in items:
        check_length(text, LIST_ITEM_LIMITS[name], name, item=True)
    return items


def guess_gender(text: str) -> str:
    """The catalogue gender the card's pronouns suggest (non-binary when unclear)."""
    words = re.findall(r"[a-z]+", text.lower())
    she = sum(words.count(w) for w in ("she", "her", "hers", "herself", "woman", "girl"))
    he = sum(words.count(w) for w in ("he", "him", "his", "himself", "man", "boy"))
    if she > he:
        return "female"
    if he > she:
        return "male"
    return "non_binary"


def _hub_values(extension: Any) -> dict[str, Any]:
    """Our own extension's values that are still valid catalogue answers; the rest are dropped."""
    if not isinstance(extension, dict):
        return {}
    values: dict[str, Any] = {}
    for name in HUB_FIELDS:
        value = extension.get(name)
        if name in catalogue.SINGLE_CHOICE:
            if isinstance(value, str) and catalogue.option(name, value):
                values[name] = value
        elif name in catalogue.MULTI_CHOICE:
            _options, low, high = catalogue.MULTI_CHOICE[name]
            if (
                isinstance(value, list)
                and low <= len(value) <= high
                and all(isinstance(v, str) and catalogue.option(name, v) for v in value)
            ):
                values[name] = value
        elif name == "age":
            if isinstance(value, int) and catalogue.MIN_AGE <= value <= catalogue.MAX_AGE:
                values[name] = value
        elif isinstance(value, str):
            values[name] = value
    return values


def json_bytes(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON: how card extras are measured."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def keep_extras_within(card_config: dict[str, Any], max_bytes: int) -> list[str]:
    """Keep the extras that fit ``max_bytes``, the lorebook first; return the names of those left out.

    Every chat turn reads the stored card, and an export must import again,
    so the extras are capped. Leaving some out rather than refusing the card
    keeps what a user imports a card for (the character, its greeting,
    scenario and, when it fits, its lorebook); the page says what was left out.
    """
    left_out = []
    room = max_bytes
    for name in reversed(EXTRAS):  # the most useful first
        if name not in card_config:
            continue
        size = json_bytes(card_config[name])
        if size <= room:
            room -= size
        else:
            del card_config[name]
            left_out.append(name)
    return sorted(left_out, key=EXTRAS.index)


def _our_composed_fields(data: dict[str, Any], hub_extension: Any) -> set[str]:
    """The fields of the card that still hold the prose our export composed (see ``building``)."""
    composed = hub_extension.get("composed") if isinstance(hub_extension, dict) else None
    if not isinstance(composed, dict):
        return set()
    return {
        name
        for name in COMPOSABLE
        if isinstance(composed.get(name), str)
        and isinstance(data.get(name), str)
        and composed_digest(data[name]) == composed[name]
    }


def to_companion(
    card: ParsedCard,
    *,
    max_lengths: dict[str, int],
    extras_max_bytes: int,
    book_limits: lorebook_formats.Limits | None = None,
) -> ImportedCard:
    """Column values and the ``config["card"]`` block for a card.

    Text longer than its limit (``max_lengths`` holds the column limits,
    ``CONFIG_TEXT_LIMITS`` and the list limits the rest) refuses the card with
    ``CardRejected`` naming the field: nothing is cut. Extras over
    ``extras_max_bytes`` are left out and named in ``left_out``.
    """
    data = card.data
    originals: dict[str, Any] = {}

    def keep_text(name: str, limit: int) -> str:
        text = check_length(_text(data, name), limit, name)
        if name in data and data[name] != text:
            originals[name] = as_written(data[name], text)
        return text

    values: dict[str, Any] = {}
    for card_name, column in COLUMN_FOR.items():
        values[column] = keep_text(card_name, max_lengths[column])

    card_config: dict[str, Any] = {"spec": card.spec}
    if card.spec_version is not None:
        card_config["spec_version"] = card.spec_version
    for name, limit in CONFIG_TEXT_LIMITS.items():
        card_config[name] = keep_text(name, limit)
    for name in LIST_FIELDS:
        kept = check_items(_strings(data, name), name)
        if name in data and data[name] != kept:
            originals[name] = as_written(data[name], kept)
        card_config[name] = kept

    extensions = data.get("extensions")
    extensions = dict(extensions) if isinstance(extensions, dict) else {}
    hub_extension = extensions.pop(HUB_EXTENSION, None)
    hub = _hub_values(hub_extension)
    composed = _our_composed_fields(data, hub_extension)
    if composed:
        # Our own export: its prose stands for empty card text, and the backstory is in the extension.
        for name in composed:
            originals.pop(name, None)
            if name in CONFIG_TEXT_LIMITS:
                card_config[name] = ""
        if "description" in composed:
            backstory = hub_extension.get("backstory") if isinstance(hub_extension, dict) else None
            values["backstory"] = check_length(
                normalized_text(backstory if isinstance(backstory, str) else ""),
                max_lengths["backstory"],
                "description",
            )
        card_config["composed"] = sorted(composed)
    card_config["extensions"] = extensions
    book, book_problem = _card_book(data, values["name"], book_limits)
    if data.get("character_book") is not None and book is None:
        card_config["character_book"] = data["character_book"]
    card_config["unknown"] = {k: v for k, v in data.items() if k not in KNOWN_FIELDS}
    if card.outer:
        card_config["outer"] = card.outer
    if absent := sorted(name for name in KNOWN_FIELDS if name not in data):
        card_config["absent"] = absent
    if originals:
        card_config["originals"] = originals
    left_out = keep_extras_within(card_config, extras_max_bytes)

    gender = guess_gender(" ".join((values["backstory"], card_config["personality"], values["greeting"])))
    values = {
        **DEFAULT_LOOK,
        "gender": gender,
        "distinguishing_features": "",
        "visual_prompt": "",
        **hub,
        **values,
    }
    for column in ("distinguishing_features", "visual_prompt"):
        values[column] = values[column][: max_lengths[column]]
    if hub:  # our own export: the stand-ins it still had stay stand-ins
        said = hub_extension.get("defaults") if isinstance(hub_extension.get("defaults"), list) else []
        defaults = {name: values[name] for name in DEFAULT_LOOK if name in said}
    else:
        defaults = dict(DEFAULT_LOOK)
    if defaults:
        card_config["defaults"] = defaults
    return ImportedCard(
        values=values,
        card_config=card_config,
        look_defaulted=bool(defaults),
        left_out=left_out,
        assets_not_kept=_assets_not_kept(data),
        book=book,
        book_problem=book_problem,
    )


def _card_book(
    data: dict[str, Any], name: str, limits: lorebook_formats.Limits | None
) -> tuple[lorebook_formats.ParsedBook | None, str]:
    """The card's ``character_book`` as a lorebook named after the character when it has no
    name, or (None, why) when it cannot be one."""
    raw = data.get("character_book")
    if raw is None:
        return None, ""
    try:
        return lorebook_formats.read_character_book(raw, limits=limits, default_name=name), ""
    except lorebook_formats.LorebookRejected as exc:
        return None, exc.message


def _assets_not_kept(data: dict[str, Any]) -> int:
    """Embedded assets other than the main icon: their files are not kept (only the picture is)."""
    assets = data.get("assets")
    if not isinstance(assets, list):
        return 0
    icon = main_icon_path(data)
    return sum(1 for a in assets if is_embedded(a) and embedded_path(a.get("uri")) != icon)
