"""Character cards: read V1/V2/V3 cards from JSON or PNG, build V2 cards for export.

Plain functions of bytes and dicts, no database, so every rule is tested
directly. The formats (https://github.com/malfoyslastname/character-card-spec-v2):

- V2: ``{"spec": "chara_card_v2", "spec_version": "2.0", "data": {...}}``
- V3: the same shape with ``spec: "chara_card_v3"`` and a few more fields
- V1: the fields flat at the top level (older tools also used ``char_name``,
  ``char_persona``, ``world_scenario``, ``char_greeting``, ``example_dialogue``)
- PNG: the JSON, base64-encoded, in a ``tEXt`` chunk named ``chara`` (V2) or
  ``ccv3`` (V3, preferred when both are there).

What a card has and a companion has no column for is kept in
``Companion.config["card"]``, unknown fields included, so an export gives
it back. The picture itself is not checked here: the caller hands it to
``media`` like any other upload.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, PngImagePlugin

from companionhub.text import scrub
from companions import catalogue
from companions.models import Companion

__all__ = [
    "CardRejected",
    "ImportedCard",
    "ParsedCard",
    "build_card",
    "build_card_png",
    "card_prompt_defaults",
    "fill_macros",
    "parse_card_file",
    "to_companion",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
# Our own block in ``data.extensions``: the look and identity a card has no words for,
# so an export imports back into the same companion.
HUB_EXTENSION = "companionhub"

TEXT_FIELDS = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
)
LIST_FIELDS = ("alternate_greetings", "tags")
KNOWN_FIELDS = frozenset((*TEXT_FIELDS, *LIST_FIELDS, "extensions", "character_book"))
V1_ALIASES = {
    "char_name": "name",
    "char_persona": "personality",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}

# Card field -> Companion column; the column's max_length is the limit.
COLUMN_FOR = {
    "name": "name",
    "description": "backstory",
    "first_mes": "greeting",
    "system_prompt": "system_prompt",
}
# Card fields kept in config["card"], with the length kept (they reach the prompt or the page).
CONFIG_TEXT_LIMITS = {
    "personality": 2000,
    "scenario": 2000,
    "mes_example": 4000,
    "post_history_instructions": 2000,
    "creator_notes": 4000,
    "creator": 100,
    "character_version": 50,
}
# How the page names card fields (e.g. when one was shortened).
FIELD_LABELS = {
    "first_mes": "first message",
    "mes_example": "example messages",
    "post_history_instructions": "post-history instructions",
    "creator_notes": "creator notes",
    "character_version": "version",
    "alternate_greetings": "alternate greetings",
}
# What a card carries that no column or prompt field holds, kept so an export gives it back
# (the lorebook also goes into prompts). Over the size limit the least useful are left
# out: what only an export would miss goes before the lorebook.
EXTRAS = ("unknown", "extensions", "character_book")
EXTRAS_LABELS = {"unknown": "fields we do not use", "extensions": "extensions", "character_book": "lorebook"}
MAX_LIST_ITEMS = {"alternate_greetings": 20, "tags": 50}
LIST_ITEM_LIMITS = {"alternate_greetings": 1000, "tags": 50}

# A card says nothing about the catalogue's look; these stand in until the owner edits them.
DEFAULT_LOOK: dict[str, Any] = {
    "style": "semi_realistic",
    "age": 25,
    "ethnicity": "mixed",
    "skin_tone": "medium",
    "hair_color": "brown",
    "hair_style": "long_straight",
    "eye_color": "brown",
    "body_type": "average",
    "height": "average",
    "chest": "medium",
    "personality_traits": ["curious"],
    "hobbies": [],
    "occupation": "writer",
    "relationship": "friend",
}
# Columns the hub extension may carry back (everything the wizard asks that a card lacks).
HUB_FIELDS = (
    "style",
    "gender",
    "age",
    "ethnicity",
    "skin_tone",
    "hair_color",
    "hair_style",
    "eye_color",
    "body_type",
    "height",
    "chest",
    "distinguishing_features",
    "personality_traits",
    "hobbies",
    "occupation",
    "relationship",
    "visual_prompt",
)


class CardRejected(Exception):
    """The file is not a card we can import; ``message`` is safe to show users."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ParsedCard:
    """A card's fields as found (V1 aliases resolved), its spec, and the PNG it came in."""

    data: dict[str, Any]
    spec: str
    image: bytes | None = None


@dataclass(frozen=True)
class ImportedCard:
    """What a card becomes: column values, the ``config["card"]`` block, fields that were shortened,
    and the extras (``EXTRAS``) left out for being over the size limit."""

    values: dict[str, Any]
    card_config: dict[str, Any]
    shortened: list[str] = field(default_factory=list)
    look_defaulted: bool = True
    left_out: list[str] = field(default_factory=list)


# --- reading ------------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def png_text_chunks(raw: bytes) -> dict[str, bytes]:
    """``tEXt`` chunks of a PNG by keyword, read without decoding any pixels.

    Card writers put the chunk after the image data, where Pillow reads text
    only by decoding the whole picture first; walking the chunk list keeps a
    decompression bomb from being inflated just to find the card. The pixels
    are checked later, by ``media``, when the picture is stored.
    """
    if not raw.startswith(PNG_SIGNATURE):
        raise CardRejected("not_png", "The file is not a PNG image.")
    chunks: dict[str, bytes] = {}
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + length]
        if len(body) < length:
            break  # truncated: keep what was read; a missing card is reported below
        if kind == b"tEXt" and b"\0" in body:
            keyword, _, text = body.partition(b"\0")
            chunks.setdefault(keyword.decode("latin-1"), text)
        if kind == b"IEND":
            break
        pos += 12 + length  # length, type, data, CRC
    return chunks


def _decode_base64_json(text: bytes) -> Any:
    try:
        decoded = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CardRejected("bad_base64", "The card data in the PNG is not valid base64.") from exc
    return _load_json(decoded)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity: Python reads them, PostgreSQL's jsonb does not


def _load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CardRejected("bad_json", "The card data is not valid JSON.") from exc


def parse_card_file(raw: bytes, *, max_bytes: int) -> ParsedCard:
    """Read a card from a PNG or JSON file's bytes; ``CardRejected`` says what is wrong."""
    if not raw:
        raise CardRejected("empty", "The file is empty.")
    if len(raw) > max_bytes:
        raise CardRejected("too_large", f"The file is larger than {_mb(max_bytes)}.")
    if raw.startswith(PNG_SIGNATURE):
        chunks = png_text_chunks(raw)
        # V3 writers also keep a V2 copy in ``chara`` for old readers; the V3 one is richer.
        text = chunks.get("ccv3") or chunks.get("chara")
        if text is None:
            raise CardRejected(
                "no_card", "This PNG has no character card inside (no 'chara' or 'ccv3' text chunk)."
            )
        return _parsed(_decode_base64_json(text), image=raw)
    if raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return _parsed(_load_json(raw), image=None)
    raise CardRejected(
        "not_a_card_file", "The file is neither a PNG character card nor a JSON character card."
    )


def _without_nul(value: Any) -> Any:
    """NULs and lone surrogates out of every string: PostgreSQL's jsonb refuses both."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def _parsed(obj: Any, *, image: bytes | None) -> ParsedCard:
    try:
        obj = _without_nul(obj)
    except RecursionError as exc:
        raise CardRejected("bad_json", "The card data is nested too deeply.") from exc
    if not isinstance(obj, dict):
        raise CardRejected("not_a_card", "The JSON is not a character card.")
    spec = obj.get("spec")
    if isinstance(spec, str) and spec.startswith("chara_card") and isinstance(obj.get("data"), dict):
        data = dict(obj["data"])
    elif "spec" in obj:
        raise CardRejected("not_a_card", f"Unsupported card format {str(spec)[:40]!r}.")
    else:  # V1: flat
        spec = "chara_card_v1"
        data = {V1_ALIASES.get(key, key): value for key, value in obj.items()}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CardRejected("no_name", "The card has no character name.")
    return ParsedCard(data=data, spec=spec, image=image)


# --- card -> companion -----------------------------------------------------------------


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CardRejected("bad_field", f"The card's {name!r} should be text.")
    return str(value).replace("\r\n", "\n").strip()


def _strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CardRejected("bad_field", f"The card's {name!r} should be a list of text.")
    return [v.strip() for v in value if v.strip()]


def _clip(text: str, limit: int, label: str, shortened: list[str]) -> str:
    if len(text) <= limit:
        return text
    shortened.append(label)
    return text[:limit].rstrip()


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
            _, low, high = catalogue.MULTI_CHOICE[name]
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


def to_companion(card: ParsedCard, *, max_lengths: dict[str, int], extras_max_bytes: int) -> ImportedCard:
    """Column values and the ``config["card"]`` block for a card.

    Text longer than its limit is cut (``max_lengths`` holds the column
    limits) and named in ``shortened``, so the owner is told what to check;
    the card is not refused for it, because real cards often run past them.
    Extras over ``extras_max_bytes`` are left out and named in ``left_out``.
    """
    data = card.data
    shortened: list[str] = []
    values: dict[str, Any] = {}
    for card_name, column in COLUMN_FOR.items():
        values[column] = _clip(_text(data, card_name), max_lengths[column], card_name, shortened)

    card_config: dict[str, Any] = {"spec": card.spec}
    for name, limit in CONFIG_TEXT_LIMITS.items():
        card_config[name] = _clip(_text(data, name), limit, name, shortened)
    for name in LIST_FIELDS:
        items = _strings(data, name)
        kept = [
            _clip(item, LIST_ITEM_LIMITS[name], name, shortened) for item in items[: MAX_LIST_ITEMS[name]]
        ]
        if len(items) > len(kept) and name not in shortened:
            shortened.append(name)
        card_config[name] = kept

    extensions = data.get("extensions")
    extensions = dict(extensions) if isinstance(extensions, dict) else {}
    hub_extension = extensions.pop(HUB_EXTENSION, None)
    hub = _hub_values(hub_extension)
    card_config["extensions"] = extensions
    if data.get("character_book") is not None:
        card_config["character_book"] = data["character_book"]
    card_config["unknown"] = {k: v for k, v in data.items() if k not in KNOWN_FIELDS}
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
        shortened=shortened,
        look_defaulted=bool(defaults),
        left_out=left_out,
    )


# --- companion -> card -------------------------------------------------------------------


def build_card(companion: Companion) -> dict[str, Any]:
    """A Character Card V2 for ``companion`` (fields from its columns and ``config["card"]``)."""
    stored = stored_card(companion)
    unknown = _stored_object(stored, "unknown")
    extensions = _stored_object(stored, "extensions")
    data: dict[str, Any] = {k: v for k, v in unknown.items() if k not in KNOWN_FIELDS}
    data.update(
        {
            "name": companion.name,
            "description": companion.backstory,
            "personality": _stored_text(stored, "personality"),
            "scenario": _stored_text(stored, "scenario"),
            "first_mes": companion.greeting,
            "mes_example": _stored_text(stored, "mes_example"),
            "creator_notes": _stored_text(stored, "creator_notes"),
            "system_prompt": companion.system_prompt,
            "post_history_instructions": _stored_text(stored, "post_history_instructions"),
            "alternate_greetings": _stored_texts(stored, "alternate_greetings"),
            "tags": _stored_texts(stored, "tags"),
            "creator": _stored_text(stored, "creator"),
            "character_version": _stored_text(stored, "character_version"),
            "extensions": {
                **extensions,
                HUB_EXTENSION: {
                    **{name: getattr(companion, name) for name in HUB_FIELDS},
                    "defaults": sorted(card_prompt_defaults(companion)),
                },
            },
        }
    )
    if stored.get("character_book") is not None:
        data["character_book"] = stored["character_book"]
    return {"spec": SPEC_V2, "spec_version": "2.0", "data": data}


def _stored_object(stored: dict[str, Any], name: str) -> dict[str, Any]:
    value = stored.get(name)
    return value if isinstance(value, dict) else {}


def _stored_text(stored: dict[str, Any], name: str) -> str:
    value = stored.get(name)
    return value if isinstance(value, str) else ""


def card_greetings(companion) -> list[str]:
    """The companion's greetings as stored (macros unfilled): its own first, then the card's
    ``alternate_greetings``; empty ones left out. A new chat offers them as versions."""
    greetings = [companion.greeting, *_stored_texts(stored_card(companion), "alternate_greetings")]
    return [text for text in greetings if text and text.strip()]


def _stored_texts(stored: dict[str, Any], name: str) -> list[str]:
    value = stored.get(name)
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


PLACEHOLDER_SIZE = 400
PLACEHOLDER_COLOR = (226, 221, 240)


def build_card_png(card: dict[str, Any], picture: bytes | None = None) -> bytes:
    """A PNG of ``picture`` (or a plain placeholder) with ``card`` in a ``chara`` tEXt chunk.

    ``picture`` is one of our stored images (already validated and re-encoded).
    """
    if picture is not None:
        with Image.open(io.BytesIO(picture)) as opened:
            image = opened.convert("RGB")
    else:
        image = Image.new("RGB", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), PLACEHOLDER_COLOR)
    info = PngImagePlugin.PngInfo()
    payload = json.dumps(card, ensure_ascii=False).encode("utf-8")
    info.add_text("chara", base64.b64encode(payload).decode("ascii"))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, optimize=True)
    return out.getvalue()


# --- prompts ----------------------------------------------------------------------------

_MACROS = (
    (re.compile(r"\{\{\s*char\s*\}\}|<BOT>", re.IGNORECASE), "char"),
    (re.compile(r"\{\{\s*user\s*\}\}|<USER>", re.IGNORECASE), "user"),
    (re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE), "original"),
)


def fill_macros(text: str, *, char: str, user: str) -> str:
    """Card placeholders filled: ``{{char}}``/``<BOT>``, ``{{user}}``/``<USER>``; ``{{original}}`` removed.

    Cards are written for any user, so the names go in when the text is
    used (prompt, page), never into what is stored or exported.
    """
    if not text or ("{" not in text and "<" not in text):
        return text
    names = {"char": char, "user": user, "original": ""}
    for pattern, key in _MACROS:
        text = pattern.sub(_literally(names[key]), text)
    return text


def _literally(value: str) -> Callable[[re.Match[str]], str]:
    """A replacement ``re.sub`` puts in as is: a string would be read for backslash escapes."""
    return lambda _match: value


def stored_card(companion: Companion) -> dict[str, Any]:
    """The ``config["card"]`` block, or {} when there is none or it is not an object.

    The column can be edited as raw JSON in the admin, so nothing that reads
    it assumes its shape.
    """
    config = companion.config if isinstance(companion.config, dict) else {}
    card = config.get("card")
    return card if isinstance(card, dict) else {}


def card_prompt_defaults(companion: Companion) -> set[str]:
    """Catalogue fields still holding the stand-ins an import filled in (the card never said them).

    Prompts leave those out rather than tell the LLM things the card's own
    text may contradict; once the owner changes one, it counts.
    """
    defaults = stored_card(companion).get("defaults")
    if not isinstance(defaults, dict):
        return set()
    return {name for name, value in defaults.items() if getattr(companion, name, None) == value}
