"""Reading a card's JSON: from bytes, from a PNG's text chunks, and into a ``ParsedCard``."""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from companionhub.text import scrub
from companions.cards.fields import V1_ALIASES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class CardRejected(Exception):
    """The file is not a card we can import; ``message`` is safe to show users."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ParsedCard:
    """A card's fields as found (V1 aliases resolved), its spec, and the picture it came with.

    ``outer`` holds the top-level fields beside ``spec``/``spec_version``/``data``
    (SillyTavern repeats the V1 fields there), ``spec_version`` the version as written.
    """

    data: dict[str, Any]
    spec: str
    image: bytes | None = None
    outer: dict[str, Any] = field(default_factory=dict)
    spec_version: str | None = None


def mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def too_large_message(max_bytes: int) -> str:
    """Why a file over the upload limit is refused, in the active language."""
    return _("The file is larger than %(size)s.") % {"size": mb(max_bytes)}


def png_text_chunks(raw: bytes) -> dict[str, bytes]:
    """``tEXt`` chunks of a PNG by keyword (lower case, as SillyTavern compares them), read
    without decoding any pixels.

    Card writers put the chunk after the image data, where Pillow reads text
    only by decoding the whole picture first; walking the chunk list keeps a
    decompression bomb from being inflated just to find the card. The pixels
    are checked later, by ``media``, when the picture is stored.
    """
    if not raw.startswith(PNG_SIGNATURE):
        raise CardRejected("not_png", _("The file is not a PNG image."))
    chunks: dict[str, bytes] = {}
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + length]
        if len(body) < length:
            break  # truncated: keep what was read; a missing card is reported below
        if kind == b"tEXt" and b"\0" in body:
            keyword, _nul, text = body.partition(b"\0")
            chunks.setdefault(keyword.decode("latin-1").lower(), text)
        if kind == b"IEND":
            break
        pos += 12 + length  # length, type, data, CRC
    return chunks


def card_from_png(raw: bytes) -> ParsedCard:
    chunks = png_text_chunks(raw)
    # V3 writers also keep a V2 copy in ``chara`` for old readers; the V3 one is richer.
    text = chunks.get("ccv3") or chunks.get("chara")
    if text is None:
        raise CardRejected(
            "no_card", _("This PNG has no character card inside (no 'chara' or 'ccv3' text chunk).")
        )
    try:
        decoded = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CardRejected("bad_base64", _("The card data in the PNG is not valid base64.")) from exc
    return card_from_object(load_json(decoded), image=raw)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity: Python reads them, PostgreSQL's jsonb does not


def load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CardRejected("bad_json", _("The card data is not valid JSON.")) from exc


def _without_nul(value: Any) -> Any:
    """NULs and lone surrogates out of every string: PostgreSQL's jsonb refuses both."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def card_from_object(obj: Any, *, image: bytes | None) -> ParsedCard:
    """A ``ParsedCard`` from a card's parsed JSON (V1 flat, or V2/V3 with ``data``)."""
    try:
        obj = _without_nul(obj)
    except RecursionError as exc:
        raise CardRejected("bad_json", _("The card data is nested too deeply.")) from exc
    if not isinstance(obj, dict):
        raise CardRejected("not_a_card", _("The JSON is not a character card."))
    spec = obj.get("spec")
    outer: dict[str, Any] = {}
    spec_version = None
    if isinstance(spec, str) and spec.startswith("chara_card") and isinstance(obj.get("data"), dict):
        data = dict(obj["data"])
        outer = {k: v for k, v in obj.items() if k not in ("spec", "spec_version", "data")}
        spec_version = obj["spec_version"] if isinstance(obj.get("spec_version"), str) else None
    elif "spec" in obj:
        raise CardRejected(
            "not_a_card", _("Unsupported card format %(spec)s.") % {"spec": repr(str(spec)[:40])}
        )
    else:  # V1: flat
        spec = "chara_card_v1"
        data = {V1_ALIASES.get(key, key): value for key, value in obj.items()}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CardRejected("no_name", _("The card has no character name."))
    return ParsedCard(data=data, spec=spec, image=image, outer=outer, spec_version=spec_version)
