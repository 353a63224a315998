"""Companion -> card: the V3 (or V2) card dict, the PNG with both chunks, the CHARX file.

The export is what another app can use and what brings the same companion
back here:

- Text a card brought in is given back as it was written (``originals``),
  while the companion still has it; edited text is exported as edited.
- ``description``, ``personality`` and ``scenario`` the companion has no card
  text for are written as prose from the wizard's answers (``prose``); the
  extension records which were composed, with a fingerprint, and the exact
  backstory, so an import of the export restores the columns, not the prose.
- The lorebook the card brought in (``companion.card_book``, edited or not) is written
  back as ``character_book``.
- A PNG carries the card twice, as current SillyTavern writes it: ``chara``
  (V2) then ``ccv3`` (the same card, ``spec`` set to V3), both just before
  ``IEND``.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

from PIL import Image

from companions.cards.charx import is_embedded, json_text, write_charx
from companions.cards.fields import (
    CONFIG_TEXT_LIMITS,
    HUB_EXTENSION,
    HUB_FIELDS,
    KNOWN_FIELDS,
    LIST_FIELDS,
    OUTER_MIRRORS,
    SPEC_V2,
    SPEC_V3,
    SPEC_VERSIONS,
)
from companions.cards.importing import stored_digest
from companions.cards.prose import composed_digest, description_prose, personality_prose, scenario_prose
from companions.cards.reading import PNG_SIGNATURE
from companions.cards.stored import (
    card_prompt_defaults,
    stored_card,
    stored_object,
    stored_text,
    stored_texts,
)
from companions.models import Companion
from lorebooks.formats import to_character_book
from lorebooks.selectors import parsed_book

PLACEHOLDER_SIZE = 400
PLACEHOLDER_COLOR = (226, 221, 240)
# Fields every V2 card has (the spec requires them); V3 adds ``group_only_greetings``.
REQUIRED_V2 = frozenset(
    (
        "name",
        "description",
        "personality",
        "scenario",
        "first_mes",
        "mes_example",
        "creator_notes",
        "system_prompt",
        "post_history_instructions",
        "alternate_greetings",
        "tags",
        "creator",
        "character_version",
        "extensions",
    )
)
REQUIRED = {SPEC_V2: REQUIRED_V2, SPEC_V3: REQUIRED_V2 | {"group_only_greetings"}}


def _as_written(stored: dict[str, Any], name: str, current: Any) -> Any:
    """The card's own value for ``name`` while the companion still holds what was stored of it,
    else ``current`` (edited since, or never different)."""
    entry = stored_object(stored, "originals").get(name)
    if isinstance(entry, dict) and "value" in entry and entry.get("digest") == stored_digest(current):
        return entry["value"]
    return current


def composed_fields(companion: Companion) -> dict[str, str]:
    """The prose an export writes for fields the companion has no card text for.

    A companion made here has none; an imported one has the card's own text
    (kept as is), except for fields that were empty or were our own prose
    (``composed``). Empty prose (nothing but stand-ins) composes nothing.
    """
    stored = stored_card(companion)
    imported = "spec" in stored
    were_composed = set(stored_texts(stored, "composed"))
    stand_ins = card_prompt_defaults(companion)
    prose = {}
    if not imported or "description" in were_composed or not companion.backstory:
        prose["description"] = description_prose(companion, stand_ins)
    for name, compose in (("personality", personality_prose), ("scenario", scenario_prose)):
        if name in were_composed or not stored_text(stored, name):
            prose[name] = compose(companion, stand_ins)
    if prose.get("description") == companion.backstory:  # no look to add: the backstory is the description
        del prose["description"]
    return {name: text for name, text in prose.items() if text}


def build_card(companion: Companion, *, spec: str = SPEC_V3) -> dict[str, Any]:
    """The companion as a Character Card V3 (``spec=SPEC_V2`` for V2), as plain JSON values."""
    if spec not in SPEC_VERSIONS:
        raise ValueError(f"unknown card spec {spec!r}")
    stored = stored_card(companion)
    prose = composed_fields(companion)
    values: dict[str, Any] = {
        "name": companion.name,
        "description": companion.backstory,
        "first_mes": companion.greeting,
        "system_prompt": companion.system_prompt,
        **{name: stored_text(stored, name) for name in CONFIG_TEXT_LIMITS},
        **{name: stored_texts(stored, name) for name in LIST_FIELDS},
    }
    values = {name: _as_written(stored, name, value) for name, value in values.items()}
    values.update(prose)
    absent = set(stored_texts(stored, "absent")) - REQUIRED[spec]
    values = {name: value for name, value in values.items() if name not in absent or value}

    extensions = {**stored_object(stored, "extensions"), HUB_EXTENSION: _hub_extension(companion, prose)}
    data: dict[str, Any] = {
        k: v for k, v in stored_object(stored, "unknown").items() if k not in KNOWN_FIELDS
    }
    if isinstance(data.get("assets"), list):  # embedded files were not kept: only a CHARX export has ours
        data["assets"] = [a for a in data["assets"] if not is_embedded(a)]
    data.update(values)
    if spec == SPEC_V3 and "spec" not in stored and companion.created_at and companion.updated_at:
        # Made here: V3's dates (Unix seconds) are ours to give; an imported card keeps its own.
        data["creation_date"] = int(companion.created_at.timestamp())
        data["modification_date"] = int(companion.updated_at.timestamp())
    data["extensions"] = extensions
    if companion.card_book_id is not None and companion.card_book is not None:
        data["character_book"] = to_character_book(parsed_book(companion.card_book))
    elif stored.get("character_book") is not None:  # a book that could not become a lorebook
        data["character_book"] = stored["character_book"]
    return _card(stored, data, spec)


def _hub_extension(companion: Companion, prose: dict[str, str]) -> dict[str, Any]:
    hub: dict[str, Any] = {
        **{name: getattr(companion, name) for name in HUB_FIELDS},
        "defaults": sorted(card_prompt_defaults(companion)),
    }
    if prose:
        hub["composed"] = {name: composed_digest(text) for name, text in sorted(prose.items())}
        if "description" in prose:
            hub["backstory"] = companion.backstory
    return hub


def _card(stored: dict[str, Any], data: dict[str, Any], spec: str) -> dict[str, Any]:
    """``spec``/``spec_version``/``data`` with the card's top-level fields, their V1 copies refreshed."""
    outer = dict(stored_object(stored, "outer"))
    for key, name in OUTER_MIRRORS.items():
        if key in outer and name in data:
            outer[key] = data[name]
    version = stored.get("spec_version")
    if stored.get("spec") != spec or not isinstance(version, str):
        version = SPEC_VERSIONS[spec]
    return {**outer, "spec": spec, "spec_version": version, "data": data}


def with_spec(card: dict[str, Any], spec: str) -> dict[str, Any]:
    """The same card under another spec, keys in the same order (how SillyTavern makes ``ccv3``)."""
    if card.get("spec") == spec:
        return card
    return {**card, "spec": spec, "spec_version": SPEC_VERSIONS[spec]}


# --- PNG ---------------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def _text_chunk(keyword: str, card: dict[str, Any]) -> bytes:
    payload = base64.b64encode(json_text(card).encode("utf-8"))
    return _chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + payload)


def _png_of(picture: bytes | None) -> bytes:
    """``picture`` as PNG bytes: a PNG as it is; another format decoded and saved losslessly."""
    if picture is not None and picture.startswith(PNG_SIGNATURE):
        return picture
    if picture is None:
        image = Image.new("RGB", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), PLACEHOLDER_COLOR)
    else:
        with Image.open(io.BytesIO(picture)) as opened:
            opened.load()
            keep = opened.mode in ("RGB", "RGBA", "L", "LA")
            image = opened if keep else opened.convert("RGBA" if "transparency" in opened.info else "RGB")
            image = image.copy()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def build_card_png(card: dict[str, Any], picture: bytes | None = None) -> bytes:
    """A PNG of ``picture`` (or a plain placeholder) carrying ``card`` as SillyTavern writes it.

    ``chara`` holds the V2 card and ``ccv3`` the V3 one, both before ``IEND``;
    a card already in the PNG is replaced. ``picture`` is one of our stored
    images (already validated): its pixels are kept as they are.
    """
    png = _png_of(picture)
    chunks: list[bytes] = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        raw_chunk = png[pos : pos + 12 + length]
        keyword = png[pos + 8 : pos + 8 + length].partition(b"\0")[0].lower()
        if kind == b"IEND":
            break
        if not (kind == b"tEXt" and keyword in (b"chara", b"ccv3")):
            chunks.append(raw_chunk)
        pos += 12 + length
    chunks.append(_text_chunk("chara", with_spec(card, SPEC_V2)))
    chunks.append(_text_chunk("ccv3", with_spec(card, SPEC_V3)))
    chunks.append(_chunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunks)


# --- CHARX --------------------------------------------------------------------------------


def build_card_charx(card: dict[str, Any], picture: bytes | None = None) -> bytes:
    """A CHARX file of ``card`` with ``picture`` (as stored: no re-encoding) as its main icon."""
    if picture is None:
        return write_charx(card, _png_of(None), "png")
    with Image.open(io.BytesIO(picture)) as opened:
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}.get(opened.format or "", "")
    if not ext:
        return write_charx(card, _png_of(picture), "png")
    return write_charx(card, picture, ext)
